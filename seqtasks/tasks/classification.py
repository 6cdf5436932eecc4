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
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from seqtasks.checkpoints import CHECKPOINT_KEY, CheckpointError, legacy_network, legacy_optimizer
from seqtasks.data.batching import real_rows
from seqtasks.inference.labels import prediction_record, predictions
from seqtasks.inference.writers import RecordWriter
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.plots import log_figure
from seqtasks.tasks.base import SeqTask, map_rows

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
            (set false to allow it). A word-level ``LanguageModel`` checkpoint is accepted: its embedding
            (mapped by word) and encoder initialise this network's (ULMFiT).
        layer_lr_decay: discriminative learning rates (ULMFiT's 2.6): the head and pooler learn at the
            optimizer's ``lr``, the top encoder layer at ``lr / layer_lr_decay``, each layer below it
            ``layer_lr_decay`` times slower again, the embedding slowest. 1.0: one rate for all.
        gradual_unfreezing: train only the head (and pooler) in the first epoch, then unfreeze one more
            layer group from the top each epoch (top encoder layer, …, embedding) until all train.
    """

    init_from_tasks = ("LanguageModel",)

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
        layer_lr_decay: float = 1.0,
        gradual_unfreezing: bool = False,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, init_from, init_from_strict)
        if len(labels) < 2:
            raise ValueError(f"labels must name at least two classes, got {labels}")
        if layer_lr_decay < 1.0:
            raise ValueError(f"layer_lr_decay must be >= 1 (lower layers learn slower), got {layer_lr_decay}")
        self.layer_lr_decay = layer_lr_decay
        self.gradual_unfreezing = gradual_unfreezing
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

    def _step(self, batch: dict[str, Tensor], stage: str, log: bool = True) -> tuple[Tensor, Tensor]:
        """Loss and predictions; updates the stage's metrics (epoch values, exact across ranks)."""
        logits = self.network(batch["tokens"], batch["lengths"])
        loss = self.network.loss(logits, batch["labels"])
        predicted = logits.argmax(dim=-1)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(predicted, batch["labels"])
        mean_loss = getattr(self, f"{stage}_loss")
        mean_loss.update(loss.detach(), weight=batch["labels"].size(0))
        if log:
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
        loss, _ = self._step(batch, "train", self.logs_epoch_metrics())
        if self.logs_this_step(batch_idx):
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

    # ---- fine-tuning: discriminative rates, gradual unfreezing (ULMFiT) ----------------------------------
    def parameter_groups(self) -> list[tuple[list[torch.nn.Parameter], float]]:
        """One group per layer, top first (the head at the optimizer's rate), each lower one
        ``layer_lr_decay`` times slower; a single group when the decay is 1."""
        if self.layer_lr_decay == 1.0:
            return super().parameter_groups()
        groups = self.network.layer_groups()[::-1]
        return [(params, self.layer_lr_decay**-depth) for depth, params in enumerate(groups)]

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.gradual_unfreezing and self.trainer.world_size > 1:
            raise ValueError(
                "gradual_unfreezing trains in one process only (DDP fixes the trained parameters when it "
                f"wraps the model); this run has {self.trainer.world_size}: set devices/num_nodes to 1 or "
                "gradual_unfreezing: false"
            )

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.gradual_unfreezing:
            groups = self.network.layer_groups()[::-1]  # top first
            trainable = min(len(groups), self.current_epoch + 1)
            for depth, params in enumerate(groups):
                for parameter in params:
                    parameter.requires_grad_(depth < trainable)

    def on_train_end(self) -> None:
        if self.gradual_unfreezing:  # the trained model leaves with every layer trainable again
            for parameter in self.network.parameters():
                parameter.requires_grad_(True)

    # ---- artefacts, fine-tuning, legacy checkpoints --------------------------------------------------
    def adapt_state(self, source: dict[str, Tensor], source_artefacts: dict[str, Any]) -> dict[str, Any]:
        if "codec" in source_artefacts:  # a LanguageModel checkpoint
            return self._adapt_language_model(source, source_artefacts["codec"])
        adapted = super().adapt_state(source, source_artefacts)
        # words: copy each pretrained row to the word's row in this model's vocabulary
        key = "network.embedding.weight"
        if key in source and "text_codec" in source_artefacts and "text_codec" in self.artefacts:
            mapped = self._map_words(source[key], source_artefacts["text_codec"]["vocabulary"])
            if mapped is not None:
                adapted[key] = mapped
        # a different label set keeps its fresh head
        if "network.head.weight" in adapted:
            pretrained_labels = source_artefacts.get("labels")
            if pretrained_labels is not None and list(pretrained_labels) != self.labels:
                adapted.pop("network.head.weight", None)
                adapted.pop("network.head.bias", None)
        return adapted

    def _map_words(self, source: Tensor, words: list[str]) -> Tensor | None:
        """This model's embedding with each word's row taken from ``source`` (rows named by ``words``);
        None when the widths differ or no word is shared."""
        own = self.network.embedding.weight.detach()
        if "text_codec" not in self.artefacts or source.size(1) != own.size(1):
            return None
        vocabulary = self.artefacts["text_codec"]["vocabulary"]
        shared = set(words) & set(vocabulary)
        if not shared:
            return None
        rank_zero_info(
            f"init_from: {len(shared):,} of this model's {len(vocabulary):,} words take pretrained rows"
        )
        return map_rows(own, source, words, vocabulary)

    def _adapt_language_model(self, source: dict[str, Tensor], codec: dict[str, Any]) -> dict[str, Any]:
        """A word-level LM's embedding (by word) and encoder (by name and shape); its output layer is not
        a classifier's and stays behind."""
        if codec.get("level") != "word" or codec.get("reverse"):
            raise CheckpointError(
                f"init_from: a {codec.get('level')}-level{' backward' if codec.get('reverse') else ''} "
                "language model cannot initialise a word classifier; give a forward word-level LM"
            )
        tokenizer = self.artefacts.get("text_codec", {}).get("tokenizer", {})
        if "lowercase" in tokenizer and tokenizer["lowercase"] != codec.get("lowercase"):
            rank_zero_warn(
                f"init_from: the language model {'folds' if codec.get('lowercase') else 'keeps'} case and "
                "this classifier's data does not: words are mapped by their exact text, fewer will match"
            )
        fitting = super().adapt_state(source, {})  # tensors of matching name and shape
        adapted: dict[str, Any] = {k: v for k, v in fitting.items() if k.startswith("network.encoder.")}
        key = "network.embedding.weight"
        if key in source:
            mapped = self._map_words(source[key], list(codec["vocabulary"]))
            if mapped is not None:
                adapted[key] = mapped
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
