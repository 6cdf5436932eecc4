"""Label texts with a classifier checkpoint: from arguments, a file or stdin; as TSV or JSONL.

seqtasks classify --ckpt runs/sentiment-imdb/.../best.ckpt "a wonderful film" "dull and boring"
seqtasks classify --ckpt best.ckpt --input reviews.txt --format jsonl --output labels.jsonl

Text output: one line per input, label<TAB>probability<TAB>text, the text with its backslashes, tabs and
newlines written as \\\\, \\t and \\n so the columns never shift. JSONL output: one object per input,
{"id", "label", "probability", "probabilities": {label: p, ...}}; the id is the input's line number (from 1),
its position among the arguments, or the "id" field of a JSONL input ({"text": ..., "id": ...} per line).
Texts are batched by length (--batch-size per forward pass) and written in input order. An empty text is
refused, naming its number; a text longer than the model's max_length tokens is classified by its first
max_length tokens, with a warning on stderr naming it and how many tokens were cut (its JSONL record has
"truncated": the number cut). The checkpoint alone is enough (no data, no config).
"""

from __future__ import annotations

import argparse
import sys

from seqtasks.commands.options import add_io_arguments, check_io_arguments, warnings_as_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a SequenceClassifier checkpoint (any seqtasks format)")
    add_io_arguments(
        parser,
        "texts to classify",
        "text: label<TAB>probability<TAB>text (tabs, newlines, backslashes in the text escaped as \\t, "
        '\\n, \\\\); jsonl: {"id", "label", "probability", "probabilities": {label: p}} per input',
        "texts",
    )


def text_line(record: dict, text: str) -> str:
    from seqtasks.inference.io import escape_field

    return f"{record['label']}\t{record['probability']:.4f}\t{escape_field(text)}"


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    check_io_arguments(options, parser)
    from seqtasks.checkpoints import CheckpointError
    from seqtasks.inference.io import set_threads

    set_threads(options.torch_threads)
    from seqtasks.data.text import EmptyTextError
    from seqtasks.inference.classification import Classifier
    from seqtasks.inference.io import InputError, open_output, read_inputs, write_records

    try:
        inputs = read_inputs(options.texts, options.input, True if options.jsonl else None)
    except InputError as error:
        raise SystemExit(f"seqtasks classify: {error}") from None
    try:
        classifier = Classifier.from_checkpoint(options.ckpt, batch_size=options.batch_size)
        texts = [item.text for item in inputs]
        bar = bool(options.input) and not options.quiet and sys.stderr.isatty()
        with warnings_as_lines("classify", input_name(options.input)):
            records = classifier.records(texts, [item.id for item in inputs], progress=bar)
    except (CheckpointError, EmptyTextError) as error:
        name = input_name(options.input)
        where = f"{name}: " if name and isinstance(error, EmptyTextError) else ""
        raise SystemExit(f"seqtasks classify: {where}{error}") from None
    with open_output(options.output) as handle:
        if options.format == "jsonl":
            write_records(handle, records)
        else:
            handle.writelines(text_line(r, item.text) + "\n" for r, item in zip(records, inputs, strict=True))


def input_name(path: str | None) -> str | None:
    """How messages name the input file (``<stdin>`` for ``-``); None for texts given as arguments."""
    return "<stdin>" if path == "-" else path
