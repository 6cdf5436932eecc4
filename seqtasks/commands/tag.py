"""Tag the tokens of texts (NER) with a tagger checkpoint: from arguments, a file or stdin; as text or JSONL.

seqtasks tag --ckpt runs/ner-conll2003/.../best.ckpt "Dhaval loves baby yoda"
seqtasks tag --ckpt best.ckpt --input news.txt --format jsonl --output entities.jsonl

Each text is split like CoNLL-2003 (punctuation and clitics apart: "Merkel 's"). Text output, per input:
one token<TAB>tag<TAB>confidence line per token, then "# entities: TYPE: text [first-last]; ..." (token
numbers from 0), a blank line between inputs. JSONL output: one object per input, {"id", "text", "tokens":
[{"text", "start", "end", "tag", "confidence"}], "entities": [{"type", "text", "start", "end",
"first_token", "last_token", "confidence"}]}: start/end are character offsets into the text, a token's
confidence the probability of its tag (CRF marginal, or softmax), an entity's the mean of its tokens'. The
id is the input's line number (from 1), its position among the arguments, or the "id" field of a JSONL
input. A text with no token is refused, naming its line; the checkpoint alone is enough (no data).
"""

from __future__ import annotations

import argparse
import sys

from seqtasks.commands.options import add_io_arguments, check_io_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a TokenTagger checkpoint (any seqtasks format)")
    add_io_arguments(parser, "texts to tag", "output format", "sentences")


def text_lines(record: dict) -> str:
    """The text form of one record: token/tag/confidence lines, then the entities line."""
    from seqtasks.inference.io import escape_field

    lines = [f"{escape_field(t['text'])}\t{t['tag']}\t{t['confidence']:.4f}" for t in record["tokens"]]
    spans = "; ".join(
        f"{e['type']}: {escape_field(e['text'])} [{e['first_token']}-{e['last_token']}]"
        for e in record["entities"]
    )
    return "\n".join([*lines, f"# entities: {spans or '(none)'}"])


def where(options: argparse.Namespace, item_id: object, number: int) -> str:
    """How an error names an input: ``text N`` (arguments), ``FILE, line N``, or ``FILE, id X`` (JSONL: its
    ``id`` field, else its line number)."""
    if not options.input:
        return f"text {number}"
    name = "<stdin>" if options.input == "-" else options.input
    jsonl = options.jsonl or options.input.endswith((".jsonl", ".ndjson"))
    return f"{name}, id {item_id!r}" if jsonl else f"{name}, line {item_id}"


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    check_io_arguments(options, parser)
    from seqtasks.data.tagging_codec import tokenize_spans
    from seqtasks.inference.io import InputError, open_output, read_inputs, set_threads, write_records

    set_threads(options.torch_threads)

    try:
        inputs = read_inputs(options.texts, options.input, True if options.jsonl else None)
    except InputError as error:
        raise SystemExit(f"seqtasks tag: {error}") from None
    if not inputs:
        raise SystemExit(f"seqtasks tag: {options.input}: no texts to tag")
    for number, item in enumerate(inputs, start=1):  # before loading anything
        if not tokenize_spans(item.text):
            raise SystemExit(
                f"seqtasks tag: {where(options, item.id, number)}: no tokens to tag in {item.text!r}"
            )

    from seqtasks.checkpoints import CheckpointError
    from seqtasks.inference.tagging import Tagger

    try:
        tagger = Tagger.from_checkpoint(options.ckpt, batch_size=options.batch_size)
    except CheckpointError as error:  # names the file
        raise SystemExit(f"seqtasks tag: {error}") from None
    except TypeError as error:  # a checkpoint of another task
        raise SystemExit(f"seqtasks tag: {options.ckpt}: {error}") from None
    bar = bool(options.input) and not options.quiet and sys.stderr.isatty()
    records = tagger.records([item.text for item in inputs], [item.id for item in inputs], progress=bar)
    with open_output(options.output) as handle:
        if options.format == "jsonl":
            write_records(handle, records)
        else:
            handle.write("\n\n".join(text_lines(r) for r in records) + "\n")
