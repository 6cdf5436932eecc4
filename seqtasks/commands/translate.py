"""Translate texts, a file or stdin line by line, with a translator checkpoint; as text or JSONL.

seqtasks translate --ckpt best.ckpt --beam 5 "how are you?"
seqtasks translate --ckpt best.ckpt --beam 5 --nbest 3 --input en.txt --format jsonl --output hi.jsonl

Text output: one translation per input line. With --nbest N (N <= --beam), N lines per input instead,
id<TAB>rank<TAB>score<TAB>translation (rank from 1, best first; score: the length-normalised
log-probability log p(translation + </s>) / length ** --length-penalty that beam search ranks by, as
OpenNMT's -n_best). JSONL output: one object per input, {"id", "translation", "score", "nbest":
[{"translation", "score"}, ...]}; the id is the input's line number (from 1), its position among the
arguments, or the "id" field of a JSONL input. With --reference, sacreBLEU's BLEU and chrF of the best
translations and their signatures go to stderr. An empty text (or empty input line) is refused, as in
training, and so is a text with no subword the model knows (e.g. emoji only). A text longer than the
model's max_source_length subwords is translated from its first subwords, with a warning on stderr naming
it and how many subwords were cut (its JSONL record has "truncated": the number cut).
"""

from __future__ import annotations

import argparse
import sys

from seqtasks.commands.options import add_io_arguments, check_io_arguments, warnings_as_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a Seq2SeqTranslator checkpoint")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    parser.add_argument(
        "--nbest",
        type=int,
        default=1,
        help="hypotheses per input, best first (at most --beam); as text, N lines per input: "
        "id<TAB>rank<TAB>score<TAB>translation, score = log p(translation + </s>) / length ** "
        "--length-penalty",
    )
    parser.add_argument("--max-length", type=int, default=None, help="at most this many subwords out")
    parser.add_argument("--length-penalty", type=float, default=1.0, help="beam score / length ** this")
    parser.add_argument("--reference", help="reference translations, one per line: print sacreBLEU/chrF")
    add_io_arguments(
        parser,
        "texts to translate",
        'text: one translation per line (see --nbest); jsonl: {"id", "translation", "score", "nbest": '
        '[{"translation", "score"}, ...]} per input',
        "sentences",
    )


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    check_io_arguments(options, parser)
    if options.beam < 1 or options.batch_size < 1:
        parser.error("--beam and --batch-size must be at least 1")
    if not 1 <= options.nbest <= options.beam:
        parser.error(
            f"--nbest {options.nbest} needs --beam {options.nbest} or more (got --beam {options.beam})"
        )
    from seqtasks.inference.io import InputError, open_output, read_inputs, write_records

    try:
        inputs = read_inputs(options.texts, options.input, True if options.jsonl else None)
    except InputError as error:
        raise SystemExit(f"seqtasks translate: {error}") from None
    for number, item in enumerate(inputs, start=1):
        if not item.text.strip():
            name = "<stdin>" if options.input == "-" else options.input
            where = f"{name} line {item.id}" if options.input else f"text {number}"
            raise SystemExit(f"seqtasks translate: {where} is empty; every text needs words to translate")
    references = read_lines(options.reference) if options.reference else None
    if references is not None and len(references) != len(inputs):
        raise SystemExit(
            f"seqtasks translate: {options.reference} has {len(references)} lines "
            f"but there are {len(inputs)} texts to translate; give one reference per text"
        )
    from seqtasks.checkpoints import CheckpointError
    from seqtasks.inference.io import set_threads

    set_threads(options.torch_threads)
    from seqtasks.inference.translation import Translator, corpus_scores

    try:
        translator = Translator.from_checkpoint(options.ckpt)
    except CheckpointError as error:
        raise SystemExit(f"seqtasks translate: {error}") from None
    settings = {
        "beam": options.beam,
        "max_length": options.max_length,
        "batch_size": options.batch_size,
        "length_penalty": options.length_penalty,
        "progress": bool(options.input) and not options.quiet and sys.stderr.isatty(),
    }
    texts = [item.text for item in inputs]
    source = "<stdin>" if options.input == "-" else options.input
    try:
        with warnings_as_lines("translate", source):
            ids = [item.id for item in inputs]
            if options.format == "text" and options.nbest == 1:
                outputs = translator.translate(texts, ids=ids, **settings)
            else:
                records = translator.records(texts, ids, nbest=options.nbest, **settings)
    except InputError as error:
        raise SystemExit(f"seqtasks translate: {source + ': ' if source else ''}{error}") from None
    if options.format == "text" and options.nbest == 1:
        with open_output(options.output) as handle:
            handle.writelines(line + "\n" for line in outputs)
    else:
        outputs = [record["translation"] for record in records]
        with open_output(options.output) as handle:
            if options.format == "jsonl":
                write_records(handle, records)
            else:
                handle.writelines(
                    f"{record['id']}\t{rank}\t{hyp['score']:.6f}\t{hyp['translation']}\n"
                    for record in records
                    for rank, hyp in enumerate(record["nbest"], start=1)
                )
    if references is not None:
        print(corpus_scores(outputs, references)["line"], file=sys.stderr)


def read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except OSError as error:
        raise SystemExit(f"seqtasks translate: cannot read {path}: {error.strerror}") from None
