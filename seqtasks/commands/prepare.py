"""Build a recipe's prepared data (vocabulary, tokenizers, converted pieces) only, and say where it is.

`seqtasks fit` does it itself when the file is missing; this runs it alone, e.g. before a multi-device fit.
Every LightningCLI option of the recipe applies (`--data.init_args.dataset DIR`, ...).
"""

from __future__ import annotations

import argparse

PASSES_ON_OPTIONS = True
"""Options this parser does not know (``--data.init_args...``) are LightningCLI's: they go on to it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", action="append", required=True, help="the recipe (repeatable, as for fit)"
    )


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from seqtasks.training import run_lightning

    args = [item for path in options.config for item in ("--config", path)] + list(options.overrides)
    datamodule = run_lightning(args, run=False).datamodule
    print(f"prepared: {datamodule.prepared_path()}")
    for key, value in datamodule.prepared.items():
        size = f"{len(value)} entries" if isinstance(value, list | dict) else value
        print(f"  {key}: {size}")
    for entry in datamodule.prepared.get("skipped", []):  # pieces a converter could not use, with why
        print(f"  skipped {entry['piece']}: {entry['reason']}")
