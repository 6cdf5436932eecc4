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


def _tiny_composer():
    from seqtasks.encoders import GRUEncoder
    from seqtasks.networks.music import PianoRollNetwork
    from seqtasks.tasks.music import PianoRollComposer

    return PianoRollComposer(
        lambda keys: PianoRollNetwork(
            keys, lambda n: GRUEncoder(n, hidden_size=8, bidirectional=False), input_dropout=0.3, dropout=0.3
        )
    )


def test_the_plain_loop_stepping_in_turn_repeats_the_pipelines_losses(bench, tmp_path, monkeypatch):
    """Stepping in turn inside one fit, with dropout: the plain loop's own random stream (seeded at each
    epoch's first batch as the tasks seed theirs) gives it the pipeline's dropout masks, so the two paths'
    per-batch losses agree; its steps run on every batch, half of them before and half after the
    pipeline's, and only those inside the timed window are taken out of it."""
    from sentiment_throughput import BatchTimer

    monkeypatch.setenv("PL_GLOBAL_SEED", "3")
    generator = torch.Generator().manual_seed(0)
    batches = []
    for index in range(5):
        lengths = torch.tensor([4 + index % 3, 3])
        rolls = (torch.rand(2, int(lengths.max()), 88, generator=generator) < 0.1).float()
        batches.append({"rolls": rolls, "lengths": lengths})
    task = _tiny_composer()

    def loss_of(network, batch):
        nll_sum, frames, _, _ = network.nll(batch["rolls"], batch["lengths"])
        return nll_sum / frames

    plain = bench.PlainInTurn(task.network, lambda n: torch.optim.AdamW(n.parameters()), loss_of, 1.0, seed=3)
    turn = bench.InTurn(plain)
    timer = BatchTimer(1, lambda batch: batch["lengths"].sum())
    task.configure_optimizers = lambda: torch.optim.AdamW(task.parameters())
    trainer = bench.bare_trainer(max_epochs=2, callbacks=[timer, turn], default_root_dir=tmp_path)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    trainer.fit(task, train_dataloaders=loader)
    pipeline = [float(x) for x in timer.losses]
    assert len(plain.losses) == len(pipeline) == 10
    assert plain.losses == pytest.approx(pipeline, abs=1e-6)
    assert len(set(plain.losses)) == 10  # the weights moved: both paths trained, none repeated a step
    assert len(turn.spans) == 10
    window = turn.inside(timer.start, timer.end)
    # the first batch's plain step ran before the window opened
    assert 0 < window < sum(b - a for a, b in turn.spans)


def test_in_turn_counts_only_the_part_of_each_run_inside_the_window(bench):
    turn = bench.InTurn(None)
    turn.spans = [(0.0, 1.0), (2.0, 3.0), (4.0, 6.0)]
    assert turn.inside(0.5, 5.0) == pytest.approx(0.5 + 1.0 + 1.0)
    assert turn.inside(10.0, 11.0) == 0.0


def test_the_input_pipeline_rate_is_a_median_over_passes(bench, tmp_path, monkeypatch):
    """One pass slowed down (a VM pause) does not decide the rate: the median of the passes does."""
    from fixtures.ner import make_tiny_ner

    from seqtasks.data import TokenTaggingDataModule

    dm = TokenTaggingDataModule(str(make_tiny_ner(tmp_path / "d")), batch_size=3)
    dm.setup("fit")
    rows = len(dm._splits["train"])
    encode = dm.encode_row
    calls = {"n": 0}

    def encode_row(row, index, source):
        calls["n"] += 1
        if 1 + rows < calls["n"] <= 1 + 2 * rows:  # the second timed pass (after the untimed row)
            time.sleep(0.05)
        return encode(row, index, source)

    monkeypatch.setattr(dm, "encode_row", encode_row)
    figures = bench.input_pipeline(dm, 10_000, passes=3)
    assert calls["n"] == 1 + 3 * rows
    assert figures["rows"] == rows
    slowed = rows / (0.05 * rows)  # the slowed pass's rate at best: 20 rows/s
    assert figures["raw_rows_per_s"] > 5 * slowed
    assert figures["loader_rows_per_s"] > 0


def test_overhead_takes_the_tasks_own_step_work_away_and_feeds_the_loader_it_is_given(bench, tmp_path):
    """``overhead.py``'s two reduced pipelines: a copy of the task whose training step is the loss alone (no
    metric update, no seeding, no transfer; the task itself untouched), trained by ``run_in_turn`` on the
    loader it is given, with the plain loop in turn on the same batches."""
    import overhead

    generator = torch.Generator().manual_seed(0)
    batches = []
    for index in range(4):
        lengths = torch.tensor([3 + index, 2])
        rolls = (torch.rand(2, int(lengths.max()), 88, generator=generator) < 0.1).float()
        batches.append({"rolls": rolls, "lengths": lengths})
    task = _tiny_composer()
    spec = bench.SPECS["music"]
    bare = overhead.without_task_work(task, spec.loss)
    assert type(task).__name__ == "PianoRollComposer" and type(bare).__name__ == "BarePianoRollComposer"
    assert bare.transfer_batch_to_device(batches[0], torch.device("cpu"), 0) is batches[0]
    state = torch.get_rng_state()
    bare.on_train_batch_start(batches[0], 0)  # no epoch seeding
    assert torch.equal(torch.get_rng_state(), state)

    class Cli:
        def instantiate_trainer(self, callbacks, **settings):
            return bench.bare_trainer(callbacks=callbacks, default_root_dir=tmp_path, **settings)

    loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    run = bench.run_in_turn(Cli(), task, spec, 1.0, 1, model=bare, loader=loader, max_epochs=1)
    assert run.tokens == [int(b["lengths"].sum()) for b in batches]
    assert len(run.plain_losses) == len(run.pipeline_losses) == 4
    assert bare.train_nll.update_count == 0 and task.train_nll.update_count == 0  # no metric update
    moved = [not torch.equal(a, b) for a, b in zip(bare.parameters(), task.parameters(), strict=True)]
    assert any(moved)  # the copy trained, the task did not
