"""What the training pipeline adds to a step, part by part: the recipe's pipeline, then without the task's own
per-step work, then without the loader too — each against the plain loop in turn, as ``bench.py`` measures.

Run on an otherwise idle machine, with the data directory set:

    export SEQTASKS_DATA_DIR=/path/to/data
    python benchmarks/overhead.py                        # music-jsb, 5 repeats (~4 min on 2 cores)
    python benchmarks/overhead.py --tasks music ner --repeats 3
    python benchmarks/overhead.py --set data.init_args.batch_size=16     # a recipe setting changed

Each repeat runs three fits with the plain loop stepping in turn (``bench.run_in_turn``: the same batches,
the plain step's time taken out of the pipeline's window), in a rotating order:

* **recipe pipeline**: what ``bench.py`` times — the recipe's DataLoader, the task's training step (its
  metric update and logging), the epoch seeding and the batch transfer, Lightning's loop;
* **no task work**: the same, with a copy of the task whose training step is the loss alone and whose
  batch-start seeding and batch transfer do nothing;
* **no task work, no loader**: that copy fed the same batches already collated, from a list
  (``DataLoader(batches, batch_size=None)``, one epoch): what is left is Lightning's own loop on this model.

The differences between the rows are what the task's per-step work and the loader cost inside the loop. The
last row is the best pipeline/plain ratio Lightning allows for this model on this machine; the table also
prints how many ms a step may add for the ratio to stay at or above ``bench.py``'s target.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
VARIANTS = ("recipe pipeline", "no task work", "no task work, no loader")


def without_task_work(task: Any, loss: Any) -> Any:
    """A copy of ``task`` whose training step is ``loss(network, batch, task)`` alone (no metric update, no
    logging), whose batch-start seeding and batch transfer do nothing (the batch stays on the CPU)."""
    cls = type(task)

    def training_step(self, batch, batch_idx):
        return loss(self.network, batch, self)

    def on_train_batch_start(self, batch, batch_idx):
        return None

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch

    bare = type(
        f"Bare{cls.__name__}",
        (cls,),
        {
            "training_step": training_step,
            "on_train_batch_start": on_train_batch_start,
            "transfer_batch_to_device": transfer_batch_to_device,
        },
    )
    model = copy.deepcopy(task)
    model.__class__ = bare
    return model


def measure(name: str, batches: int, repeats: int, warmup: int, overrides: tuple[str, ...]) -> dict:
    import bench

    rows: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    with bench.prepared(name, batches, overrides) as ready:
        spec, task, cli = ready.spec, ready.task, ready.cli
        epochs = {"max_epochs": ready.epochs, "limit_train_batches": None} if ready.epochs > 1 else {}
        steps = len(ready.batches) - warmup

        def fit(variant: str) -> bench.InTurnRun:
            settings: dict[str, Any] = dict(epochs)
            if variant != VARIANTS[0]:
                settings["model"] = without_task_work(task, spec.loss)
            if variant == VARIANTS[2]:  # the batches from a list, all in one epoch
                loader = torch.utils.data.DataLoader(ready.batches, batch_size=None)
                settings.update(loader=loader, max_epochs=1, limit_train_batches=None)
            return bench.run_in_turn(cli, task, spec, ready.clip, warmup, **settings)

        fit(VARIANTS[-1])  # untimed: every padded width's first kernel call
        for repeat in range(repeats):
            order = VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]
            for variant in order:
                run = fit(variant)
                if len(run.tokens) != len(ready.batches):
                    raise RuntimeError(f"{variant}: {len(run.tokens)} batches, not {len(ready.batches)}")
                plain_ms = 1e3 * run.plain_seconds / steps
                rows[variant].append((plain_ms, 1e3 * (run.pipeline_seconds - run.plain_seconds) / steps))
    return {"task": name, "recipe": spec.recipe, "steps": steps, "rows": rows}


def table(results: list[dict], target: float) -> str:
    lines = [
        "| task | pipeline | plain step (ms) | pipeline adds (ms) | pipeline/plain | adds, per repeat (ms) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for result in results:
        for variant, runs in result["rows"].items():
            plain = statistics.median(p for p, _ in runs)
            added = statistics.median(a for _, a in runs)
            ratio = statistics.median(p / (p + a) for p, a in runs)
            each = ", ".join(f"{a:.2f}" for _, a in runs)
            lines.append(
                f"| {result['recipe']} | {variant} | {plain:.2f} | {added:+.2f} | {ratio:.3f} | {each} |"
            )
        plain = statistics.median(p for runs in result["rows"].values() for p, _ in runs)
        lines.append(
            f"| {result['recipe']} | at {target} | {plain:.2f} | ≤ {plain * (1 / target - 1):+.2f} | "
            f"{target} | ({result['steps']} timed steps a fit) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(HERE))
    import bench

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(bench.SPECS), default=["music"])
    parser.add_argument("--batches", type=int, default=120, help="training batches per fit")
    parser.add_argument("--warmup", type=int, default=10, help="first batches of each fit left untimed")
    parser.add_argument("--repeats", type=int, default=5, help="fits of each pipeline")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="recipe settings (fit --KEY=VALUE)"
    )
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)  # as bench.py does
    overrides = tuple(f"--{setting}" for setting in args.set)
    results = [measure(n, args.batches, args.repeats, args.warmup, overrides) for n in args.tasks]
    print(table(results, bench.TARGETS["ratio"]))


if __name__ == "__main__":
    main()
