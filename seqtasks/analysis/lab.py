"""``seqtasks gradients``: the vanishing-gradient lab — why GRU and LSTM beat a tanh RNN, in one command.

    # the comparison in the README (12 min on the 2-core CPU)
    seqtasks gradients --encoders rnn,gru,lstm --distances 5,10,20,50,100,200 --gate-bias torch,3 \
        --train-size 30000 --out runs/gradients
    # exploding gradients, and what clipping does about them (plain SGD: Adam rescales steps by itself)
    seqtasks gradients --encoders rnn --distances 50 --explode-scale 4 --clip 1 --optimizer sgd --lr 0.1 \
        --train-size 30000 --out runs/gradients-exploding

For every model and distance it builds the long-range task (:mod:`seqtasks.analysis.long_range`), trains a
small unidirectional :class:`~seqtasks.tasks.classification.SequenceClassifier` with a last-state pooler on
it through a Lightning Trainer, and probes the gradient (:mod:`seqtasks.analysis.gradients`) on test rows
at initialisation and after training. A "model" is a cell, and for GRU and LSTM one per ``--gate-bias``
value (``torch`` keeps torch's initialisation). It writes to ``--out``:

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

import argparse
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import CSVLogger, Logger

from seqtasks.analysis.gradients import (
    GradientProfile,
    probe_classifier,
    scale_recurrent_weights,
    set_memory_gate_bias,
)
from seqtasks.analysis.long_range import (
    BLANK,
    MIN_TENSE_DISTANCE,
    TENSE_CUES,
    FillerCorpus,
    LongRangeDataset,
    build_task_dataset,
)
from seqtasks.analysis.report import at_chance, write_report
from seqtasks.callbacks import EpochSummary
from seqtasks.data.classification import TextClassificationDataModule
from seqtasks.encoders.rnn import TorchRNNEncoder
from seqtasks.nn.poolers import LastStatePooler
from seqtasks.tasks.classification import SequenceClassifier

CELLS = ("rnn", "gru", "lstm")
WANDB_PROJECT = "seqtasks-gradients"


@dataclass
class LabSettings:
    """Everything a lab run depends on (the command's flags); stored in ``summary.json``."""

    encoders: list[str] = field(default_factory=lambda: list(CELLS))
    distances: list[int] = field(default_factory=lambda: [5, 10, 20, 50, 100])
    task: str = "tense"
    hidden: int = 32
    embedding_dim: int = 32
    epochs: int = 1
    patience: int = 4
    train_size: int = 20000
    validation_size: int = 500
    test_size: int = 1000
    batch_size: int = 32
    validate_every: int = 5000
    lr: float = 3e-3
    optimizer: str = "adamw"
    levels: int = 5
    probe_rows: int = 128
    gate_biases: list[float | None] = field(default_factory=lambda: [None])
    explode_scale: float | None = None
    clip: float | None = None
    seed: int = 0
    out: str = "runs/gradients"
    wandb: bool = False

    def __post_init__(self) -> None:
        unknown = [cell for cell in self.encoders if cell not in CELLS]
        if unknown or not self.encoders:
            raise ValueError(f"--encoders must name cells among {list(CELLS)}, got {self.encoders}")
        if not self.distances or min(self.distances) < 1:
            raise ValueError(f"--distances must be positive integers, got {self.distances}")
        if self.task not in ("tense", "adding"):
            raise ValueError(f"--task must be tense or adding, got {self.task!r}")
        if self.task == "tense" and min(self.distances) < MIN_TENSE_DISTANCE:
            raise ValueError(
                f"--distances: the tense task needs distances >= {MIN_TENSE_DISTANCE}, got {self.distances}"
            )
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"--optimizer must be adamw or sgd, got {self.optimizer!r}")
        if self.clip is not None and self.clip <= 0:
            raise ValueError(f"--clip must be positive, got {self.clip}")
        if self.explode_scale is not None and self.explode_scale <= 0:
            raise ValueError(f"--explode-scale must be positive, got {self.explode_scale}")

    @property
    def variants(self) -> list[tuple[str, float | None]]:
        """``(cell, gate bias)`` of every model compared: gated cells once per gate bias, the RNN once."""
        return [
            (cell, bias) for cell in self.encoders for bias in ([None] if cell == "rnn" else self.gate_biases)
        ]

    @property
    def clips(self) -> list[float | None]:
        """Clipping settings each run is trained with: both when showing exploding gradients."""
        if self.explode_scale is not None:
            return [None, self.clip or 1.0]
        return [self.clip]


@dataclass
class RunResult:
    """One trained model: its accuracy, its gradient profiles, its per-step training record."""

    cell: str
    gate_bias: float | None
    distance: int
    clip: float | None
    test_acc: float
    best_val_acc: float
    rows_seen: int
    seconds: float
    init: GradientProfile
    trained: GradientProfile
    steps: list[dict[str, float]]

    @property
    def variant(self) -> str:
        """``lstm``, or ``lstm-b3`` when the memory-gate bias was set to 3."""
        return variant_name(self.cell, self.gate_bias)

    def row(self, task: str, chance: float, explode_scale: float | None) -> dict[str, Any]:
        return {
            "task": task,
            "model": self.variant,
            "cell": self.cell,
            "gate_bias": self.gate_bias,  # None: torch init (empty in the CSV)
            "distance": self.distance,
            "clip": self.clip,
            "explode_scale": explode_scale,
            "test_acc": round(self.test_acc, 4),
            "best_val_acc": round(self.best_val_acc, 4),
            "chance": round(chance, 4),
            "train_rows_seen": self.rows_seen,
            "train_seconds": round(self.seconds, 1),
            "decay_slope_init": _round(self.init.decay_slope()),
            "decay_slope_trained": _round(self.trained.decay_slope()),
            "decay_per_step_init": _round(math.exp(self.init.decay_slope())),
            "decay_per_step_trained": _round(math.exp(self.trained.decay_slope())),
        }


