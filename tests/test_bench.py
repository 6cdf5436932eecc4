"""The one-table benchmark's own arithmetic: the GEMM ceiling, the per-part clock, the results file."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench", BENCHMARKS / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench", None)
    sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize(("cell", "gates"), [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_the_ceiling_counts_three_times_the_forward_products(bench, cell, gates):
    """A training step's unavoidable products: the forward's 2·B·T·G·H·(I + H) FLOPs per layer and
    direction, and twice that backward (input and weight gradients)."""
    shape = {"cell": cell, "input": 30, "hidden": 20, "layers": 2, "directions": 2}
    batch, steps = 4, 7
    flops = sum(2 * m * k * n * count for m, k, n, count in bench.step_gemms(shape, batch, steps))
    forward = 0
    for layer in range(2):
        width = 30 if layer == 0 else 2 * 20
        forward += 2 * (2 * batch * steps * gates * 20 * (width + 20))  # two directions
    assert flops == 3 * forward


def test_the_gemm_timer_measures_each_shape_once(bench):
    timer = bench.GemmTimer(repeats=2)
    first = timer.seconds(8, 16, 32)
    assert first > 0 and list(timer.cache) == [(8, 16, 32, False)]
    assert timer.seconds(8, 16, 32) == first


def test_a_per_step_product_counts_at_the_faster_of_mm_and_bmm(bench):
    """The step's recurrent products (count > 1) take the faster of one ``mm`` and a ``bmm`` share."""
    timer = bench.GemmTimer(repeats=1)
    timer.cache = {(4, 8, 32, False): 2.0, (4, 8, 32, True): 0.5, (4, 32, 8, False): 1.0}
    timer.cache |= {(4, 32, 8, True): 3.0, (12, 16, 32, False): 7.0, (12, 32, 16, False): 7.0}
    timer.cache |= {(32, 12, 16, False): 7.0, (32, 12, 8, False): 7.0}
    shape = {"cell": "lstm", "input": 16, "hidden": 8, "layers": 1, "directions": 1}
    seconds, _ = timer.ceiling(shape, [(4, 3)])
    assert seconds == 4 * 7.0 + 3 * 0.5 + 3 * 1.0


class _SlowBackward(torch.autograd.Function):
    """Identity whose backward sleeps: a part whose gradient takes known time."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        time.sleep(0.05)
        return grad


class _Slow(nn.Module):
    def forward(self, x):
        return _SlowBackward.apply(x)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3, 3)
        self.slow = _Slow()
        self.last = nn.Linear(3, 1)

    def forward(self, x):
        return self.last(self.slow(self.first(x)))


def test_the_part_clock_gives_backward_time_to_the_part_that_spent_it(bench):
    network = _Toy()
    clock = bench.PartClock(network, {"first": ["first"], "slow": ["slow"], "last": ["last"]})
    loss = network(torch.randn(5, 3)).sum()
    start = time.perf_counter()
    loss.backward()
    times = clock.backward_times(start, time.perf_counter(), "last")
    clock.close()
    assert times["slow"] >= 0.045  # the sleep happens after the gradient reaches the slow part's output
    assert times["first"] < 0.04 and times["last"] < 0.04
    assert set(clock.forward) == {"first", "slow", "last"} and all(v > 0 for v in clock.forward.values())
    network(torch.randn(5, 3)).sum().backward()  # hooks removed: nothing more is recorded
    assert clock.arrivals == []


def test_the_part_clock_times_a_decoder_step_method(bench):
    """Decoders run position by position through ``step``, not ``forward``: the clock wraps it too."""

    class Stepper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def step(self, x):
            time.sleep(0.01)
            return self.linear(x)

    network = nn.Module()
    network.decoder = Stepper()
    clock = bench.PartClock(network, {"decoder": ["decoder"]})
    network.decoder.step(torch.randn(1, 2))
    assert clock.forward["decoder"] >= 0.009
    clock.close()
    assert "step" not in network.decoder.__dict__


def test_results_replace_their_own_section_only(bench, tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nolder text\n")
    bench.write_results(path, "table one")
    bench.write_results(path, "table two")
    text = path.read_text()
    assert text.startswith("# Results\n\nolder text\n")
    assert "table two" in text and "table one" not in text
    assert text.count(bench.START) == 1 and text.count(bench.END) == 1


def test_the_verdicts_say_which_targets_are_missed(bench):
    good = bench.TaskResult("ner", "NER", "ner-conll2003", "tokens", 2, 60, 3)
    good.__dict__.update(
        ratio=0.97,
        padding=0.03,
        raw_rows_per_s=5000,
        rows_per_s_model=20,
        pipeline_rate=6000,
        plain_encoder=0.8,
    )
    slow = bench.TaskResult("music", "Music", "music-jsb", "frames", 2, 60, 3)
    slow.__dict__.update(ratio=0.90, padding=0.12, raw_rows_per_s=100, rows_per_s_model=20)
    lines = bench.verdicts([good, slow])
    assert "NOT met" not in lines[0]
    assert lines[1].count("NOT met") == 3
