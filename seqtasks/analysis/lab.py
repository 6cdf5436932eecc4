"""``seqtasks gradients``: the vanishing-gradient lab — why GRU and LSTM beat a tanh RNN, in one command.

    # the comparison in the README (12 min on the 2-core CPU)
    seqtasks gradients --encoders rnn,gru,lstm --distances 5,10,20,50,100,200 --gate-bias torch,3 \
        --train-size 30000 --out runs/gradients
    # exploding gradients, and what clipping does about them (plain SGD: Adam rescales steps by itself)
    seqtasks gradients --encoders rnn --distances 50 --explode-scale 4 --clip 1 --optimizer sgd --lr 0.1 \
        --train-size 30000 --out runs/gradients-exploding

For every model and distance it builds the long-range task (:mod:`seqtasks.analysis.long_range`), trains a
small unidirectional :class:`~seqtasks.tasks.classification.SequenceClassifier` (its network a
:class:`~seqtasks.networks.classifier.ClassifierNetwork` with a last-state pooler) on it through a Lightning
Trainer, with AdamW or plain SGD (``--optimizer``), and probes the gradient of the network
(:mod:`seqtasks.analysis.gradients`) on test rows at initialisation and after training. A "model" is a
cell, and for GRU and LSTM one per ``--gate-bias`` value (``torch`` keeps torch's initialisation). It writes
to ``--out``:

* ``results.csv``: accuracy and fitted gradient decay per step (at init, after training) per model and
  distance; ``summary.json`` and ``summary.md`` (the table, the distance where the tanh RNN is at chance);
* ``gradients.csv``: the probe's norms per step back; ``steps.csv``: loss and gradient norm per optimiser
  step (before clipping);
* ``accuracy.png``, ``gradients.png``, ``summary.png``; with ``--explode-scale``, every run is trained
  twice, without and with clipping, and ``exploding.png`` shows what clipping does;
* ``logs/``: each training run's Lightning CSV log (and W&B runs with ``--wandb``).

Training reads many fresh rows once (``--train-size`` rows, one epoch, validation and early stopping
every ``--validate-every`` rows) rather than a few thousand rows for many epochs: with 2,000-10,000 rows
every cell learned to recite the training labels from the filler words (train accuracy 0.8, validation
0.5 at distance 100), which is memorisation, not memory over distance.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import datasets
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import CSVLogger, Logger

from seqtasks.analysis.gradients import (
    probe_classifier,
    scale_recurrent_weights,
    set_memory_gate_bias,
)
from seqtasks.analysis.long_range import (
    BLANK,
    TENSE_CUES,
    FillerCorpus,
    LongRangeDataset,
    build_task_dataset,
)
from seqtasks.analysis.report import at_chance, write_report
from seqtasks.analysis.settings import WANDB_PROJECT, LabSettings, RunResult, variant_name
from seqtasks.callbacks import EpochSummary
from seqtasks.data.classification import TextClassificationDataModule
from seqtasks.encoders.rnn import FusedRecurrentEncoder
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.nn.poolers import LastStatePooler
from seqtasks.tasks.classification import SequenceClassifier


class StepRecorder(pl.Callback):
    """Loss and total gradient norm per optimiser step; the norm is read before any clipping."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self._norm = math.nan

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        grads = [p.grad.detach().norm() for p in pl_module.parameters() if p.grad is not None]
        self._norm = float(torch.stack(grads).norm()) if grads else math.nan

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.steps.append({"step": len(self.steps), "grad_norm": self._norm, "loss": float(loss)})


class ValidationReport(pl.Callback):
    """One line per validation (they run within epochs here), readable in a background run's log."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        rows = trainer.global_step * trainer.datamodule.batch_size
        shown = "  ".join(f"{k}={float(metrics[k]):.4f}" for k in ("val/acc", "val/loss") if k in metrics)
        print(f"  [step {trainer.global_step}, ~{rows} rows] {shown}", flush=True)


def build_datamodule(dataset: LongRangeDataset, settings: LabSettings) -> TextClassificationDataModule:
    datamodule = TextClassificationDataModule(
        dataset=str(dataset.path),
        labels=dataset.labels,
        max_length=None,
        batch_size=settings.batch_size,
        seed=settings.seed,
    )
    datamodule.prepare_data()
    return datamodule


def build_model(
    datamodule: TextClassificationDataModule, cell: str, gate_bias: float | None, settings: LabSettings
) -> SequenceClassifier:
    """A small unidirectional classifier reading the last state; no dropout, so the probe sees the model."""
    pl.seed_everything(settings.seed, verbose=False)
    model = SequenceClassifier(
        network=partial(
            ClassifierNetwork,
            encoder=partial(
                FusedRecurrentEncoder, hidden_size=settings.hidden, cell=cell, bidirectional=False
            ),
            pooler=LastStatePooler,
            embedding_dim=settings.embedding_dim,
            embedding_dropout=0.0,
            dropout=0.0,
        ),
        vocab_size=datamodule.vocab_size,
        labels=datamodule.labels,
        pad_index=datamodule.pad_index,
        optimizer=lab_optimizer(settings),
    )
    if gate_bias is not None:
        set_memory_gate_bias(model.network.encoder, gate_bias)
    if settings.explode_scale is not None:
        scale_recurrent_weights(model.network.encoder, settings.explode_scale)
    return model


def lab_optimizer(settings: LabSettings) -> partial[torch.optim.Optimizer]:
    """AdamW, or plain SGD (``--optimizer sgd``), at ``--lr`` and no weight decay.

    Adam divides every update by a running gradient scale, so a gradient a million times too large moves
    the weights about as far as a normal one, and clipping changes little; under SGD the step is the
    gradient, and an exploding gradient throws the weights away unless it is clipped.
    """
    optimizer = torch.optim.SGD if settings.optimizer == "sgd" else torch.optim.AdamW
    return partial(optimizer, lr=settings.lr, weight_decay=0.0)


def probe_batch(datamodule: TextClassificationDataModule, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``rows`` test rows of the most common length (all of them, in these tasks)."""
    datamodule.setup("test")
    tokens, labels = [], []
    for batch in datamodule.test_dataloader():
        tokens.extend(batch["tokens"][i, : batch["lengths"][i]] for i in range(len(batch["labels"])))
        labels.extend(batch["labels"].tolist())
        if len(tokens) >= 4 * rows:
            break
    lengths = [len(t) for t in tokens]
    common = max(set(lengths), key=lengths.count)
    keep = [i for i, n in enumerate(lengths) if n == common][:rows]
    return torch.stack([tokens[i] for i in keep]), torch.tensor([labels[i] for i in keep])