def variant_name(cell: str, gate_bias: float | None) -> str:
    return cell if gate_bias is None else f"{cell}-b{gate_bias:g}"


def _round(value: float, digits: int = 4) -> float:
    return value if not math.isfinite(value) else round(value, digits)


class SGDSequenceClassifier(SequenceClassifier):
    """The library's classifier trained with plain SGD (``--optimizer sgd``).

    Adam divides every update by a running gradient scale, so a gradient a million times too large moves
    the weights about as far as a normal one, and clipping changes little; under SGD the step is the
    gradient, and an exploding gradient throws the weights away unless it is clipped.
    """

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


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
    task = SGDSequenceClassifier if settings.optimizer == "sgd" else SequenceClassifier
    model = task(
        vocab_size=datamodule.vocab_size,
        labels=datamodule.labels,
        encoder=partial(TorchRNNEncoder, hidden_size=settings.hidden, cell=cell, bidirectional=False),
        pooler=LastStatePooler,
        embedding_dim=settings.embedding_dim,
        embedding_dropout=0.0,
        dropout=0.0,
        pad_index=datamodule.pad_index,
        lr=settings.lr,
    )
    if gate_bias is not None:
        set_memory_gate_bias(model.encoder, gate_bias)
    if settings.explode_scale is not None:
        scale_recurrent_weights(model.encoder, settings.explode_scale)
    return model


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
    init = probe_classifier(model, tokens, labels)
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
    trained = probe_classifier(model, tokens, labels)
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


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str]) -> LabSettings:
    defaults = LabSettings()
    parser = argparse.ArgumentParser(
        prog="seqtasks gradients",
        description="Train tanh RNN, GRU and LSTM on a long-range task at several distances; measure and "
        "draw accuracy and gradient decay (the vanishing-gradient lab).",
    )
    parser.add_argument(
        "--encoders", default=",".join(defaults.encoders), help="cells, comma-separated: rnn,gru,lstm"
    )
    parser.add_argument(
        "--distances", default=",".join(map(str, defaults.distances)), help="task distances, comma-separated"
    )
    parser.add_argument(
        "--task", default=defaults.task, choices=["tense", "adding"], help="the long-range task"
    )
    parser.add_argument("--hidden", type=int, default=defaults.hidden, help="hidden size of every cell")
    parser.add_argument(
        "--embedding-dim", type=int, default=defaults.embedding_dim, help="token embedding width"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=defaults.epochs,
        help="passes over the training rows (1: each row is fresh)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help="early stopping: validations without a better val/acc",
    )
    parser.add_argument(
        "--train-size", type=int, default=defaults.train_size, help="training rows per distance"
    )
    parser.add_argument(
        "--validation-size", type=int, default=defaults.validation_size, help="validation rows"
    )
    parser.add_argument(
        "--test-size", type=int, default=defaults.test_size, help="test rows (and chance band)"
    )
    parser.add_argument(
        "--validate-every",
        type=int,
        default=defaults.validate_every,
        help="validate (and early-stop) after this many training rows, or once per epoch if fewer",
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="batch size")
    parser.add_argument(
        "--optimizer",
        default=defaults.optimizer,
        choices=["adamw", "sgd"],
        help="sgd shows what exploding gradients and clipping do; adamw rescales steps by itself",
    )
    parser.add_argument("--lr", type=float, default=defaults.lr, help="learning rate of the optimizer")
    parser.add_argument("--levels", type=int, default=defaults.levels, help="adding problem: value levels")
    parser.add_argument(
        "--probe-rows", type=int, default=defaults.probe_rows, help="test rows the probe averages"
    )
    parser.add_argument(
        "--gate-bias",
        default="torch",
        help="initial bias of the LSTM forget gate and GRU update gate; comma-separated values train one "
        "model per value, 'torch' keeps torch's initialisation (about 0): e.g. torch,3",
    )
    parser.add_argument(
        "--explode-scale",
        type=float,
        default=None,
        help="multiply recurrent weights by this at init and train every run without and with clipping",
    )
    parser.add_argument(
        "--clip", type=float, default=None, help="gradient clipping norm (1.0 with --explode-scale)"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of data and initialisation")
    parser.add_argument("--out", default=defaults.out, help="output directory")
    parser.add_argument(
        "--wandb", action="store_true", help="log runs and the summary to W&B (offline without credentials)"
    )
    options = parser.parse_args(argv)
    try:
        return LabSettings(
            encoders=[c.strip() for c in options.encoders.split(",") if c.strip()],
            distances=_int_list(options.distances),
            task=options.task,
            hidden=options.hidden,
            embedding_dim=options.embedding_dim,
            epochs=options.epochs,
            patience=options.patience,
            train_size=options.train_size,
            validation_size=options.validation_size,
            test_size=options.test_size,
            batch_size=options.batch_size,
            validate_every=options.validate_every,
            lr=options.lr,
            optimizer=options.optimizer,
            levels=options.levels,
            probe_rows=options.probe_rows,
            gate_biases=[None if b.strip() == "torch" else float(b) for b in options.gate_bias.split(",")],
            explode_scale=options.explode_scale,
            clip=options.clip,
            seed=options.seed,
            out=options.out,
            wandb=options.wandb,
        )
    except ValueError as error:
        parser.error(str(error))
        raise


def main(argv: list[str]) -> None:
    """Entry point of ``seqtasks gradients``."""
    settings = parse_args(argv)
    import datasets

    datasets.disable_progress_bars()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    run_lab(settings)
