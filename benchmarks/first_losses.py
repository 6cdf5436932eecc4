"""Record the first training losses of each recipe, and compare two recordings step by step.

Run (from the checkout whose recipes/ and code are to be measured; NER recipes need runs/vectors/):

    SEQTASKS_DATA_DIR=... OMP_NUM_THREADS=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
        python benchmarks/first_losses.py --recipe sentiment-imdb --out benchmarks/first_losses_after.json
    python benchmarks/first_losses.py --all --out after.json              # every recipe (skips listed below)
    python benchmarks/first_losses.py --out after.json --compare benchmarks/first_losses_before.json
    python benchmarks/first_losses.py --recipe music-jsb --compare benchmarks/first_losses_before.json

Each recipe (``recipes/<name>.yaml``, relative to the working directory) is built the way the CLI
builds it, ``seqtasks.cli.run_lightning(["--config", path, *overrides], run=False)`` (the seed is set,
the datamodule and model instantiated; with ``run=False`` the parser has no subcommands, so no ``fit``),
then trained for ``--steps`` optimizer steps by a plain Trainer of this script (CPU, one thread, no
logger, no checkpoints, no validation, the recipe's ``gradient_clip_val``), which records
``float(outputs["loss"])`` after every training batch. ``--out`` merges ``{recipe: [losses]}`` into a JSON
file (floats written as their repr, so they read back exactly; skipped recipes under ``"_skipped"``).
``--compare FILE`` prints recipe, steps compared, max |difference| and "identical" or the first differing
step, against the losses just recorded (or, with no recipe given, against the ``--out`` file), and exits 1
when any differ or are missing (2 when a recipe failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

SKIPPED = {
    "translation-iitb": "streams cfilt/iitb-english-hindi from the Hugging Face Hub (streaming: true), "
    "which is unreachable offline; the data directory holds only its dev/test sets",
}
OVERRIDES = ["--trainer.logger", "false"]  # the recipe's own Trainer is built but never run: no W&B run


class LossRecorder(pl.Callback):
    """The training loss after every training batch, as Python floats."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.losses.append(float(outputs["loss"]))


def trainer_config(config: Any) -> Any:
    """The ``trainer`` section of the CLI's parsed config (with or without a subcommand level)."""
    if "trainer" not in config and "fit" in config:
        config = config["fit"]
    return config["trainer"]


def first_losses(recipe: str, steps: int, overrides: list[str]) -> list[float]:
    try:
        from seqtasks.training import run_lightning
    except ImportError:  # the layout before the redesign (how first_losses_before.json was recorded)
        from seqtasks.cli import run_lightning

    path = Path("recipes") / f"{recipe}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path.resolve()}: no such recipe")
    argv, sys.argv = sys.argv, ["seqtasks"]  # LightningCLI must not see this script's arguments
    try:
        cli = run_lightning(["--config", str(path), *OVERRIDES, *overrides], run=False)
    finally:
        sys.argv = argv
    recorder = LossRecorder()
    clip = trainer_config(cli.config).get("gradient_clip_val")
    print(f"{recipe}: gradient_clip_val {clip}", flush=True)
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        gradient_clip_val=clip,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(cli.model, datamodule=cli.datamodule)
    return recorder.losses


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def compare(current: dict[str, Any], reference: dict[str, Any], recipes: list[str]) -> bool:
    """Print the comparison table; True when every recipe's losses are identical."""
    rows, ok = [], True
    for recipe in recipes:
        mine, theirs = current.get(recipe), reference.get(recipe)
        if mine is None or theirs is None:
            rows.append((recipe, "0", "-", "missing in " + ("current" if mine is None else "reference")))
            ok = False
            continue
        count = min(len(mine), len(theirs))
        diffs = [abs(a - b) for a, b in zip(mine[:count], theirs[:count], strict=True)]
        first = next((i + 1 for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b), None)
        if first is None and len(mine) == len(theirs):
            status = "identical"
        else:
            ok = False
            status = f"differs from step {first}" if first else f"lengths {len(mine)} vs {len(theirs)}"
        rows.append((recipe, str(count), f"{max(diffs, default=0.0):.3g}", status))
    header = ("recipe", "steps", "max |diff|", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="First training losses per recipe (module docstring).")
    parser.add_argument("--recipe", action="append", default=[], help="recipes/<NAME>.yaml (repeatable)")
    parser.add_argument("--all", action="store_true", help="every recipe under recipes/")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps to record (default 20)")
    parser.add_argument("--out", type=Path, help="JSON file to merge {recipe: [losses]} into")
    parser.add_argument("--compare", type=Path, help="JSON file of reference losses to compare with")
    parser.add_argument("overrides", nargs="*", help="extra CLI arguments for every recipe (after --)")
    options = parser.parse_args(argv)
    recipes = list(options.recipe)
    if options.all:
        found = Path("recipes").glob("*.yaml")
        recipes += sorted(p.stem for p in found if p.stem not in recipes and p.name != "base.yaml")
    if not recipes and not (options.compare and options.out):
        parser.error("give --recipe NAME or --all (or --out and --compare to compare two files)")
    torch.set_num_threads(1)

    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    failed: list[str] = []
    for recipe in recipes:
        if recipe in SKIPPED:
            skipped[recipe] = SKIPPED[recipe]
            print(f"{recipe}: skipped ({SKIPPED[recipe]})", flush=True)
            continue
        start = time.perf_counter()
        try:
            losses = first_losses(recipe, options.steps, options.overrides)
        except (Exception, SystemExit):  # record the error (a CLI error exits) and go on with the others
            failed.append(recipe)
            print(f"{recipe}: FAILED after {time.perf_counter() - start:.0f} s", flush=True)
            traceback.print_exc()
            continue
        results[recipe] = losses
        seconds = time.perf_counter() - start
        ends = f"first {losses[0]!r}, last {losses[-1]!r}" if losses else "none"
        print(f"{recipe}: {len(losses)} losses in {seconds:.0f} s; {ends}", flush=True)

    if options.out and (results or skipped):
        merged = load(options.out)
        merged.update(results)
        if skipped:
            merged["_skipped"] = {**merged.get("_skipped", {}), **skipped}
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(merged, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    status = 2 if failed else 0
    if options.compare:
        reference = load(options.compare)
        current = results if recipes else load(options.out)
        names = (
            [r for r in recipes if r not in skipped]
            if recipes
            else sorted(k for k in {*current, *reference} if not k.startswith("_"))
        )
        if not compare(current, reference, names):
            status = max(status, 1)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
