"""Train-step throughput of the encoders' two exact variable-length paths: ``pack`` vs ``padded``.

Run on an otherwise idle machine:

    make bench                                   # this script, then sentiment_throughput.py
    python benchmarks/encoder_paths.py           # defaults: 3 timed steps, 1 warm-up step, 3 repeats
    python benchmarks/encoder_paths.py --steps 1 --repeats 1 --hidden 128   # a quick smoke run

For RNNEncoder, GRUEncoder and LSTMEncoder (bidirectional, one layer, input 128, hidden 128 and 256,
batch 64, T=256) it times forward + backward of ``outputs.sum()`` (inputs require grad, as they would
behind an embedding), on lengths drawn uniformly in [T/2, T] and on all-equal lengths, and counts real
tokens (the sum of the lengths), so padding is work the padded path pays for, not throughput it earns.
Both paths get the same weights and the same batch; each model takes its warm-up steps before its first
measurement, the order of the two paths alternates between repeats, and each number is the median over
repeats.

The from-scratch ElmanEncoder (a Python loop per time step), when ``seqtasks.encoders`` exports it,
is timed at a smaller size next to RNNEncoder at that size, as a reference for what the loop costs.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import seqtasks.encoders as encoders

PATHS = ("pack", "padded")


@dataclass(frozen=True)
class Case:
    """One row of the table: an encoder class at one size on one kind of batch."""

    name: str
    hidden: int
    ragged: bool
    input_size: int = 128
    time: int = 256
    batch: int = 64

    @property
    def lengths_label(self) -> str:
        return f"[{self.time // 2}, {self.time}]" if self.ragged else f"all {self.time}"


def make_batch(case: Case, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(B, T, D)`` and lengths; ragged lengths hold one full row so both paths see width T."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(case.batch, case.time, case.input_size, generator=generator)
    if case.ragged:
        lengths = torch.randint(case.time // 2, case.time + 1, (case.batch,), generator=generator)
        lengths[0] = case.time
    else:
        lengths = torch.full((case.batch,), case.time, dtype=torch.long)
    return inputs, lengths


def train_step_rate(
    encoder: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor, steps: int, warmup: int
) -> float:
    """Real tokens per second of forward + backward, over ``steps`` steps after ``warmup`` untimed ones."""
    encoder.train()
    tokens = int(lengths.sum()) * steps
    for index in range(warmup + steps):
        if index == warmup:
            start = time.perf_counter()
        encoder.zero_grad(set_to_none=True)
        x = inputs.detach().requires_grad_(True)
        encoder(x, lengths=lengths).outputs.sum().backward()
    return tokens / (time.perf_counter() - start)


def build(factory: Callable[..., nn.Module], case: Case, seed: int, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return factory(case.input_size, case.hidden, num_layers=1, bidirectional=True, **kwargs)


def measure_paths(case: Case, args: argparse.Namespace) -> dict[str, float]:
    """Median tokens/s of each path; both paths share the weights (same seed) and the batch."""
    factory = getattr(encoders, case.name)
    inputs, lengths = make_batch(case, args.seed)
    models = {path: build(factory, case, args.seed, variable_length=path) for path in PATHS}
    rates: dict[str, list[float]] = {path: [] for path in PATHS}
    for repeat in range(args.repeats):
        order = PATHS if repeat % 2 == 0 else PATHS[::-1]
        for path in order:
            warmup = args.warmup if repeat == 0 else 0
            rates[path].append(train_step_rate(models[path], inputs, lengths, args.steps, warmup))
    return {path: statistics.median(values) for path, values in rates.items()}


def measure_loop_reference(args: argparse.Namespace) -> tuple[Case, float, float] | None:
    """ElmanEncoder vs RNNEncoder (padded) at a small size; None when ElmanEncoder is not exported."""
    elman = getattr(encoders, "ElmanEncoder", None)
    if elman is None:
        return None
    case = Case("ElmanEncoder", hidden=64, ragged=True, input_size=32, time=64)
    inputs, lengths = make_batch(case, args.seed)
    kwargs = {"variable_length": "padded"} if "variable_length" in inspect.signature(elman).parameters else {}
    models = {
        "loop": build(elman, case, args.seed, **kwargs),
        "fused": build(encoders.RNNEncoder, case, args.seed, variable_length="padded"),
    }
    rates: dict[str, list[float]] = {name: [] for name in models}
    for repeat in range(args.repeats):
        names = list(models) if repeat % 2 == 0 else list(models)[::-1]
        for name in names:
            warmup = args.warmup if repeat == 0 else 0
            rates[name].append(train_step_rate(models[name], inputs, lengths, args.steps, warmup))
    return case, statistics.median(rates["loop"]), statistics.median(rates["fused"])


def machine_line() -> str:
    parts = [
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        platform.processor() or platform.machine(),
        f"{os.cpu_count()} CPUs",
        f"torch {torch.__version__}",
        f"{torch.get_num_threads()} torch threads",
    ]
    return " · ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per measurement")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed train steps before a model's first measurement"
    )
    parser.add_argument("--repeats", type=int, default=3, help="measurements per path (median reported)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256], help="hidden sizes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1:
        parser.error("--steps and --repeats must be positive, --warmup non-negative")

    cases = [
        Case(name, hidden, ragged)
        for name in ("RNNEncoder", "GRUEncoder", "LSTMEncoder")
        for hidden in args.hidden
        for ragged in (True, False)
    ]
    lines = [
        f"Encoder train step (forward + backward), bidirectional, 1 layer, batch 64 — {machine_line()}",
        "",
        "| encoder | input | hidden | T | lengths | pack tok/s | padded tok/s | padded/pack |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    ratios = []
    for case in cases:
        rates = measure_paths(case, args)
        ratio = rates["padded"] / rates["pack"]
        ratios.append(ratio)
        lines.append(
            f"| {case.name} | {case.input_size} | {case.hidden} | {case.time} | {case.lengths_label} "
            f"| {rates['pack']:,.0f} | {rates['padded']:,.0f} | {ratio:.2f} |"
        )
    reference = measure_loop_reference(args)
    loop_note = "ElmanEncoder not exported: loop reference skipped"
    if reference is not None:
        case, loop_rate, fused_rate = reference
        lines.append(
            f"| RNNEncoder (fused, reference) | {case.input_size} | {case.hidden} | {case.time} "
            f"| {case.lengths_label} | — | {fused_rate:,.0f} | — |"
        )
        lines.append(
            f"| ElmanEncoder (Python loop) | {case.input_size} | {case.hidden} | {case.time} "
            f"| {case.lengths_label} | — | {loop_rate:,.0f} | — |"
        )
        loop_note = f"ElmanEncoder's loop is {fused_rate / loop_rate:.1f}× slower than the fused RNNEncoder"
    print("\n".join(lines))
    print(
        f"\npadded/pack: median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}) over {len(ratios)} cases, "
        f"{args.repeats} repeats of {args.steps} steps; {loop_note}."
    )


if __name__ == "__main__":
    main()
