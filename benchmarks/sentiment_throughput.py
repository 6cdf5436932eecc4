"""Training throughput of the IMDB recipe: the full Lightning pipeline against a plain PyTorch loop.

Run on an otherwise idle machine, with the data directory that holds ``reviews/imdb``:

    export SEQTASKS_DATA_DIR=/path/to/data
    make bench                                            # encoder_paths.py, then this script
    python benchmarks/sentiment_throughput.py             # defaults: 60 batches, 5 warm-up, 3 repeats
    python benchmarks/sentiment_throughput.py --batches 8 --warmup 2 --repeats 1   # a quick smoke run

The model and datamodule are the recipe's own, built by the ``seqtasks`` CLI from
``recipes/sentiment-imdb.yaml`` (logger, callbacks and checkpointing switched off). Each repeat times

* **pipeline**: ``Trainer.fit`` with the recipe's datamodule and its own DataLoader, ``limit_train_batches``
  batches, no validation; a callback times from the start of the first batch after the warm-up to the end
  of the last one, so the window includes the loader's fetching and collation of those batches, the
  task's metrics and logging, and Lightning's loop;
* **plain**: a fresh copy of the same initial network (``task.network``, a plain ``nn.Module``: the
  :class:`~seqtasks.networks.classifier.ClassifierNetwork`), the recipe's optimizer, gradient-norm
  clipping at the recipe's value, on the same batches, taken once from the datamodule's training loader
  (same seed, epoch 0) and kept in a list: forward → the network's loss → backward → clip → step,
  nothing else.

Both count real tokens (the sum of ``lengths``) over the same timed batches. That the two paths saw the same
batches is checked (each batch's sum of lengths must match) and so is that they trained the same way (the
per-batch losses are compared; the dropout masks match because the plain loop re-seeds the way
``SeqTask.on_train_batch_start`` does). One untimed plain pass over the batches comes first, so that
neither path pays for the kernels' first call at each batch's padded width; then the order of the two
paths alternates between repeats. The table reports medians, the ratio pipeline/plain (the target is at
least 0.9), and how long the pipeline's DataLoader alone takes for the batches inside its timed window.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from torch import nn

from seqtasks.data.sources import DATA_DIR_ENV, resolve
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.tasks.base import epoch_seed
from seqtasks.training import run_lightning

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "sentiment-imdb.yaml"
TARGET_RATIO = 0.9


def sync(device: torch.device) -> None:
    """Wait for queued kernels, so a timestamp means the work before it is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def real_tokens(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """What a batch's throughput counts by default: its real (unpadded) tokens, the sum of ``lengths``."""
    return batch["lengths"].sum()


class BatchTimer(pl.Callback):
    """Times training batches ``warmup .. last`` and records each batch's token count and loss."""

    def __init__(self, warmup: int, count: Callable[[dict], torch.Tensor] = real_tokens) -> None:
        self.warmup = warmup
        self.count = count
        self.start: float | None = None
        self.end: float | None = None
        self.tokens: list[torch.Tensor] = []
        self.losses: list[torch.Tensor] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ):
        if len(self.tokens) == self.warmup:  # counted over epochs: a run may span several
            sync(pl_module.device)
            self.start = time.perf_counter()
        self.tokens.append(self.count(batch))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ):
        self.losses.append(outputs["loss"].detach())
        sync(pl_module.device)
        self.end = time.perf_counter()


class Run:
    """One timed pass of one path: per-batch tokens and losses, and the timed window's length."""

    def __init__(self, tokens: list[int], losses: list[float], seconds: float, warmup: int) -> None:
        self.tokens = tokens
        self.losses = losses
        self.seconds = seconds
        self.timed_tokens = sum(tokens[warmup:])

    @property
    def rate(self) -> float:
        return self.timed_tokens / self.seconds


def build_cli(args: argparse.Namespace, root_dir: str, extra: tuple[str, ...] = ()):
    """The recipe's model, datamodule and trainer settings, with logging, checkpoints and validation off."""
    overrides = [
        *extra,
        "--trainer.logger=false",
        "--trainer.callbacks=[]",
        "--trainer.enable_checkpointing=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.max_epochs=1",
        f"--trainer.limit_train_batches={args.batches}",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        f"--trainer.default_root_dir={root_dir}",
    ]
    return run_lightning(["--config", str(args.recipe), *overrides], run=False)


