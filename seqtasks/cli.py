"""The ``seqtasks`` command: a dispatch table. Training stages go to LightningCLI, the rest to a module each.

seqtasks fit --config recipes/sentiment-imdb.yaml        # train (then test the best checkpoint)
seqtasks classify --ckpt best.ckpt "a wonderful film"     # every command: seqtasks COMMAND --help

Nothing heavy is imported before a command is chosen, so ``--help`` answers at once.

Errors: seqtasks' own errors (bad data, input, checkpoint or setting: :class:`seqtasks.errors.SeqtasksError`
and the error types of :data:`OWN_ERRORS`) print ``seqtasks COMMAND: message`` and exit with status 1, for
every command, training ones included. ``--debug`` (anywhere on the command line) or ``SEQTASKS_DEBUG=1``
shows their traceback instead. Any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from seqtasks.errors import is_own_error

LIGHTNING = {
    "fit": "train a recipe (then test its best checkpoint; --test_after_fit false skips it)",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split",
    "predict": "run Lightning's predict stage over a recipe's data",
}
COMMANDS = {
    "prepare": ("seqtasks.commands.prepare", "build a recipe's vocabulary / tokenizer / cache only"),
    "classify": ("seqtasks.commands.classify", "label texts with a classifier checkpoint"),
    "tag": ("seqtasks.commands.tag", "tag the tokens of texts (NER) with a tagger checkpoint"),
    "predict-conll": (
        "seqtasks.commands.predict_conll",
        "tag a CoNLL file; write conlleval columns, print F1",
    ),
    "translate": ("seqtasks.commands.translate", "translate texts or a file with a translator checkpoint"),
    "generate": (
        "seqtasks.commands.generate",
        "sample a piece (MIDI + piano-roll PNG) from a music checkpoint",
    ),
    "serve": ("seqtasks.commands.serve", "serve checkpoints over HTTP: a JSON API per model and a web page"),
    "export": ("seqtasks.commands.export", "export a classifier or tagger network to ONNX"),
    "word-vectors": ("seqtasks.commands.word_vectors", "train skip-gram word vectors on local text"),
    "gradients": (
        "seqtasks.commands.gradients",
        "the vanishing-gradient lab: accuracy and gradients vs distance",
    ),
    "lab": (
        "seqtasks.commands.lab",
        "the lab: why not a plain network (length, cost, sharing, depth); lab gradients",
    ),
}

DEBUG_FLAG = "--debug"


def usage() -> str:
    lines = ["usage: seqtasks COMMAND [options]   (seqtasks COMMAND --help for each command's options)", ""]
    lines.append("training (LightningCLI over a YAML recipe: seqtasks fit --config recipes/NAME.yaml):")
    lines += [f"  {name:<14} {summary}" for name, summary in LIGHTNING.items()]
    lines += ["", "using and preparing models:"]
    lines += [f"  {name:<14} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", f"{DEBUG_FLAG} (or SEQTASKS_DEBUG=1): an error's traceback instead of its message"]
    return "\n".join(lines)


def run_command(name: str, argv: list[str]) -> None:
    module_name, summary = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"seqtasks {name}",
        description=(module.__doc__ or summary).strip().split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    module.add_arguments(parser)
    if getattr(module, "PASSES_ON_OPTIONS", False):  # e.g. prepare: the rest goes to LightningCLI
        options, options.overrides = parser.parse_known_args(argv)
    else:
        options = parser.parse_args(argv)
    module.run(options, parser)


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("SEQTASKS_DEBUG", "") not in ("", "0")
    if DEBUG_FLAG in argv:
        argv = [arg for arg in argv if arg != DEBUG_FLAG]
        os.environ["SEQTASKS_DEBUG"] = "1"  # DDP's other ranks re-run the command line without the flag
        if from_command_line:
            sys.argv[1:] = argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    name = argv[0]
    try:
        dispatch(name, argv, from_command_line)
    except Exception as error:
        if debug or not is_own_error(error):
            raise
        message = str(error).strip() or type(error).__name__
        print(f"seqtasks {name}: {message}", file=sys.stderr)
        print(f"(seqtasks {DEBUG_FLAG} {name} ... shows the traceback)", file=sys.stderr)
        raise SystemExit(1) from None


def dispatch(name: str, argv: list[str], from_command_line: bool = False) -> None:
    """Run command ``name`` (``argv[0]``); errors go to :func:`main`'s handler."""
    if name in COMMANDS:
        run_command(name, argv[1:])
    elif name in LIGHTNING:
        from seqtasks.training import run_lightning

        run_lightning(None if from_command_line else argv)  # None: LightningCLI reads sys.argv itself
    else:
        known = ", ".join([*LIGHTNING, *COMMANDS])
        raise SystemExit(f"seqtasks: unknown command {name!r}; the commands are: {known}")


if __name__ == "__main__":
    main()
