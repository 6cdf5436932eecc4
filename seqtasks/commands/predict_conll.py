"""Tag a CoNLL column file with a tagger checkpoint; write 'token gold predicted' lines, print span F1.

seqtasks predict-conll --ckpt runs/ner-conll2003/.../best.ckpt --input eng.testb --output pred.txt
seqtasks predict-conll --ckpt best.ckpt --input eng.testb --output pred.txt --jsonl-output pred.jsonl

The output (IOB2, --format text) is what conlleval reads; the printed precision/recall/F1 are conlleval's.
With --format jsonl the output is one object per sentence instead ({"id": sentence number from 1, "line": its
first line, "text", "tokens", "entities", "gold"}: tag's records, offsets into the tokens joined by spaces);
--jsonl-output writes those records next to the CoNLL columns. --input - reads stdin. A file without a
sentence (empty, or -DOCSTART- only) is refused.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a TokenTagger checkpoint (any seqtasks format)")
    parser.add_argument("--input", required=True, help="a CoNLL column file (token first); '-': stdin")
    parser.add_argument("--output", required=True, help="the file to write")
    parser.add_argument("--label-column", type=int, default=-1, help="the gold label column (-1: the last)")
    parser.add_argument("--scheme", default="iob1", choices=["iob1", "iob2", "bioes"], help="its tag scheme")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass")
    parser.add_argument(
        "--format",
        choices=("text", "jsonl"),
        default="text",
        help="--output as CoNLL columns (text) or JSONL",
    )
    parser.add_argument("--jsonl-output", help="also write the JSONL records to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if options.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    import os
    import tempfile

    from seqtasks.checkpoints import CheckpointError
    from seqtasks.data.errors import DataError
    from seqtasks.inference.io import open_output, write_records
    from seqtasks.inference.tagging import Tagger, predict_conll

    source, stdin_copy = options.input, None
    if source == "-":  # read_conll reads a file: stdin goes through a temporary one
        handle, stdin_copy = tempfile.mkstemp(suffix=".conll")
        with os.fdopen(handle, "w", encoding="utf-8") as copy:
            copy.write(sys.stdin.read())
        source = stdin_copy
    name = "<stdin>" if options.input == "-" else options.input
    try:
        tagger = Tagger.from_checkpoint(options.ckpt, batch_size=options.batch_size)
    except CheckpointError as error:  # names the file
        raise SystemExit(f"seqtasks predict-conll: {error}") from None
    except TypeError as error:  # a checkpoint of another task
        raise SystemExit(f"seqtasks predict-conll: {options.ckpt}: {error}") from None
    records: list[dict] | None = [] if options.format == "jsonl" or options.jsonl_output else None
    conll_out = options.output if options.format == "text" else os.devnull
    bar = not options.quiet and sys.stderr.isatty()
    try:
        scores = predict_conll(
            tagger, source, conll_out, options.label_column, options.scheme, records=records, progress=bar
        )
    except FileNotFoundError as error:
        raise SystemExit(f"seqtasks predict-conll: {error.filename}: no such file") from None
    except DataError as error:  # a malformed line: names the file and the line
        raise SystemExit(f"seqtasks predict-conll: {str(error).replace(source, name)}") from None
    except ValueError as error:  # no sentence, an empty sentence
        message = str(error).replace(source, name)
        raise SystemExit(
            f"seqtasks predict-conll: {message if name in message else f'{name}: {message}'}"
        ) from None
    finally:
        if stdin_copy:
            os.unlink(stdin_copy)
    for path in [
        p for p in (options.output if options.format == "jsonl" else None, options.jsonl_output) if p
    ]:
        with open_output(path) as handle:
            write_records(handle, records)
    print(
        f"{options.output}: {scores['sentences']} sentences; entity precision {scores['precision']:.2f} "
        f"recall {scores['recall']:.2f} F1 {scores['f1']:.2f}"
    )
