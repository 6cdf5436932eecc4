"""One table for the four tasks: how fast each main recipe's model trains, and how far that is from this CPU.

Run on an otherwise idle machine, with the data directory set:

    export SEQTASKS_DATA_DIR=/path/to/data
    make bench                          # = python benchmarks/bench.py --results benchmarks/RESULTS.md
    python benchmarks/bench.py --quick  # a smoke run (few batches, one repeat; minutes)
    python benchmarks/bench.py --tasks ner music --threads 1

Each task runs in its own subprocess (so its peak RSS is its own) on its main recipe:
``sentiment-imdb``, ``ner-conll2003``, ``translation-tatoeba`` and ``music-jsb``. The recipe's model and
datamodule are built by the ``seqtasks`` CLI (logger, callbacks, checkpoints and validation off) and, per
task:

* **pipeline**: ``Trainer.fit`` with the recipe's DataLoader, task metrics and logging (the method of
  ``sentiment_throughput.py``, whose helpers this script reuses); **plain**: a fresh copy of the same initial
  network with the recipe's optimizer and clipping on the same batches. The two step **in turn** inside one
  fit (a callback runs the plain step on each batch the pipeline gets, before the pipeline's step on even
  batches, after it on odd ones, with its own random stream; its time is taken out of the pipeline's
  window), so both meet the same machine at every step: whole runs one after the other left the ratio to
  the VM's drift (music, same code: per-repeat ratios 0.82–1.00 run after run, 0.90–0.93 in turn). The
  table gives the median over repeats of each fit's ratio (target ≥ 0.95) and what the pipeline adds to a
  step in ms.
  **pipeline /s** comes from a fit of the pipeline alone in each repeat (in turn, two copies of a large
  model and its optimizer state share the caches and both run slower). Units: real (unpadded) tokens for
  sentiment and NER, target subwords for translation, frames for music.
* **Lightning's own floor**: the same trainer settings on a one-parameter model against the same plain
  loop: what Lightning's loop costs a step on this machine whatever the model (so a step of ``s`` ms can
  reach at best ``s / (s + floor)``). ``overhead.py`` takes one task's pipeline apart the same way (the
  recipe's; without the task's own step work; without the loader too).
* **input pipeline**: raw rows of the training split (read from the Parquet) → the datamodule's
  ``encode_row`` → ``collate`` in batches, rows/s; and the training DataLoader over the encoded split (what an
  epoch after the first pays). Compared with the rows/s the model consumes in the pipeline (target ≥ 10×).
* **padding**: padded positions / all positions of one whole training epoch's batches (target < 10 %; the
  first batches alone are a noisy sample: NER's first 60 gave 11.4 %, its epoch 5.6 %).
* **short training sets** (JSB: 29 batches an epoch): both paths run whole epochs, each in its own order
  and seeded as the tasks seed it, until ``--batches`` are reached, so the pipeline pays its epoch starts
  and ends and the timed window is long enough to be stable.
* **share of a step** by part (forward + backward of each; backward time is attributed by the arrival of
  gradients at each part's output: the interval until the next arrival belongs to the part whose gradient
  just arrived), the optimizer (clip + step + zero), and the rest (the glue between parts, the loss).
* **GEMM ceiling**: the float32 matrix products a training step of the recipe's encoder cannot avoid (for
  each layer and direction: the input projection of all positions at once and its two backward products,
  one recurrent product per time step forward and one backward, the recurrent weight gradient at once),
  each timed alone at its exact shape with ``torch.mm`` (a per-step product also as a batch of such
  products in one ``torch.bmm``, the faster counting; the fastest of repeats); the sum is the step's
  ceiling. **in model** is
  that ceiling over the encoder's forward + backward time inside the training step; **plain encoder** is
  the ceiling over the time of the encoder alone (the same cell, sizes and batch shapes, padded, on random
  inputs, forward + a sum's backward). The target (≥ 70 %) is the NER BiLSTM's plain figure.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gc
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from seqtasks.tasks.base import epoch_seed

HERE = Path(__file__).resolve().parent
RECIPES = HERE.parent / "recipes"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
TARGETS = {"ratio": 0.95, "padding": 0.10, "input": 10.0, "ner_rate": 5400.0, "gemm": 0.70}


# ---- what differs between the tasks ---------------------------------------------------------------------
def _classifier_loss(network: nn.Module, batch: dict[str, Tensor], task: Any) -> Tensor:
    return network.loss(network(batch["tokens"], batch["lengths"]), batch["labels"])


def _tagger_loss(network: nn.Module, batch: dict[str, Tensor], task: Any) -> Tensor:
    scores = network(batch["words"], batch["chars"], batch["casing"], batch["lengths"])
    return network.loss(scores, batch["tags"], network.mask(batch["lengths"], scores.size(1)))


def _translation_loss(network: nn.Module, batch: dict[str, Tensor], task: Any) -> Tensor:
    logits = network(batch["source"], batch["source_lengths"], batch["target_in"])
    return task.loss_fn(logits.reshape(-1, logits.size(-1)), batch["target_out"].reshape(-1))


def _music_loss(network: nn.Module, batch: dict[str, Tensor], task: Any) -> Tensor:
    nll_sum, frames, _, _ = network.nll(batch["rolls"], batch["lengths"])
    return nll_sum / frames


@dataclass
class Spec:
    """One task's main recipe and how to count, pad, split and time its batches."""

    title: str
    recipe: str
    unit: str
    loss: Callable[[nn.Module, dict[str, Tensor], Any], Tensor]
    count: Callable[[dict[str, Tensor]], Tensor]
    padding: Callable[[dict[str, Tensor]], tuple[int, int]]  # (real positions, all positions)
    encoder_lengths: Callable[[dict[str, Tensor]], tuple[int, int]]  # the encoder's (B, T) of a batch
    parts: dict[str, list[str]]  # part → the network's submodules (dotted names) it is made of
    loss_part: str  # the part the first stretch of the backward pass (the loss's own) is counted in


