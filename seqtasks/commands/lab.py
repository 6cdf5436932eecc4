"""The lab: why not a plain network (variable length, one-hot cost, parameter sharing, depth) and why LSTM
and GRU (the vanishing-gradient lab), measured.

seqtasks lab all --out runs/plain-lab              # the four parts on CoNLL-2003 (SEQTASKS_DATA_DIR)
seqtasks lab all --quick --out runs/plain-quick    # smaller settings, about a minute
seqtasks lab length|cost|sharing|depth [options]   # one part
seqtasks lab gradients [options]                   # the vanishing-gradient lab (same as seqtasks gradients)
What each part trains and writes: seqtasks/analysis/plain_lab.py.
"""

from __future__ import annotations

import argparse

PARTS = ("length", "cost", "sharing", "depth")
# The defaults of seqtasks.analysis.plain_lab.PlainLabSettings (a test keeps them equal); written out here
# so that --help imports nothing heavy.
DEFAULTS = {
    "width": 30,
    "window": 2,
    "word_dim": 50,
    "casing_dim": 8,
    "ff_hidden": 256,
    "rnn_hidden": 64,
    "epochs": 4,
    "batch_size": 32,
    "lr": 2e-3,
    "train_rows": None,
    "test_rows": None,
    "vocabs": "1000,2000,5000,10000,25000",
    "cost_length": 30,
    "transfer_k": 5,
    "depth_cells": "rnn,gru,lstm",
    "depths": "1,2,3,4",
    "depth_hidden": 64,
    "depth_epochs": 2,
    "depth_train_rows": 6000,
    "seed": 0,
    "out": "runs/plain-lab",
}


def add_part_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--quick",
        action="store_true",
        help="small settings (3,000 training rows, 1 epoch, 2 depths); flags given with a value other than "
        "their default override them",
    )
    add(
        "--width",
        type=int,
        default=DEFAULTS["width"],
        help="plain network's fixed width; trains on rows <= it",
    )
    add("--window", type=int, default=DEFAULTS["window"], help="window network: tokens read each side")
    add("--word-dim", type=int, default=DEFAULTS["word_dim"], help="word embedding width")
    add("--casing-dim", type=int, default=DEFAULTS["casing_dim"], help="casing embedding width")
    add("--ff-hidden", type=int, default=DEFAULTS["ff_hidden"], help="hidden units of the feed-forward nets")
    add("--rnn-hidden", type=int, default=DEFAULTS["rnn_hidden"], help="BiLSTM hidden size per direction")
    add("--epochs", type=int, default=DEFAULTS["epochs"], help="epochs of the length and sharing models")
    add("--batch-size", type=int, default=DEFAULTS["batch_size"], help="batch size (also of the cost part)")
    add("--lr", type=float, default=DEFAULTS["lr"], help="AdamW learning rate")
    add("--train-rows", type=int, default=DEFAULTS["train_rows"], help="cap on training sentences")
    add("--test-rows", type=int, default=DEFAULTS["test_rows"], help="cap on test sentences")
    add("--vocabs", default=DEFAULTS["vocabs"], help="cost: vocabulary sizes, comma-separated")
    add("--cost-length", type=int, default=DEFAULTS["cost_length"], help="cost: tokens per row")
    add("--transfer-k", type=int, default=DEFAULTS["transfer_k"], help="sharing: entities only before k")
    add("--depth-cells", default=DEFAULTS["depth_cells"], help="depth: cells, comma-separated")
    add("--depths", default=DEFAULTS["depths"], help="depth: stacked layers, comma-separated")
    add("--depth-hidden", type=int, default=DEFAULTS["depth_hidden"], help="depth: hidden size")
    add("--depth-epochs", type=int, default=DEFAULTS["depth_epochs"], help="depth: epochs")
    add("--depth-train-rows", type=int, default=DEFAULTS["depth_train_rows"], help="depth: training rows")
    add("--seed", type=int, default=DEFAULTS["seed"], help="seed of initialisation and shuffling")
    add("--out", default=DEFAULTS["out"], help="output directory")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from seqtasks.commands import gradients

    parts = parser.add_subparsers(
        dest="part",
        required=True,
        metavar="PART",
        help="the part to run (required); seqtasks lab PART --help shows its options",
    )
    formatter = parser.formatter_class
    for name, summary in (
        ("all", "the four parts below"),
        ("length", "variable length: plain vs window vs BiLSTM tagger, F1 by sentence length"),
        ("cost", "computation: one-hot input layer vs embedding lookup"),
        ("sharing", "parameter sharing: parameters vs length, position transfer"),
        ("depth", "depth: 1-4 stacked tanh RNN / GRU / LSTM layers"),
    ):
        add_part_arguments(
            parts.add_parser(name, help=summary, description=summary, formatter_class=formatter)
        )
    summary = "the vanishing-gradient lab (the same as seqtasks gradients)"
    gradients.add_arguments(
        parts.add_parser("gradients", help=summary, description=summary, formatter_class=formatter)
    )


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if options.part == "gradients":
        from seqtasks.commands import gradients

        gradients.run(options, parser)
        return
    from seqtasks.analysis.plain_lab import PlainLabSettings

    given = {
        name: getattr(options, name)
        for name in DEFAULTS
        if name not in ("vocabs", "depth_cells", "depths") and getattr(options, name) != DEFAULTS[name]
    }
    for name, convert in (("vocabs", _ints), ("depths", _ints), ("depth_cells", None)):
        if getattr(options, name) != DEFAULTS[name]:
            text = getattr(options, name)
            given[name] = convert(text) if convert else [c.strip() for c in text.split(",") if c.strip()]
    given["parts"] = list(PARTS) if options.part == "all" else [options.part]
    try:
        settings = PlainLabSettings.quick(**given) if options.quick else PlainLabSettings(**given)
    except ValueError as error:
        parser.error(str(error))
    from functools import partial

    from seqtasks.analysis.plain_lab import run_plain_lab

    run_plain_lab(settings, log=partial(print, flush=True))
