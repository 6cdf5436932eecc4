"""The ``seqtasks`` command: a dispatch table. Training stages go to LightningCLI, the rest to a module each.

seqtasks fit --config recipes/sentiment-imdb.yaml        # train (then test the best checkpoint)
seqtasks classify --ckpt best.ckpt "a wonderful film"     # every command: seqtasks COMMAND --help

Nothing heavy is imported before a command is chosen, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
}


def usage() -> str:
    lines = ["usage: seqtasks COMMAND [options]   (seqtasks COMMAND --help for each command's options)", ""]
    lines.append("training (LightningCLI over a YAML recipe: seqtasks fit --config recipes/NAME.yaml):")
    lines += [f"  {name:<14} {summary}" for name, summary in LIGHTNING.items()]
    lines += ["", "using and preparing models:"]
    lines += [f"  {name:<14} {summary}" for name, (_, summary) in COMMANDS.items()]
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
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    name = argv[0]
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