def run_pipeline(
    cli: Any,
    template: pl.LightningModule,
    warmup: int,
    count: Callable[[dict], torch.Tensor] = real_tokens,
    **trainer_settings: Any,
) -> Run:
    """``Trainer.fit`` of a copy of ``template``; ``trainer_settings`` override the CLI's (``max_epochs``)."""
    model = copy.deepcopy(template)
    timer = BatchTimer(warmup, count)
    trainer = cli.instantiate_trainer(callbacks=[timer], **trainer_settings)
    trainer.fit(model, datamodule=cli.datamodule)
    if timer.start is None or timer.end is None:
        raise RuntimeError("the pipeline ran fewer batches than the warm-up; raise --batches")
    tokens = [int(t) for t in timer.tokens]
    return Run(tokens, [float(x) for x in timer.losses], timer.end - timer.start, warmup)


def classification_loss(network: ClassifierNetwork, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return network.loss(network(batch["tokens"], batch["lengths"]), batch["labels"])


def recipe_optimizer(task: Any) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """The recipe's optimizer (the task's ``optimizer`` callable), built over a network's parameters."""
    return lambda network: task.optimizer(network.parameters())


def plain_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_of: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    batch: Any,
    clip: float | None,
) -> torch.Tensor:
    """One iteration of a plain loop: loss, zero_grad, backward, clip, optimizer step; the loss."""
    loss = loss_of(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss


def run_plain(
    template: nn.Module,
    batches: list[dict[str, torch.Tensor]],
    device: torch.device,
    clip: float | None,
    warmup: int,
    loss_of: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    count: Callable[[dict], torch.Tensor] = real_tokens,
    epoch_length: int | None = None,
) -> Run:
    """A fresh copy of the network ``template`` trained on ``batches`` in a plain loop: loss, backward,
    clip, step. ``batches`` may be several epochs of ``epoch_length`` batches each; each epoch is seeded
    as the tasks seed it."""
    model = copy.deepcopy(template).to(device)
    model.train()
    optimizer = make_optimizer(model)
    # each epoch seeded as SeqTask.on_train_batch_start seeds rank 0's: same seeds, same dropout masks
    epoch_length = epoch_length or len(batches)
    losses = []
    sync(device)
    start = time.perf_counter()
    for index, batch in enumerate(batches):
        if index % epoch_length == 0:
            torch.manual_seed(epoch_seed(index // epoch_length))
        if index == warmup:
            sync(device)
            start = time.perf_counter()
        losses.append(plain_step(model, optimizer, loss_of, batch, clip).detach())
    sync(device)
    seconds = time.perf_counter() - start
    tokens = [int(count(batch)) for batch in batches]
    return Run(tokens, [float(x) for x in losses], seconds, warmup)


def loader_seconds(datamodule: pl.LightningDataModule, batches: int, warmup: int) -> float:
    """Time the training loader takes for the batches fetched inside the pipeline's timed window."""
    iterator = itertools.islice(datamodule.train_dataloader(), batches)
    for _ in itertools.islice(iterator, warmup + 1):
        pass
    start = time.perf_counter()
    for _ in iterator:
        pass
    return time.perf_counter() - start


def check_data(recipe: Path) -> None:
    """Refuse to start unless the recipe's dataset resolves to a local directory (never download)."""
    data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        sys.exit(f"{DATA_DIR_ENV} is not set: point it at the data directory that holds reviews/imdb.")
    if not os.path.isdir(data_dir):
        sys.exit(f"{DATA_DIR_ENV}={data_dir!r} is not a directory.")
    dataset = yaml.safe_load(recipe.read_text())["data"]["init_args"]["dataset"]
    if resolve(dataset).kind != "local":
        sys.exit(f"{DATA_DIR_ENV}={data_dir!r} holds no local copy of {dataset!r} (looked for reviews/imdb).")


def quiet() -> None:
    """Keep stdout to the table: Lightning's info lines and its advice about workers are not results."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"lightning\..*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


def machine_line(device: torch.device) -> str:
    parts = [
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        platform.processor() or platform.machine(),
        f"{os.cpu_count()} CPUs",
        f"torch {torch.__version__}",
        f"{torch.get_num_threads()} torch threads",
        f"device {device}",
    ]
    return " · ".join(parts)


def parse_options(description: str, recipe: Path, argv: list[str] | None) -> argparse.Namespace:
    """The options both pipeline-vs-plain benchmarks take (batches, repeats, warm-up, recipe), checked."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=60, help="training batches per run (N)")
    parser.add_argument("--repeats", type=int, default=3, help="pipeline/plain pairs (medians reported)")
    parser.add_argument(
        "--warmup", type=int, default=5, help="first batches of each run left out of the timing"
    )
    parser.add_argument("--recipe", type=Path, default=recipe, help=f"the recipe (default: {recipe.stem})")
    args = parser.parse_args(argv)
    if args.repeats < 1 or not 0 <= args.warmup < args.batches:
        parser.error("need --repeats >= 1 and 0 <= --warmup < --batches")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_options(__doc__, RECIPE, argv)
    check_data(args.recipe)
    quiet()

    with tempfile.TemporaryDirectory(prefix="sentiment-throughput-") as root_dir:
        cli = build_cli(args, root_dir)  # seeds from the recipe's seed_everything, then builds the model
        template = cli.model  # the Lightning task, for the pipeline; the plain loop trains its network
        datamodule = cli.datamodule
        device = cli.trainer.strategy.root_device
        clip = cli.config["trainer"]["gradient_clip_val"]
        if cli.config["trainer"].get("gradient_clip_algorithm") not in (None, "norm"):
            sys.exit("the plain loop clips by norm; this recipe clips otherwise")

        datamodule.setup("fit")
        to_device = lambda batch: {k: v.to(device) for k, v in batch.items()}  # noqa: E731
        batches = [to_device(b) for b in itertools.islice(datamodule.train_dataloader(), args.batches)]
        if len(batches) < args.batches:
            sys.exit(f"the training loader has only {len(batches)} batches; lower --batches")
        plain = lambda: run_plain(  # noqa: E731
            template.network,
            batches,
            device,
            clip,
            args.warmup,
            classification_loss,
            recipe_optimizer(template),
        )

        # One untimed pass first: each batch has its own padded width, and the kernels' first call at a
        # new shape is slower, which would otherwise penalise whichever path runs first.
        plain()
        runs: dict[str, list[Run]] = {"pipeline": [], "plain": []}
        loader: list[float] = []
        for repeat in range(args.repeats):
            order = ("pipeline", "plain") if repeat % 2 == 0 else ("plain", "pipeline")
            for path in order:
                if path == "pipeline":
                    runs[path].append(run_pipeline(cli, template, args.warmup))
                else:
                    runs[path].append(plain())
            loader.append(loader_seconds(datamodule, args.batches, args.warmup))

    reference = runs["plain"][0]
    for path, path_runs in runs.items():
        for run in path_runs:
            if run.tokens != reference.tokens:
                sys.exit(
                    f"the {path} run saw different batches (sums of lengths {run.tokens[:5]}... "
                    f"vs {reference.tokens[:5]}...): the timing would compare different work"
                )
    loss_gap = max(
        abs(a - b)
        for run in runs["pipeline"] + runs["plain"]
        for a, b in zip(run.losses, reference.losses, strict=True)
    )

    rates = {path: statistics.median(r.rate for r in rs) for path, rs in runs.items()}
    seconds = {path: statistics.median(r.seconds for r in rs) for path, rs in runs.items()}
    ratio = rates["pipeline"] / rates["plain"]
    per_repeat = [p.rate / q.rate for p, q in zip(runs["pipeline"], runs["plain"], strict=True)]
    loader_median = statistics.median(loader)
    timed = args.batches - args.warmup
    lines = [
        f"IMDB recipe ({args.recipe.name}), {timed} timed batches after {args.warmup} warm-up, "
        f"{reference.timed_tokens:,} tokens, median of {args.repeats} — {machine_line(device)}",
        "",
        "| path | tokens/s (median) | seconds (median) | pipeline/plain |",
        "|---|---:|---:|---:|",
        f"| Lightning `Trainer.fit` (recipe datamodule) | {rates['pipeline']:,.0f} "
        f"| {seconds['pipeline']:.2f} | {ratio:.3f} |",
        f"| plain PyTorch loop (pre-collated batches) | {rates['plain']:,.0f} "
        f"| {seconds['plain']:.2f} | 1.000 |",
        f"| its DataLoader alone (fetch + collate; inside pipeline) | — | {loader_median:.2f} | — |",
    ]
    print("\n".join(lines))
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"\npipeline/plain {ratio:.3f} (target ≥ {TARGET_RATIO}: {verdict}; per repeat "
        f"{', '.join(f'{r:.3f}' for r in per_repeat)}); both paths saw the same {args.batches} batches "
        f"(sums of lengths equal) and their per-batch losses differ by at most {loss_gap:.1e}."
    )


if __name__ == "__main__":
    main()
