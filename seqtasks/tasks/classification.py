"""Many-to-one: training a sequence classifier (sentiment, star ratings).

The network (:class:`~seqtasks.networks.classifier.ClassifierNetwork`: embedding → recurrent encoder →
pooler → dropout → linear head) comes from the recipe; this task trains it with cross-entropy and keeps
accuracy and macro-F1 per stage as torchmetrics (synced across ranks), and a confusion matrix image each
validation epoch. Inference: :class:`~seqtasks.inference.classification.Classifier`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchmetrics
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from seqtasks.checkpoints import CHECKPOINT_KEY, legacy_network, legacy_optimizer
from seqtasks.data.batching import real_rows
from seqtasks.inference.labels import prediction_record, predictions
from seqtasks.inference.writers import RecordWriter
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.plots import log_figure
from seqtasks.tasks.base import SeqTask

NETWORK = "seqtasks.networks.classifier.ClassifierNetwork"
NETWORK_SETTINGS = ["encoder", "pooler", "embedding_dim", "embedding_dropout", "dropout"]
"""Format-1 hyperparameters that moved to the network."""


class SequenceClassifier(SeqTask):
    """Train a classifier of whole sequences.

    Args:
        network: the network, built with ``(vocab_size, len(labels), pad_index)``.
        vocab_size: size of the word vocabulary (linked from the datamodule).
        labels: class names (linked from the datamodule).
        pad_index: padding index of the vocabulary (linked from the datamodule).
        optimizer: see :class:`~seqtasks.tasks.base.SeqTask`.
        lr_scheduler: see :class:`~seqtasks.tasks.base.SeqTask`.
        init_from: checkpoint to fine-tune from: weights only, words mapped by their text, a new head when
            the label set differs.
        init_from_strict: refuse an ``init_from`` checkpoint of another task or one nothing loads from
            (set false to allow it).
    """

    def __init__(
        self,
        network: Callable[[int, int, int], ClassifierNetwork],
        vocab_size: int,
        labels: list[str],
        pad_index: int = 0,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: str | None = None,
        init_from_strict: bool = True,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, init_from, init_from_strict)
        if len(labels) < 2:
            raise ValueError(f"labels must name at least two classes, got {labels}")
        self.save_hyperparameters()
        self.labels = list(labels)
        self.pad_index = pad_index
        self.network = self.build_network(network, vocab_size, len(labels), pad_index)
        num_classes = len(labels)
        metrics = torchmetrics.MetricCollection(
            {
                "acc": torchmetrics.Accuracy(task="multiclass", num_classes=num_classes),
                "f1_macro": torchmetrics.F1Score(task="multiclass", num_classes=num_classes, average="macro"),
            }
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.train_loss = torchmetrics.MeanMetric()
        # a NaN batch makes the epoch's mean NaN instead of being dropped (nan_strategy NaN keeps the weights;
        # torchmetrics' 'disable' would ignore them)
        self.val_loss = torchmetrics.MeanMetric(nan_strategy=float("nan"))
        self.test_loss = torchmetrics.MeanMetric(nan_strategy=float("nan"))
        self.val_confusion = torchmetrics.ConfusionMatrix(task="multiclass", num_classes=num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(B, num_labels)`` for a padded batch of token ids (the network's)."""
        return self.network(tokens, lengths)

    def _step(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        """Loss and predictions; updates the stage's metrics (epoch values, exact across ranks)."""
        logits = self.network(batch["tokens"], batch["lengths"])
        loss = self.network.loss(logits, batch["labels"])
        predicted = logits.argmax(dim=-1)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(predicted, batch["labels"])
        mean_loss = getattr(self, f"{stage}_loss")
        mean_loss.update(loss.detach(), weight=batch["labels"].size(0))
        self._log_stage(stage)
        return loss, predicted

    def _log_stage(self, stage: str) -> None:
        self.log(f"{stage}/loss", getattr(self, f"{stage}_loss"), on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(
            getattr(self, f"{stage}_metrics"), on_step=False, on_epoch=True, prog_bar=stage != "train"
        )

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> tuple[dict[str, Tensor], Tensor] | None:
        """Validation and test count only the batch's real rows (:func:`~seqtasks.data.batching.real_rows`:
        under DDP, rows repeated to keep the ranks in step are left out), so each row counts once."""
        rows = real_rows(batch)
        if rows is None:  # nothing but repeated rows: log (every rank logs alike), count nothing
            self._log_stage(stage)
            return None
        _, predicted = self._step(rows, stage)
        return rows, predicted

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self._step(batch, "train")
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        evaluated = self._evaluate(batch, "val")
        if evaluated is not None:
            rows, predicted = evaluated
            self.val_confusion.update(predicted, rows["labels"])

    def on_validation_epoch_end(self) -> None:
        matrix = self.val_confusion.compute()
        self.val_confusion.reset()
        if not self.trainer.sanity_checking:
            log_figure(self, "val/confusion_matrix", _confusion_figure(matrix.cpu(), self.labels))

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> list[dict[str, Any]]:
        """One record per row, ``{"id", "label", "probability", "probabilities": {label: p}}`` as
        ``classify --format jsonl`` writes it; the id is the row number from 1 (``indices`` + 1)."""
        logits = self.network(batch["tokens"], batch["lengths"])
        predicted = predictions(torch.softmax(logits, dim=-1), self.labels)
        indices = batch.get("indices")
        ids = (indices + 1).tolist() if indices is not None else [None] * len(predicted)
        return [prediction_record(i, p, self.labels) for i, p in zip(ids, predicted, strict=True)]

    def prediction_writer(self, path: str) -> Any:
        """The predict stage's writer: JSONL, one record per input row in row order (rank 0 gathers every
        rank's records and writes the one file; see :mod:`seqtasks.inference.writers`)."""
        return RecordWriter(path, "jsonl")

    # ---- artefacts, fine-tuning, legacy checkpoints --------------------------------------------------
    def adapt_state(self, source: dict[str, Tensor], source_artefacts: dict[str, Any]) -> dict[str, Any]:
        adapted = super().adapt_state(source, source_artefacts)
        # words: copy each pretrained row to the word's row in this model's vocabulary
        key = "network.embedding.weight"
        if key in source and "text_codec" in source_artefacts and "text_codec" in self.artefacts:
            old_words = source_artefacts["text_codec"]["vocabulary"]
            new_index = {w: i for i, w in enumerate(self.artefacts["text_codec"]["vocabulary"])}
            weight = self.network.embedding.weight.detach().clone()
            pairs = [(i, new_index[w]) for i, w in enumerate(old_words) if w in new_index]
            if pairs and source[key].size(1) == weight.size(1):
                old_rows, new_rows = zip(*pairs, strict=True)
                weight[list(new_rows)] = source[key][list(old_rows)]
                adapted[key] = weight
        # a different label set keeps its fresh head
        if "network.head.weight" in adapted:
            pretrained_labels = source_artefacts.get("labels")
            if pretrained_labels is not None and list(pretrained_labels) != self.labels:
                adapted.pop("network.head.weight", None)
                adapted.pop("network.head.bias", None)
        return adapted

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.artefacts["labels"] = self.labels
        super().on_save_checkpoint(checkpoint)

    @classmethod
    def upgrade_legacy(cls, checkpoint: dict[str, Any]) -> None:
        """Format 1 → 2: optimizer settings → ``optimizer``/``lr_scheduler``; layers → ``network``;
        the ``text_encoder`` artefact → ``text_codec``."""
        legacy_optimizer(checkpoint["hyper_parameters"])
        legacy_network(checkpoint, NETWORK, NETWORK_SETTINGS)
        artefacts = checkpoint[CHECKPOINT_KEY]["artefacts"]
        if "text_encoder" in artefacts:
            artefacts["text_codec"] = artefacts.pop("text_encoder")


def _confusion_figure(matrix: Tensor, labels: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1.0 + 0.6 * len(labels)))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = float(matrix.max()) or 1.0
    for i in range(matrix.size(0)):
        for j in range(matrix.size(1)):
            value = int(matrix[i, j])
            ax.text(
                j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black"
            )
    fig.tight_layout()
    return fig
