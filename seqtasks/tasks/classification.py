"""Many-to-one: sequence classification (sentiment, star ratings).

embedding → recurrent encoder → pooler → dropout → linear head; cross-entropy; accuracy and macro-F1 per
stage as torchmetrics (synced across ranks), and a confusion matrix image each validation epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchmetrics
from torch import Tensor, nn

from seqtasks.data.text import TextEncoder
from seqtasks.encoders.base import RecurrentEncoder
from seqtasks.nn.poolers import MaxPooler, Pooler
from seqtasks.plots import log_figure
from seqtasks.tasks.base import SeqTask


class SequenceClassifier(SeqTask):
    """Classify a whole sequence.

    Args:
        vocab_size: size of the word vocabulary (linked from the datamodule).
        labels: class names (linked from the datamodule).
        encoder: the recurrent encoder, built with the embedding width.
        pooler: sequence → vector, built with the encoder's output size; max pooling when omitted.
        embedding_dim: word embedding width.
        embedding_dropout: dropout on the word embeddings.
        dropout: dropout before the head.
        pad_index: padding index of the vocabulary (linked from the datamodule).
        lr: AdamW learning rate.
        step_decay: from epoch ``step_decay_start`` on, the rate is multiplied by this factor each epoch.
        step_decay_start: first epoch (0-based) at a decayed rate; None keeps ``lr`` constant.
        weight_decay: AdamW weight decay.
        init_from: checkpoint to fine-tune from: weights only, words mapped by their text, a new head when
            the label set differs.
    """

    def __init__(
        self,
        vocab_size: int,
        labels: list[str],
        encoder: Callable[[int], RecurrentEncoder],
        pooler: Callable[[int], Pooler] | None = None,
        embedding_dim: int = 128,
        embedding_dropout: float = 0.2,
        dropout: float = 0.3,
        pad_index: int = 0,
        lr: float = 1e-3,
        step_decay: float = 0.5,
        step_decay_start: int | None = None,
        weight_decay: float = 0.0,
        init_from: str | None = None,
    ) -> None:
        super().__init__(lr, weight_decay, init_from, step_decay, step_decay_start)
        if len(labels) < 2:
            raise ValueError(f"labels must name at least two classes, got {labels}")
        self.save_hyperparameters()
        self.labels = list(labels)
        self.pad_index = pad_index
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(embedding_dim)
        if self.encoder.input_size != embedding_dim:
            raise ValueError(
                f"encoder input_size {self.encoder.input_size} does not match embedding_dim {embedding_dim}"
            )
        self.pooler = (pooler or MaxPooler)(self.encoder.output_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.pooler.output_size, len(labels))
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
        self.val_loss = torchmetrics.MeanMetric()
        self.test_loss = torchmetrics.MeanMetric()
        self.val_confusion = torchmetrics.ConfusionMatrix(task="multiclass", num_classes=num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(B, num_labels)`` for a padded batch of token ids."""
        mask = tokens != self.pad_index
        mask &= torch.arange(tokens.size(1), device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)
        embedded = self.embedding_dropout(self.embedding(tokens))
        encoded = self.encoder(embedded, lengths=lengths)
        return self.head(self.dropout(self.pooler(encoded, mask)))

    def _step(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        """Loss and predictions; updates the stage's metrics (epoch values, exact across ranks)."""
        logits = self(batch["tokens"], batch["lengths"])
        loss = nn.functional.cross_entropy(logits, batch["labels"])
        predictions = logits.argmax(dim=-1)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(predictions, batch["labels"])
        mean_loss = getattr(self, f"{stage}_loss")
        mean_loss.update(loss.detach(), weight=batch["labels"].size(0))
        self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss, predictions

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self._step(batch, "train")
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        _, predictions = self._step(batch, "val")
        self.val_confusion.update(predictions, batch["labels"])

    def on_validation_epoch_end(self) -> None:
        matrix = self.val_confusion.compute()
        self.val_confusion.reset()
        if not self.trainer.sanity_checking:
            log_figure(self, "val/confusion_matrix", _confusion_figure(matrix.cpu(), self.labels))

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return torch.softmax(self(batch["tokens"], batch["lengths"]), dim=-1)

    # ---- artefacts, fine-tuning, inference -----------------------------------------------------------
    def collect_artefacts(self, datamodule: Any) -> dict[str, Any]:
        return {"text_encoder": datamodule.text_encoder.state_dict()}

    def adapt_state(self, source: dict[str, Tensor], source_artefacts: dict[str, Any]) -> dict[str, Any]:
        adapted = super().adapt_state(source, source_artefacts)
        # words: copy each pretrained row to the word's row in this model's vocabulary
        key = "embedding.weight"
        if key in source and "text_encoder" in source_artefacts and "text_encoder" in self.artefacts:
            old_words = source_artefacts["text_encoder"]["vocabulary"]
            new_index = {w: i for i, w in enumerate(self.artefacts["text_encoder"]["vocabulary"])}
            weight = self.embedding.weight.detach().clone()
            pairs = [(i, new_index[w]) for i, w in enumerate(old_words) if w in new_index]
            if pairs and source[key].size(1) == weight.size(1):
                old_rows, new_rows = zip(*pairs, strict=True)
                weight[list(new_rows)] = source[key][list(old_rows)]
                adapted[key] = weight
        # a different label set keeps its fresh head
        if "head.weight" in adapted:
            pretrained_labels = source_artefacts.get("labels")
            if pretrained_labels is not None and list(pretrained_labels) != self.labels:
                adapted.pop("head.weight", None)
                adapted.pop("head.bias", None)
        return adapted

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.artefacts["labels"] = self.labels
        super().on_save_checkpoint(checkpoint)

    @torch.no_grad()
    def classify(self, texts: Sequence[str]) -> list[tuple[str, float, list[float]]]:
        """Label, its probability and all class probabilities for each text, from the checkpoint alone."""
        encoder = TextEncoder.from_state(self.artefacts["text_encoder"])
        ids = [encoder(text) or [encoder.vocabulary.unk_index] for text in texts]
        lengths = torch.tensor([len(x) for x in ids])
        tokens = torch.full((len(ids), int(lengths.max())), self.pad_index, dtype=torch.long)
        for row, seq in enumerate(ids):
            tokens[row, : len(seq)] = torch.tensor(seq)
        was_training = self.training
        self.eval()  # inference: no dropout, also on a model fresh from fit (left in training mode)
        try:
            probs = torch.softmax(self(tokens.to(self.device), lengths.to(self.device)), dim=-1).cpu()
        finally:
            self.train(was_training)
        out = []
        for row in probs:
            best = int(row.argmax())
            out.append((self.labels[best], float(row[best]), row.tolist()))
        return out


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