def train_one(
    dataset: LongRangeDataset,
    distance: int,
    cell: str,
    gate_bias: float | None,
    clip: float | None,
    settings: LabSettings,
) -> RunResult:
    """Train one model on one task distance through a Lightning Trainer; probe before and after."""
    datamodule = build_datamodule(dataset, settings)
    model = build_model(datamodule, cell, gate_bias, settings)
    tokens, labels = probe_batch(datamodule, settings.probe_rows)
    init = probe_classifier(model.network, tokens, labels)
    name = f"{settings.task}-{variant_name(cell, gate_bias)}-d{distance}" + (
        "" if clip is None else f"-clip{clip:g}"
    )
    out = Path(settings.out)
    loggers: list[Logger] = [CSVLogger(save_dir=str(out / "logs"), name=name, version="")]
    if settings.wandb:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(
            WandbLogger(
                project=WANDB_PROJECT,
                group=out.name,
                name=name,
                save_dir=str(out),
                config={
                    **asdict(settings),
                    "cell": cell,
                    "gate_bias": gate_bias,
                    "distance": distance,
                    "run_clip": clip,
                },
            )
        )
    recorder = StepRecorder()
    stopper = EarlyStopping(
        monitor="val/acc", mode="max", patience=settings.patience, stopping_threshold=0.995
    )
    trainer = pl.Trainer(
        max_epochs=settings.epochs,
        accelerator="cpu",
        devices=1,
        logger=loggers,
        callbacks=[recorder, stopper, ValidationReport(), EpochSummary()],
        gradient_clip_val=clip,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        val_check_interval=min(1.0, settings.validate_every / settings.train_size),
        default_root_dir=str(out / "logs"),
    )
    print(f"== {name}: {settings.train_size} train rows, length {distance + 1}", flush=True)
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    seconds = time.perf_counter() - start
    tested = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    trained = probe_classifier(model.network, tokens, labels)
    best = stopper.best_score
    result = RunResult(
        cell=cell,
        gate_bias=gate_bias,
        distance=distance,
        clip=clip,
        test_acc=float(tested["test/acc"]),
        best_val_acc=float(best) if best is not None and torch.isfinite(best) else math.nan,
        rows_seen=trainer.global_step * settings.batch_size,
        seconds=seconds,
        init=init,
        trained=trained,
        steps=recorder.steps,
    )
    if settings.wandb:
        for logger in loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.experiment.summary.update({"test/acc": result.test_acc, "train_seconds": seconds})
                logger.experiment.finish()
    return result


def chance_distance(
    results: list[RunResult], variant: str, chance: float, rows: int, clip: float | None = None
) -> int | None:
    """The shortest distance from which ``variant`` (trained with ``clip``) stays at chance, or None."""
    runs = sorted((r for r in results if r.variant == variant and r.clip == clip), key=lambda r: r.distance)
    for i, run in enumerate(runs):
        if all(at_chance(r.test_acc, chance, rows) for r in runs[i:]):
            return run.distance
    return None


def run_lab(settings: LabSettings) -> dict[str, Any]:
    """Train and probe every model at every distance; write CSVs, figures and summary to ``settings.out``."""
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    corpus = FillerCorpus.load(exclude={*TENSE_CUES.values(), BLANK}) if settings.task == "tense" else None
    results: list[RunResult] = []
    dataset: LongRangeDataset | None = None
    for distance in settings.distances:
        kwargs: dict[str, Any] = {
            "train_size": settings.train_size,
            "validation_size": settings.validation_size,
            "test_size": settings.test_size,
            "seed": settings.seed,
        }
        kwargs.update({"corpus": corpus} if settings.task == "tense" else {"levels": settings.levels})
        dataset = build_task_dataset(settings.task, distance, **kwargs)
        for cell, gate_bias in settings.variants:
            for clip in settings.clips:
                results.append(train_one(dataset, distance, cell, gate_bias, clip, settings))
    assert dataset is not None
    rnn_chance = (
        chance_distance(results, "rnn", dataset.chance, settings.test_size, settings.clips[0])
        if "rnn" in settings.encoders
        else None
    )
    return write_report(results, settings, dataset, rnn_chance, started)


def quiet_logs() -> None:
    """Lightning's and datasets' progress chatter off: the lab prints one line per validation itself."""
    datasets.disable_progress_bars()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