def _lengths_padding(key: str) -> Callable[[dict[str, Tensor]], tuple[int, int]]:
    return lambda b: (int(b["lengths"].sum()), b[key].size(0) * b[key].size(1))


def _translation_padding(b: dict[str, Tensor]) -> tuple[int, int]:
    real = int(b["source_lengths"].sum()) + int((b["target_out"] != 0).sum())
    return real, b["source"].numel() + b["target_out"].numel()


SPECS: dict[str, Spec] = {
    "sentiment": Spec(
        "Sentiment (IMDB)",
        "sentiment-imdb",
        "tokens",
        _classifier_loss,
        lambda b: b["lengths"].sum(),
        _lengths_padding("tokens"),
        lambda b: tuple(b["tokens"].shape),
        {"embedding": ["embedding"], "encoder": ["encoder"], "pooler + head": ["pooler", "head"]},
        "pooler + head",
    ),
    "ner": Spec(
        "NER (CoNLL-2003)",
        "ner-conll2003",
        "tokens",
        _tagger_loss,
        lambda b: b["lengths"].sum(),
        _lengths_padding("words"),
        lambda b: tuple(b["words"].shape),
        {"word + casing emb.": ["embedding", "casing"], "char CNN": ["chars"], "encoder": ["encoder"]}
        | {"head + CRF": ["head", "crf"]},
        "head + CRF",
    ),
    "translation": Spec(
        "Translation (Tatoeba en→hi)",
        "translation-tatoeba",
        "target subwords",
        _translation_loss,
        lambda b: (b["target_out"] != 0).sum(),
        _translation_padding,
        lambda b: tuple(b["source"].shape),
        {
            "embeddings": ["source_embedding", "target_embedding"],
            "encoder": ["encoder"],
            "decoder RNN": ["decoder"],
            "attention + combine": ["attention", "combine", "bridge"],
            "output layer": ["output"],
        },
        "output layer",
    ),
    "music": Spec(
        "Music (JSB piano roll)",
        "music-jsb",
        "frames",
        _music_loss,
        lambda b: b["lengths"].sum(),
        _lengths_padding("rolls"),
        lambda b: tuple(b["rolls"].shape[:2]),
        {"encoder": ["encoder"], "output layer": ["head"]},
        "output layer",
    ),
}


# ---- per-part timing of a training step ---------------------------------------------------------------
def _tensors(value: Any) -> Iterator[Tensor]:
    """The tensors in a module's output (a tensor, a tuple of them, or a dataclass such as EncoderOutput)."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _tensors(getattr(value, name))


class PartClock:
    """Forward time of each part (outermost calls only) and the arrival times of gradients at its outputs."""

    def __init__(self, network: nn.Module, parts: dict[str, list[str]]) -> None:
        self.forward = dict.fromkeys(parts, 0.0)
        self.arrivals: list[tuple[float, str]] = []
        self._depth = dict.fromkeys(parts, 0)
        self._started: dict[str, float] = {}
        self._handles = []
        modules = dict(network.named_modules())
        for part, names in parts.items():
            for name in names:
                if name in modules:
                    module = modules[name]
                    self._handles.append(module.register_forward_pre_hook(self._pre(part)))
                    self._handles.append(module.register_forward_hook(self._post(part)))
                    for method in ("step",):  # a decoder stepping one position at a time
                        if hasattr(module, method):
                            self._wrap(module, method, part)

    def _pre(self, part: str):
        def hook(module, args):
            self._depth[part] += 1
            if self._depth[part] == 1:
                self._started[part] = time.perf_counter()

        return hook

    def _post(self, part: str):
        def hook(module, args, output):
            self._depth[part] -= 1
            if self._depth[part] == 0:
                self.forward[part] += time.perf_counter() - self._started[part]
            if torch.is_grad_enabled():
                for tensor in _tensors(output):
                    if tensor.requires_grad:
                        tensor.register_hook(self._arrival(part))

        return hook

    def _wrap(self, module: nn.Module, method: str, part: str) -> None:
        original = getattr(module, method)
        pre, post = self._pre(part), self._post(part)

        def wrapped(*args, **kwargs):
            pre(module, args)
            output = original(*args, **kwargs)
            post(module, args, output)
            return output

        setattr(module, method, wrapped)
        self._handles.append(_Restore(module, method))

    def _arrival(self, part: str):
        def hook(grad):
            self.arrivals.append((time.perf_counter(), part))

        return hook

    def backward_times(self, start: float, end: float, loss_part: str) -> dict[str, float]:
        """Each part's share of the backward pass from ``start`` to ``end`` (see the module docstring)."""
        times = dict.fromkeys(self.forward, 0.0)
        marks = sorted(self.arrivals)
        previous, owner = start, loss_part
        for when, part in marks:
            times[owner] += when - previous
            previous, owner = when, part
        times[owner] += end - previous
        self.arrivals.clear()
        return times

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


