"""Classifying texts with a trained classifier: what ``seqtasks classify``, the predict stage and a server
call.

    from seqtasks.inference.classification import Classifier

    classifier = Classifier.from_checkpoint("runs/sentiment-imdb/.../best.ckpt")
    for prediction in classifier.classify(["a wonderful film", "dull"]):
        print(prediction.label, prediction.probability)

Texts are encoded by the checkpoint's :class:`~seqtasks.data.text.TextCodec` (the one training used) and
run through the network in batches of ``batch_size``, in evaluation mode. An empty text is refused (see
the codec), with the number of the input that is empty.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from seqtasks.checkpoints import CheckpointError, load_task
from seqtasks.data.batching import pad_sequences
from seqtasks.data.text import EmptyTextError, TextCodec
from seqtasks.inference.labels import Prediction, predictions
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.nn.modes import eval_mode

DEFAULT_BATCH_SIZE = 64

__all__ = ["Classifier", "Prediction", "predictions"]


class Classifier:
    """Texts → labels with a :class:`ClassifierNetwork` and the codec it was trained with.

    Args:
        network: the trained network (kept in its mode; each call runs in evaluation mode).
        codec: the text codec of the training data.
        labels: the class names, in the network's output order.
        batch_size: texts per forward pass.
    """

    def __init__(
        self,
        network: ClassifierNetwork,
        codec: TextCodec,
        labels: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.network = network
        self.codec = codec
        self.labels = list(labels)
        self.batch_size = batch_size

    @classmethod
    def from_task(cls, task: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> Classifier:
        """The predictor of a trained (or training) :class:`~seqtasks.tasks.SequenceClassifier`."""
        if not isinstance(getattr(task, "network", None), ClassifierNetwork):
            raise TypeError(
                f"{type(task).__name__} is not a classifier (its network is no ClassifierNetwork)"
            )
        codec = TextCodec.from_state(task.artefacts["text_codec"])
        return cls(task.network, codec, task.labels, batch_size)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, map_location: str = "cpu", batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Classifier:
        """The predictor of a classifier checkpoint (any format); no data or config needed."""
        task = load_task(path, map_location)
        if not isinstance(getattr(task, "network", None), ClassifierNetwork):
            raise CheckpointError(f"{path} holds a {type(task).__name__}, which does not classify")
        return cls.from_task(task, batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def encode(self, texts: Sequence[str], first: int = 0) -> tuple[Tensor, Tensor]:
        """A padded batch ``(tokens, lengths)`` of ``texts``; ``first`` numbers them in error messages."""
        ids = []
        for number, text in enumerate(texts, start=first + 1):
            try:
                ids.append(self.codec(text))
            except EmptyTextError as error:
                raise EmptyTextError(f"input {number}: {error}") from None
        return pad_sequences(ids, self.network.pad_index)

    def predict_batch(self, tokens: Tensor, lengths: Tensor) -> list[Prediction]:
        """Predictions for a padded batch of token ids (evaluation mode, no autograd)."""
        with eval_mode(self.network):
            logits = self.network(tokens.to(self.device), lengths.to(self.device))
        return predictions(torch.softmax(logits, dim=-1), self.labels)

    def classify(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        """Label, its probability and all class probabilities of each text, in order.

        Raises :class:`~seqtasks.data.text.EmptyTextError` (a ``ValueError``) naming the input number
        (from 1) of an empty text, before anything runs.
        """
        size = batch_size or self.batch_size
        batches = [self.encode(texts[i : i + size], first=i) for i in range(0, len(texts), size)]
        return [prediction for batch in batches for prediction in self.predict_batch(*batch)]

    __call__ = classify
