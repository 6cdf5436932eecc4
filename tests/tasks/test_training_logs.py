"""Training-step logging: the tasks log step values only on the steps whose values the logger writes and
their epoch metric objects once an epoch, and the epoch means still cover every batch
(``SeqTask.logs_this_step``, ``SeqTask.logs_epoch_metrics``)."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from seqtasks.encoders import GRUEncoder
from seqtasks.networks.music import PianoRollNetwork
from seqtasks.tasks.music import PianoRollComposer


def _batches(count: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for index in range(count):
        lengths = torch.tensor([5 + index % 4, 3, 2 + index % 3])
        rolls = (torch.rand(3, int(lengths.max()), 88, generator=generator) < 0.1).float()
        rolls[torch.arange(rolls.size(1)).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
        batches.append({"rolls": rolls, "lengths": lengths})
    return batches


class Recorder(pl.Callback):
    """Each training step's loss and frame count, and the epoch mean the task logged."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, float, int]] = []  # (global step, loss, frames)
        self.epoch_means: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        frames = int(batch["lengths"].sum())
        self.steps.append((trainer.global_step - 1, float(outputs["loss"]), frames))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_means.append(float(trainer.callback_metrics["train/nll"]))


def test_epoch_mean_covers_every_step_while_step_values_follow_log_every_n_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = PianoRollComposer(
        lambda keys: PianoRollNetwork(keys, lambda n: GRUEncoder(n, hidden_size=8, bidirectional=False))
    )
    calls: list[str] = []
    original = PianoRollComposer.log
    monkeypatch.setattr(
        PianoRollComposer,
        "log",
        lambda self, name, *a, **k: (calls.append(name), original(self, name, *a, **k)),
    )
    recorder = Recorder()
    trainer = pl.Trainer(
        max_epochs=2,
        logger=CSVLogger(tmp_path, name="logs", version=0),
        log_every_n_steps=3,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    loader = torch.utils.data.DataLoader(_batches(7), batch_size=None, collate_fn=lambda b: b)
    trainer.fit(task, train_dataloaders=loader)

    # epoch means: frame-weighted over all 7 steps of each epoch, not only the logged ones
    for epoch in range(2):
        steps = recorder.steps[epoch * 7 : (epoch + 1) * 7]
        expected = sum(loss * frames for _, loss, frames in steps) / sum(frames for *_, frames in steps)
        assert recorder.epoch_means[epoch] == pytest.approx(expected, rel=1e-6)

    # step values: only every 3rd global step (Lightning writes those); the epoch's metric object once an
    # epoch (Lightning computes it at the epoch's end over every update)
    logged = {s for s, _, _ in recorder.steps if (s + 1) % 3 == 0}
    assert calls.count("train/nll_step") == len(logged) < len(recorder.steps)
    assert calls.count("train/nll") == 2
    with open(tmp_path / "logs" / "version_0" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    written = {int(r["step"]): float(r["train/nll_step"]) for r in rows if r.get("train/nll_step")}
    losses = {s: loss for s, loss, _ in recorder.steps}
    assert set(written) == {s for s in losses if (s + 1) % 3 == 0}  # nothing the logger wrote is missing
    assert all(written[s] == pytest.approx(losses[s], rel=1e-6) for s in written)
    epoch_rows = [float(r["train/nll"]) for r in rows if r.get("train/nll")]
    assert epoch_rows == pytest.approx(recorder.epoch_means, rel=1e-6)


def test_outside_a_fit_every_step_logs() -> None:
    task = PianoRollComposer(
        lambda keys: PianoRollNetwork(keys, lambda n: GRUEncoder(n, hidden_size=8, bidirectional=False))
    )
    assert task.logs_this_step(5)
    assert task.logs_epoch_metrics() and task.logs_epoch_metrics()