class _Restore:
    def __init__(self, module: nn.Module, method: str) -> None:
        self.module, self.method = module, method

    def remove(self) -> None:
        self.module.__dict__.pop(self.method, None)


def step_shares(template: nn.Module, task: Any, spec: Spec, batches, clip, warmup: int) -> dict[str, float]:
    """Seconds per part over the timed batches: forward + backward of each, the optimizer, the rest."""
    network = copy.deepcopy(template)
    network.train()
    optimizer = task.optimizer(network.parameters())
    clock = PartClock(network, spec.parts)
    totals = dict.fromkeys([*spec.parts, "optimizer", "rest", "step"], 0.0)
    for index, batch in enumerate(batches):
        forward_before = dict(clock.forward)
        t0 = time.perf_counter()
        loss = spec.loss(network, batch, task)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(network.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        backward = clock.backward_times(t1, t2, spec.loss_part)
        if index < warmup:
            continue
        parts = 0.0
        for part in spec.parts:
            seconds = clock.forward[part] - forward_before[part] + backward[part]
            totals[part] += seconds
            parts += seconds
        totals["optimizer"] += t3 - t2
        totals["step"] += t3 - t0
        totals["rest"] += (t2 - t0) - parts
    clock.close()
    return totals


# ---- the GEMM ceiling -------------------------------------------------------------------------------------
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def encoder_shape(encoder: nn.Module) -> dict[str, Any]:
    """Cell, sizes, layers and directions of a library encoder (what its GEMMs depend on)."""
    cell = getattr(encoder, "cell", "rnn")
    return {
        "cell": cell,
        "input": encoder.input_size,
        "hidden": encoder.hidden_size,
        "layers": encoder.num_layers,
        "directions": 2 if encoder.bidirectional else 1,
    }


def step_gemms(shape: dict[str, Any], batch: int, time_steps: int) -> list[tuple[int, int, int, int]]:
    """``(m, k, n, count)`` of the products one training step of the encoder needs at ``(batch, T)``."""
    gh, h = GATES[shape["cell"]] * shape["hidden"], shape["hidden"]
    rows = batch * time_steps
    gemms = []
    for layer in range(shape["layers"]):
        width = shape["input"] if layer == 0 else shape["directions"] * h
        for _ in range(shape["directions"]):
            gemms += [(rows, width, gh, 1), (rows, gh, width, 1), (gh, rows, width, 1), (gh, rows, h, 1)]
            gemms += [(batch, h, gh, time_steps), (batch, gh, h, time_steps)]
    return gemms


class GemmTimer:
    """Seconds of one float32 ``(m, k) @ (k, n)`` product, timed once per shape: the fastest of repeats
    (a ceiling is what the kernel can do; a slower repeat was disturbed).

    A product repeated at every time step is also timed as ``BATCHED`` products in one ``torch.bmm``, and
    the faster per-product time counts: at a small step shape (music: 8 × 256 × 1024) one ``torch.mm``
    call's own overhead is a large part of its time, which a fused RNN kernel does not pay; without this,
    oneDNN's LSTM "beat" the ceiling (135 % on a 2026-12-02 run)."""

    BATCHED = 16

    def __init__(self, repeats: int = 7) -> None:
        self.repeats = repeats
        self.cache: dict[tuple[int, int, int, bool], float] = {}

    def seconds(self, m: int, k: int, n: int, batched: bool = False) -> float:
        key = (m, k, n, batched)
        if key not in self.cache:
            copies = self.BATCHED if batched else 1
            shape = (copies,) if batched else ()
            a, b, out = torch.randn(*shape, m, k), torch.randn(*shape, k, n), torch.empty(*shape, m, n)
            product = functools.partial(torch.bmm if batched else torch.mm, a, b, out=out)
            work = 2 * m * k * n * copies
            inner = min(2000, max(1, int(2e8 // max(work, 1))))  # ~0.1 s of work per repeat at 2 GFLOP/s
            product()
            samples = []
            for _ in range(self.repeats):
                t0 = time.perf_counter()
                for _ in range(inner):
                    product()
                samples.append((time.perf_counter() - t0) / inner / copies)
            self.cache[key] = min(samples)
        return self.cache[key]

    def ceiling(self, shape: dict[str, Any], sizes: list[tuple[int, int]]) -> tuple[float, float]:
        """(seconds, GFLOP) of the unavoidable products over batches of ``(B, T)``."""
        seconds = flops = 0.0
        for batch, time_steps in sizes:
            for m, k, n, count in step_gemms(shape, batch, time_steps):
                each = self.seconds(m, k, n)
                if count > 1:
                    each = min(each, self.seconds(m, k, n, batched=True))
                seconds += count * each
                flops += count * 2.0 * m * k * n
        return seconds, flops / 1e9


def plain_encoder_seconds(shape: dict[str, Any], sizes: list[tuple[int, int]], repeats: int) -> float:
    """Median seconds of forward + backward of the bare torch cell (padded) over batches of ``(B, T)``."""
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[shape["cell"]]
    rnn = cls(
        shape["input"],
        shape["hidden"],
        num_layers=shape["layers"],
        bidirectional=shape["directions"] == 2,
        batch_first=True,
    )
    inputs = [torch.randn(b, t, shape["input"], requires_grad=True) for b, t in sizes]
    for x in inputs[:2]:
        rnn(x)[0].sum().backward()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x in inputs:
            rnn(x)[0].sum().backward()
        samples.append(time.perf_counter() - t0)
        rnn.zero_grad(set_to_none=True)
    return statistics.median(samples)


# ---- the input pipeline ----------------------------------------------------------------------------------
def input_pipeline(datamodule: Any, rows_wanted: int, passes: int = 5) -> dict[str, float]:
    """Rows/s from raw Parquet rows to collated batches, and of the training loader over encoded rows:
    medians over ``passes`` timed passes, after one untimed row through each path.

    One pass can be short (JSB's 229 training pieces encode in ~0.1 s, its loader yields them in ~10 ms),
    and a single short window is at the mercy of one pause of the VM: one music run of the whole table
    printed 1,343 raw rows/s (5x what the model consumes), a run of music alone minutes later 2,540."""
    from seqtasks.data.sources import load_split

    raw = load_split(datamodule.resolved, datamodule.train_split, streaming=False)
    n = min(len(raw), rows_wanted)
    subset = raw.select(range(n))
    source = datamodule.resolved.describe(datamodule.train_split)
    size = datamodule.batch_size
    datamodule.collate([datamodule.encode_row(subset[0], 0, source)])  # untimed: first-call costs
    next(iter(datamodule.train_dataloader()))
    raw_rates, loader_rates = [], []
    for _ in range(passes):
        start = time.perf_counter()
        encoded = [datamodule.encode_row(row, index, source) for index, row in enumerate(subset)]
        for i in range(0, n, size):
            datamodule.collate(encoded[i : i + size])
        raw_rates.append(n / (time.perf_counter() - start))
        loader_rows = 0
        start = time.perf_counter()
        for batch in datamodule.train_dataloader():
            loader_rows += len(next(iter(batch.values())))
            if loader_rows >= n:
                break
        loader_rates.append(loader_rows / (time.perf_counter() - start))
    return {
        "raw_rows_per_s": statistics.median(raw_rates),
        "loader_rows_per_s": statistics.median(loader_rates),
        "rows": n,
    }


# ---- the pipeline and the plain loop, step by step in turn ------------------------------------------------
class PlainInTurn:
    """The plain loop, stepped by a Lightning callback in turn with the pipeline (see :func:`run_in_turn`).

    A fresh copy of the initial network with the recipe's optimizer and clipping; its own random stream
    (seeded at each epoch's first batch as the tasks seed theirs), kept apart from the pipeline's, so both
    paths draw the same dropout masks as when each runs alone and their losses can be compared.
    """

    def __init__(self, template: nn.Module, make_optimizer, loss_of, clip: float | None, seed: int) -> None:
        from sentiment_throughput import plain_step

        self._step = plain_step
        self.model = copy.deepcopy(template)
        self.model.train()
        self.optimizer = make_optimizer(self.model)
        self.loss_of, self.clip, self.seed = loss_of, clip, seed
        self.rng = torch.get_rng_state()
        self.seconds: list[float] = []
        self.losses: list[float] = []

    def step(self, batch: dict[str, Tensor], epoch: int, first_of_epoch: bool) -> None:
        with torch.random.fork_rng(devices=[]):
            if first_of_epoch:
                torch.manual_seed(epoch_seed(epoch, seed=self.seed))
            else:
                torch.set_rng_state(self.rng)
            start = time.perf_counter()
            loss = self._step(self.model, self.optimizer, self.loss_of, batch, self.clip)
            self.seconds.append(time.perf_counter() - start)
            self.rng = torch.get_rng_state()
        self.losses.append(float(loss.detach()))


class InTurn(pl.Callback):
    """Runs :class:`PlainInTurn`'s step on each training batch: before the pipeline's step on even batches,
    after it on odd ones (neither path always finds the batch warm in the cache), and records when it ran,
    so that time can be taken out of the pipeline's timed window."""

    def __init__(self, plain: PlainInTurn) -> None:
        self.plain = plain
        self.spans: list[tuple[float, float]] = []

    def _run(self, trainer: pl.Trainer, batch: dict[str, Tensor], batch_idx: int) -> None:
        entered = time.perf_counter()
        self.plain.step(batch, trainer.current_epoch, batch_idx == 0)
        self.spans.append((entered, time.perf_counter()))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx % 2 == 0:
            self._run(trainer, batch, batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx % 2 == 1:
            self._run(trainer, batch, batch_idx)

    def inside(self, start: float, end: float) -> float:
        """Seconds of this callback's runs within ``[start, end]``."""
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.spans)


@dataclass
class InTurnRun:
    """One fit with both paths stepping in turn: each path's seconds over the timed batches, the units
    they held, per-batch losses."""

    pipeline_seconds: float
    plain_seconds: float
    units: int
    tokens: list[int]
    pipeline_losses: list[float]
    plain_losses: list[float]

    @property
    def ratio(self) -> float:
        return self.plain_seconds / self.pipeline_seconds


def run_in_turn(
    cli: Any,
    task: Any,
    spec: Spec,
    clip: float | None,
    warmup: int,
    model: pl.LightningModule | None = None,
    loader: Any = None,
    **trainer_settings,
) -> InTurnRun:
    """``Trainer.fit`` of a copy of the task with the plain loop stepping on the same batches in turn.

    Running the two paths one after the other as whole runs left the ratio to the machine's drift: on a
    2-core VM the same plain loop ran 4.8–6.1 s over the same batches in consecutive runs, and one music
    run's per-repeat pipeline/plain ratios spread 0.82–1.00. Stepping them in turn puts both under the same
    conditions at every step. The pipeline's time is its window (from its ``warmup``-th batch's start to
    its last batch's end) less the plain steps run inside it; the plain loop's is the sum of its timed
    steps (zero_grad, loss, backward, clip, optimizer step: what a plain loop's iteration does).

    ``model`` (a copy of the task by default) is what the pipeline trains; ``loader`` (the datamodule's
    training loader by default) what it trains on (``overhead.py`` takes parts of the pipeline away so)."""
    from sentiment_throughput import BatchTimer, recipe_optimizer

    seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
    plain = PlainInTurn(
        task.network,
        recipe_optimizer(task),
        lambda network, batch: spec.loss(network, batch, task),
        clip,
        seed,
    )
    turn = InTurn(plain)
    timer = BatchTimer(warmup, spec.count)
    model = copy.deepcopy(task) if model is None else model
    trainer = cli.instantiate_trainer(callbacks=[timer, turn], **trainer_settings)
    if loader is None:
        trainer.fit(model, datamodule=cli.datamodule)
    else:
        trainer.fit(model, train_dataloaders=loader)
    if timer.start is None or timer.end is None:
        raise RuntimeError("the pipeline ran fewer batches than the warm-up; raise --batches")
    tokens = [int(t) for t in timer.tokens]
    return InTurnRun(
        timer.end - timer.start - turn.inside(timer.start, timer.end),
        sum(plain.seconds[warmup:]),
        sum(tokens[warmup:]),
        tokens,
        [float(x) for x in timer.losses],
        plain.losses,
    )


def bare_trainer(**settings: Any) -> pl.Trainer:
    """A Trainer with what the bench's pipeline runs leave out left out (logger, checkpoints, progress bar,
    model summary), clipping at 1 as the recipes do; ``settings`` add or override."""
    defaults = {
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "gradient_clip_val": 1.0,
        "default_root_dir": tempfile.gettempdir(),
    }
    return pl.Trainer(**(defaults | settings))


class _OneParameter(pl.LightningModule):
    """The cheapest model Lightning can train: what is left of a step is Lightning's own work."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4))

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        return (self.weight * batch).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), fused=True)


def lightning_floor(steps: int = 600, warmup: int = 50, repeats: int = 3) -> tuple[float, float]:
    """(plain ms, pipeline ms) a step of a one-parameter model, medians over alternating repeats: a plain
    loop (zero_grad, loss, backward, clip, step) and ``Trainer.fit`` with the bench's settings (no logger,
    callbacks, checkpoints or progress bar; clipping at 1) over a DataLoader of the same batches."""
    from sentiment_throughput import BatchTimer, quiet, run_plain

    quiet()
    batches = [torch.randn(4) for _ in range(steps)]
    one = lambda batch: torch.tensor(1)  # noqa: E731 (a step is the unit)
    plain_ms, pipeline_ms = [], []
    for _ in range(repeats):
        plain = run_plain(
            _OneParameter(),
            batches,
            torch.device("cpu"),
            1.0,
            warmup,
            lambda model, batch: model.training_step(batch, 0),
            lambda model: model.configure_optimizers(),
            one,
        )
        plain_ms.append(1e3 * plain.seconds / (steps - warmup))
        timer = BatchTimer(warmup, one)
        trainer = bare_trainer(callbacks=[timer])
        trainer.fit(_OneParameter(), torch.utils.data.DataLoader(batches, batch_size=None))
        pipeline_ms.append(1e3 * (timer.end - timer.start) / (steps - warmup))
    return statistics.median(plain_ms), statistics.median(pipeline_ms)


# ---- one task ------------------------------------------------------------------------------------------
@dataclass
class TaskResult:
    task: str
    title: str
    recipe: str
    unit: str
    threads: int
    batches: int
    repeats: int
    epochs: int = 1
    timed_units: int = 0
    pipeline_rate: float = 0.0
    plain_rate: float = 0.0
    ratio: float = 0.0
    per_repeat: list[float] = field(default_factory=list)
    plain_step_ms: float = 0.0
    added_ms: float = 0.0  # what the pipeline adds to a step (window less the plain loop's time, per step)
    loss_gap: float = 0.0
    rows_per_s_model: float = 0.0
    raw_rows_per_s: float = 0.0
    loader_rows_per_s: float = 0.0
    padding: float = 0.0
    peak_rss_mib: float = 0.0
    shares: dict[str, float] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)
    gemm_gflops: float = 0.0
    gemm_rate: float = 0.0
    in_model: float = 0.0
    plain_encoder: float = 0.0


@dataclass
class Prepared:
    """A task's recipe built by the CLI, its datamodule set up and the first training batches collated."""

    spec: Spec
    cli: Any
    task: Any
    datamodule: Any
    batches: list[dict[str, Tensor]]
    clip: float | None
    epochs: int = 1
    epoch_length: int | None = None  # batches per epoch when the run spans several epochs


@contextlib.contextmanager
def prepared(name: str, batches_wanted: int, overrides: tuple[str, ...] = ()) -> Iterator[Prepared]:
    """The task's recipe built by the CLI (``overrides``: more command-line settings), its batches taken."""
    sys.path.insert(0, str(HERE))
    from sentiment_throughput import build_cli, quiet

    spec = SPECS[name]
    quiet()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as root_dir:
        options = argparse.Namespace(recipe=RECIPES / f"{spec.recipe}.yaml", batches=batches_wanted)
        # no validation runs, so no learning-rate schedule (a plateau schedule would wait for val/ metrics)
        cli = build_cli(options, root_dir, ("--model.init_args.lr_scheduler=null", *overrides))
        task, datamodule = cli.model, cli.datamodule
        datamodule.prepare_data()
        datamodule.setup("fit")
        if getattr(task, "word_vectors", None):  # what the task's setup("fit") does: both paths start alike
            task.artefacts = datamodule.artefacts()
            task.load_word_vectors(task.word_vectors)
        loader = datamodule.train_dataloader()
        clip = cli.config["trainer"].get("gradient_clip_val")
        epoch_length = len(loader)
        if epoch_length >= batches_wanted:
            batches = list(itertools.islice(loader, batches_wanted))
            yield Prepared(spec, cli, task, datamodule, batches, clip)
            return
        # a small training set (JSB: 29 batches an epoch): whole epochs, each in its own order (what
        # Lightning's fit loop does: the sampler's epoch), so the timed window is long enough to be stable
        # and includes what an epoch's start and end cost the pipeline
        epochs = -(-batches_wanted // epoch_length)
        sampler = loader.batch_sampler.sampler
        batches = []
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            batches += list(loader)
        sampler.set_epoch(0)
        yield Prepared(spec, cli, task, datamodule, batches, clip, epochs, epoch_length)


def epoch_padding(datamodule: Any, spec: Spec) -> float:
    """Padded positions / all positions over one whole training epoch (epoch 0's batches)."""
    real = total = 0
    for batch in datamodule.train_dataloader():
        batch_real, batch_total = spec.padding(batch)
        real, total = real + batch_real, total + batch_total
    return 1 - real / total


def run_task(name: str, batches_wanted: int, repeats: int, warmup: int) -> TaskResult:
    from sentiment_throughput import recipe_optimizer, run_pipeline, run_plain

    spec = SPECS[name]
    result = TaskResult(
        name, spec.title, spec.recipe, spec.unit, torch.get_num_threads(), batches_wanted, repeats
    )
    with prepared(name, batches_wanted) as ready:
        cli, task, datamodule, batches, clip = (
            ready.cli,
            ready.task,
            ready.datamodule,
            ready.batches,
            ready.clip,
        )
        if len(batches) <= warmup:
            raise SystemExit(f"{spec.recipe}: only {len(batches)} training batches, not more than --warmup")
        result.batches = len(batches)
        timed = batches[warmup:]

        def loss_of(network, batch):
            return spec.loss(network, batch, task)

        settings = {"max_epochs": ready.epochs, "limit_train_batches": None} if ready.epochs > 1 else {}

        # the input pipeline first, in a fresh process: after ten fits the heap holds their models until
        # the garbage collector finds them, and every collection then walks it (NER's raw rows measured
        # 2,833/s so against 4,484/s before any fit)
        rows = sum(len(next(iter(b.values()))) for b in timed)
        gc.collect()
        pipeline = input_pipeline(datamodule, max(rows, 512))

        # untimed: every padded width's first kernel call (oneDNN builds its primitives per shape)
        run_plain(
            task.network,
            batches,
            torch.device("cpu"),
            clip,
            warmup,
            loss_of,
            recipe_optimizer(task),
            spec.count,
            ready.epoch_length,
        )
        # each repeat: one fit with the plain loop in turn (the ratio), one fit of the pipeline alone (its
        # rate: stepping in turn, two copies of a large model share the caches, which slows both)
        runs, alone = [], []
        for _ in range(repeats):
            runs.append(run_in_turn(cli, task, spec, clip, warmup, **settings))
            alone.append(run_pipeline(cli, task, warmup, spec.count, **settings))
        expected = [int(spec.count(b)) for b in batches]
        for run in runs:
            if run.tokens != expected:
                raise SystemExit(f"{spec.recipe}: the pipeline saw other batches than the datamodule gave")
        if any(run.tokens != expected for run in alone):
            raise SystemExit(f"{spec.recipe}: the pipeline alone saw other batches than the datamodule gave")
        result.loss_gap = max(  # the plain loop against the pipeline, in turn and alone
            abs(a - b)
            for run in runs
            for losses in (run.pipeline_losses, *(other.losses for other in alone))
            for a, b in zip(losses, run.plain_losses, strict=True)
        )
        result.timed_units = runs[0].units
        result.pipeline_rate = statistics.median(r.rate for r in alone)
        result.plain_rate = statistics.median(r.units / r.plain_seconds for r in runs)
        result.per_repeat = [r.ratio for r in runs]
        result.ratio = statistics.median(result.per_repeat)
        steps = len(batches) - warmup
        result.plain_step_ms = 1e3 * statistics.median(r.plain_seconds for r in runs) / steps
        result.added_ms = 1e3 * statistics.median(r.pipeline_seconds - r.plain_seconds for r in runs) / steps
        result.rows_per_s_model = rows / statistics.median(r.seconds for r in alone)

        result.padding = epoch_padding(datamodule, spec)
        result.epochs = ready.epochs
        result.raw_rows_per_s = pipeline["raw_rows_per_s"]
        result.loader_rows_per_s = pipeline["loader_rows_per_s"]

        shares = step_shares(task.network, task, spec, batches, clip, warmup)
        step = shares.pop("step")
        result.shares = {k: v / step for k, v in shares.items()}

        encoder = task.network.encoder
        result.encoder = encoder_shape(encoder)
        sizes = [spec.encoder_lengths(b) for b in timed]
        gemm = GemmTimer()
        ceiling_seconds, gflop = gemm.ceiling(result.encoder, sizes)
        result.gemm_gflops = gflop / ceiling_seconds
        encoder_units = sum(b * t for b, t in sizes)
        result.gemm_rate = encoder_units / ceiling_seconds
        result.in_model = ceiling_seconds / shares["encoder"]
        result.plain_encoder = ceiling_seconds / plain_encoder_seconds(result.encoder, sizes, max(repeats, 3))
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# ---- the table -------------------------------------------------------------------------------------------
def verdicts(results: list[TaskResult]) -> list[str]:
    lines = []
    for r in results:
        checks = [
            (f"pipeline/plain {r.ratio:.3f} ≥ {TARGETS['ratio']}", r.ratio >= TARGETS["ratio"]),
            (
                f"padding {100 * r.padding:.1f} % < {100 * TARGETS['padding']:.0f} %",
                r.padding < TARGETS["padding"],
            ),
            (
                f"input pipeline {r.raw_rows_per_s / r.rows_per_s_model:.0f}× ≥ {TARGETS['input']:.0f}×",
                r.raw_rows_per_s >= TARGETS["input"] * r.rows_per_s_model,
            ),
        ]
        if r.task == "ner":
            checks.append(
                (
                    f"{r.pipeline_rate:,.0f} tokens/s ≥ {TARGETS['ner_rate']:,.0f}",
                    r.pipeline_rate >= TARGETS["ner_rate"],
                )
            )
            checks.append(
                (
                    f"plain BiLSTM {100 * r.plain_encoder:.0f} % of GEMM ≥ 70 %",
                    r.plain_encoder >= TARGETS["gemm"],
                )
            )
        marks = ", ".join(f"{text} {'met' if ok else 'NOT met'}" for text, ok in checks)
        lines.append(f"* {r.title}: {marks}.")
    return lines


def table(results: list[TaskResult], quick: bool, floor: tuple[float, float] | None = None) -> str:
    from sentiment_throughput import machine_line  # the parent runs with the children's thread count

    lines = [
        f"{machine_line(torch.device('cpu'))}{' · --quick (a smoke run, not a result)' if quick else ''}",
        "",
        "| task (recipe) | unit | pipeline /s | pipeline/plain | plain step · pipeline adds "
        "| model rows/s | input rows/s (raw → batch · loader) | input/model | padding | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.title} (`{r.recipe}`) | {r.unit} | {r.pipeline_rate:,.0f} | "
            f"**{r.ratio:.3f}** | {r.plain_step_ms:.1f} ms · +{r.added_ms:.2f} ms | "
            f"{r.rows_per_s_model:,.1f} | {r.raw_rows_per_s:,.0f} · "
            f"{r.loader_rows_per_s:,.0f} | {r.raw_rows_per_s / r.rows_per_s_model:,.0f}× | "
            f"{100 * r.padding:.1f} % | {r.peak_rss_mib:,.0f} MiB |"
        )
    if floor is not None:
        plain_ms, pipeline_ms = floor
        lines += [
            "",
            f"Lightning's own floor on this machine: a one-parameter model's step takes {pipeline_ms:.2f} "
            f"ms through `Trainer.fit` and {plain_ms:.2f} ms in the plain loop: "
            f"**+{pipeline_ms - plain_ms:.2f} ms a step** whatever the model (the pipeline runs' settings).",
        ]
    lines += ["", "Share of a training step (forward + backward of each part; plain loop, same batches):", ""]
    lines += ["| task | parts | optimizer | rest |", "|---|---|---:|---:|"]
    for r in results:
        parts = " · ".join(
            f"{part} {100 * share:.0f} %"
            for part, share in r.shares.items()
            if part not in ("optimizer", "rest")
        )
        lines.append(
            f"| {r.title} | {parts} | {100 * r.shares['optimizer']:.0f} % | {100 * r.shares['rest']:.0f} % |"
        )
    lines += ["", "The encoder against the float32 GEMM ceiling of its own step shapes:", ""]
    lines += [
        "| task | encoder | GEMM GFLOP/s at its shapes | ceiling (padded positions/s) | in model "
        "| plain encoder |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        e = r.encoder
        cell = f"{'Bi' if e['directions'] == 2 else ''}{e['cell'].upper()}"
        name = f"{cell} {e['layers']}×{e['hidden']} (in {e['input']})"
        lines.append(
            f"| {r.title} | {name} | {r.gemm_gflops:.1f} | {r.gemm_rate:,.0f} | {100 * r.in_model:.0f} % "
            f"| {100 * r.plain_encoder:.0f} % |"
        )
    lines += ["", *verdicts(results)]
    repeats = results[0].repeats if results else 0
    lines += [
        "",
        f"Medians of {repeats} repeats, each over "
        + ", ".join(f"{r.task} {r.batches}" for r in results)
        + " batches (the first ones untimed); per-repeat ratios: "
        + "; ".join(f"{r.task} {', '.join(f'{x:.3f}' for x in r.per_repeat)}" for r in results)
        + " (in turn). Largest per-batch loss difference between the pipeline (in turn and alone) and the "
        "plain loop: " + ", ".join(f"{r.task} {r.loss_gap:.1e}" for r in results) + ".",
    ]
    return "\n".join(lines)


def write_results(path: Path, text: str) -> None:
    """Replace the marked section of ``path`` (or append one) with the table, atomically."""
    section = f"{START}\n{text}\n{END}"
    old = path.read_text() if path.exists() else ""
    if START in old and END in old:
        head, rest = old.split(START, 1)
        new = head + section + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n## `make bench` — the four tasks in one table\n\n" + section + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(SPECS), default=list(SPECS))
    parser.add_argument("--batches", type=int, default=60, help="training batches per run")
    parser.add_argument("--warmup", type=int, default=5, help="first batches of each run left untimed")
    parser.add_argument("--repeats", type=int, default=3, help="alternating pipeline/plain pairs")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 batches, 2 warm-up, 1 repeat")
    parser.add_argument("--results", type=Path, help="also write the table into this markdown file")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    parser.add_argument("--task-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    if args.quick:
        args.batches, args.warmup, args.repeats = 8, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the recipes' FlushDenormal callback does while they train
    if args.task_child:  # one task, in this process; its figures go to stdout as JSON
        result = run_task(args.task_child, args.batches, args.repeats, args.warmup)
        print("BENCH-RESULT " + json.dumps(asdict(result)))
        return
    from seqtasks.data.sources import DATA_DIR_ENV

    if not os.path.isdir(os.environ.get(DATA_DIR_ENV, "")):
        raise SystemExit(f"bench: {DATA_DIR_ENV} must name the data directory (it reads the real datasets)")
    results = []
    for name in args.tasks:
        command = [sys.executable, __file__, "--task-child", name, "--batches", str(args.batches)]
        command += [
            "--warmup",
            str(args.warmup),
            "--repeats",
            str(args.repeats),
            "--threads",
            str(args.threads),
        ]
        print(f"bench: {name} ({SPECS[name].recipe}) ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        found = [line for line in done.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
        if done.returncode != 0 or not found:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise SystemExit(f"bench: the {name} task failed (exit {done.returncode}):\n{tail}")
        results.append(TaskResult(**json.loads(found[-1].removeprefix("BENCH-RESULT "))))
    print("bench: Lightning's floor ...", file=sys.stderr, flush=True)
    text = table(results, args.quick, lightning_floor(steps=200 if args.quick else 600))
    print(text)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    if args.results and args.quick:
        print(f"(--quick: not written into {args.results})", file=sys.stderr)
    elif args.results:
        write_results(args.results, text)


if __name__ == "__main__":
    main()
