"""What each speed option buys a recipe's training step on this machine: the before/after figures of issue 14.

    export SEQTASKS_DATA_DIR=/path/to/data
    python benchmarks/speed_options.py                        # ner sentiment music, torch's default threads
    python benchmarks/speed_options.py --tasks ner --threads 1 --batches 40 --repeats 3
    python benchmarks/speed_options.py --quick

Each variant trains a fresh copy of the recipe's initial network on the same pre-collated batches in a plain
loop (``bench.py``'s batches and losses: forward → loss → backward → clip → step); variants alternate within
each repeat and the table gives median units/s, the ratio to the recipe as committed, and how far the first
timed batches' losses move from the float32 recipe's (bf16 and compile are only worth keeping if they stay
close). Variants:

* ``recipe``: the recipe as committed (AdamW ``fused: true``: one kernel per parameter tensor);
* ``foreach AdamW``: the recipe's AdamW without ``fused`` (torch's default multi-tensor path; the recipes
  before this change);
* ``sparse embedding``: the word embedding with sparse gradients, updated by ``torch.optim.SparseAdam``
  (lazy: only the rows a batch uses; the other parameters keep the recipe's AdamW; clipping leaves the sparse
  gradient out) — a different optimiser, not the same update done faster;
* ``bf16 autocast``: forward and loss under ``torch.autocast("cpu", torch.bfloat16)`` (what Lightning's
  ``precision: bf16-mixed`` does);
* ``compile``: ``torch.compile`` of the network (``dynamic=True``: every batch has its own width); its
  compile time is printed apart. Dynamo does not trace ``nn.LSTM``/``GRU``/``RNN`` (a graph break), so
  only the layers around the encoder are compiled. Timed after every other variant's repeats.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SPECS, prepared

VARIANTS = ["recipe", "foreach AdamW", "sparse embedding", "bf16 autocast", "compile"]


def optimizer_for(task, network: nn.Module, variant: str):
    """The recipe's optimizer over ``network`` (or the variant's), and the parameters clipping covers."""
    if variant == "foreach AdamW":
        base = task.optimizer(network.parameters())
        keys = ("lr", "betas", "eps", "weight_decay", "amsgrad")
        group = {k: v for k, v in base.param_groups[0].items() if k in keys}
        return torch.optim.AdamW(network.parameters(), **group), list(network.parameters())
    if variant == "sparse embedding":
        network.embedding.sparse = True
        embedding = network.embedding.weight
        rest = [p for p in network.parameters() if p is not embedding]
        dense = task.optimizer(rest)
        lazy = torch.optim.SparseAdam([embedding], lr=dense.param_groups[0]["lr"])
        return _Both(dense, lazy), rest
    return task.optimizer(network.parameters()), list(network.parameters())


class _Both:
    def __init__(self, *optimizers) -> None:
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()


def run(ready, variant: str, warmup: int) -> tuple[float, list[float], float]:
    """(units/s over the timed batches, the per-batch losses, seconds spent compiling)."""
    spec, task = ready.spec, ready.task
    network = copy.deepcopy(task.network)
    network.train()
    optimizer, clipped = optimizer_for(task, network, variant)
    model, compile_seconds = network, 0.0
    if variant == "compile":
        model = torch.compile(network, dynamic=True)
    torch.manual_seed(0)
    losses, units, start = [], 0, time.perf_counter()
    for index, batch in enumerate(ready.batches):
        if index == warmup:
            start = time.perf_counter()
        t0 = time.perf_counter()
        if variant == "bf16 autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = spec.loss(model, batch, task)
        else:
            loss = spec.loss(model, batch, task)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if ready.clip is not None:
            torch.nn.utils.clip_grad_norm_(clipped, ready.clip)
        optimizer.step()
        losses.append(float(loss.detach()))
        if variant == "compile" and index < warmup:
            compile_seconds += time.perf_counter() - t0
        if index >= warmup:
            units += int(spec.count(batch))
    return units / (time.perf_counter() - start), losses, compile_seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(SPECS), default=["ner", "sentiment", "music"])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="8 batches, 2 warm-up, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.warmup, args.repeats = 8, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the recipes' FlushDenormal callback does while they train
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; plain-loop training steps")
    for name in args.tasks:
        with prepared(name, args.batches) as ready:
            variants = [
                v
                for v in args.variants
                if v != "sparse embedding" or hasattr(ready.task.network, "embedding")
            ]
            rates: dict[str, list[float]] = {v: [] for v in variants}
            losses: dict[str, list[float]] = {}
            compile_seconds: dict[str, float] = {}
            failed: dict[str, str] = {}
            run(ready, "recipe", args.warmup)  # untimed: first calls at each width
            # compile last: its compile workers and caches stay in the process, so it must not come
            # between the other variants' repeats
            eager = [v for v in variants if v != "compile"]
            schedule = [eager if r % 2 == 0 else eager[::-1] for r in range(args.repeats)]
            schedule += [["compile"]] * args.repeats if "compile" in variants else []
            for order in schedule:
                for variant in order:
                    if variant in failed:
                        continue
                    try:
                        rate, variant_losses, compiling = run(ready, variant, args.warmup)
                    except Exception as error:  # a variant this machine or model cannot run: say why
                        failed[variant] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
                        continue
                    rates[variant].append(rate)
                    losses.setdefault(variant, variant_losses)
                    if compiling:
                        compile_seconds.setdefault(variant, compiling)
            base = statistics.median(rates["recipe"])
            reference = losses["recipe"]
            spec = SPECS[name]
            print(f"\n{spec.title} (`{spec.recipe}`), {spec.unit}/s, median of {args.repeats}")
            print("\n| variant | units/s | vs recipe | largest loss change (first 10 batches) |")
            print("|---|---:|---:|---:|")
            for variant in variants:
                if variant in failed:
                    print(f"| {variant} | — | — | failed: {failed[variant]} |")
                    continue
                rate = statistics.median(rates[variant])
                gap = max(
                    abs(a - b) / abs(b) for a, b in zip(losses[variant][:10], reference[:10], strict=True)
                )
                extra = (
                    f" (compiling: {compile_seconds[variant]:.0f} s)" if variant in compile_seconds else ""
                )
                print(f"| {variant}{extra} | {rate:,.0f} | {rate / base:.2f}× | {100 * gap:.2f} % |")


if __name__ == "__main__":
    main()
