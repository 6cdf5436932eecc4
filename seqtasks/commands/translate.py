"""Translate texts, or a file line by line, with a checkpoint.

seqtasks translate --ckpt best.ckpt --beam 5 "how are you?"   # or --input FILE --output FILE
Translations go to stdout (or --output), one per line; with --reference, sacreBLEU's BLEU and chrF and their
signatures go to stderr. An empty text (or empty input line) is refused, as in training.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a Seq2SeqTranslator checkpoint")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    parser.add_argument("--max-length", type=int, default=None, help="at most this many subwords out")
    parser.add_argument("--length-penalty", type=float, default=1.0, help="beam score / length ** this")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences decoded together")
    parser.add_argument("--input", help="a text file, one sentence per line")
    parser.add_argument("--output", help="where to write one translation per line; stdout when not given")
    parser.add_argument("--reference", help="reference translations, one per line: print sacreBLEU/chrF")
    parser.add_argument("texts", nargs="*", help="texts to translate")


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if bool(options.input) == bool(options.texts):
        parser.error("give either texts or --input FILE")
    if options.beam < 1 or options.batch_size < 1:
        parser.error("--beam and --batch-size must be at least 1")
    texts = read_lines(options.input) if options.input else list(options.texts)
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            where = f"{options.input} line {number}" if options.input else f"text {number}"
            raise SystemExit(f"seqtasks translate: {where} is empty; every text needs words to translate")
    from seqtasks.checkpoints import CheckpointError
    from seqtasks.inference.translation import Translator, corpus_scores

    try:
        translator = Translator.from_checkpoint(options.ckpt)
    except CheckpointError as error:
        raise SystemExit(f"seqtasks translate: {error}") from None
    outputs = translator.translate(
        texts,
        beam=options.beam,
        max_length=options.max_length,
        batch_size=options.batch_size,
        length_penalty=options.length_penalty,
    )
    if options.output:
        with open(options.output, "w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in outputs)
    else:
        for line in outputs:
            print(line)
    if options.reference:
        references = read_lines(options.reference)
        if len(references) != len(outputs):
            raise SystemExit(
                f"seqtasks translate: {options.reference} has {len(references)} lines "
                f"for {len(outputs)} texts"
            )
        print(corpus_scores(outputs, references)["line"], file=sys.stderr)


def read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle]
    except OSError as error:
        raise SystemExit(f"seqtasks translate: cannot read {path}: {error.strerror}") from None
