"""Classifying texts with a trained classifier: what ``seqtasks classify``, the predict stage and a server
call.

    from seqtasks.inference.classification import Classifier

    classifier = Classifier.from_checkpoint("runs/sentiment-imdb/.../best.ckpt")
    for prediction in classifier.classify(["a wonderful film", "dull"]):
        print(prediction.label, prediction.probability)

    classifier.records(["a wonderful film"])  # [{"id": 1, "label": "pos", "probability": 0.93,
                                              #   "probabilities": {"neg": 0.07, "pos": 0.93}}]

Texts are encoded by the checkpoint's :class:`~seqtasks.data.text.TextCodec` (the one training used) and
run through the network in batches of ``batch_size`` (the keyword of ``--batch-size``), in evaluation mode.
Batches are made of texts of similar length (longest first), so little is padding; results come back in
input order, and a text gets the same probabilities in any batch. An empty text is refused (see the
codec), with the number of the input that is empty, before anything runs. A text longer than the codec's
``max_length`` tokens is classified by its first ``max_length`` tokens, never silently: one
:class:`~seqtasks.errors.TruncationWarning` per call names the inputs and how many tokens were cut, and
their records carry ``"truncated"`` (the number of tokens cut).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from seqtasks.data.batching import pad_sequences
from seqtasks.data.text import EmptyTextError, TextCodec, split_words
from seqtasks.errors import TruncationWarning, cut_summary
from seqtasks.inference.base import LabelPredictor
from seqtasks.inference.io import length_sorted_batches
from seqtasks.inference.io import progress as progress_bar
from seqtasks.inference.labels import Prediction, prediction_record, predictions
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.nn.modes import eval_mode

__all__ = ["Classifier", "Prediction", "prediction_record", "predictions"]


class Classifier(LabelPredictor):
    """Texts → labels with a :class:`ClassifierNetwork` and the :class:`TextCodec` it was trained with
    (arguments: :class:`~seqtasks.inference.base.LabelPredictor`)."""

    network_type = ClassifierNetwork
    does = "classify"
    refusal = "{kind} is not a classifier"
    codec_type = TextCodec
    codec_key = "text_codec"

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

    def classify(
        self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False
    ) -> list[Prediction]:
        """Label, its probability and all class probabilities of each text, in input order.

        ``batch_size`` None is the predictor's; ``progress`` draws a bar on stderr (one step per batch).
        Raises :class:`~seqtasks.data.text.EmptyTextError` (a ``ValueError``) naming the input number
        (from 1) of an empty text, before anything runs; warns (:class:`~seqtasks.errors.TruncationWarning`)
        naming the texts longer than the codec's ``max_length``, which are classified by their first tokens.
        """
        return self._classify(texts, batch_size, progress)[0]

    def _classify(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
        names: Sequence[Any] | None = None,
    ) -> tuple[list[Prediction], list[int]]:
        """The predictions and the number of tokens cut from each text; ``names`` name the inputs in
        messages (default: their number from 1)."""
        size = batch_size or self.batch_size
        if size < 1:
            raise ValueError(f"batch_size must be >= 1, got {size}")
        names = list(range(1, len(texts) + 1)) if names is None else list(names)
        ids, cuts = [], []
        for name, text in zip(names, texts, strict=True):
            try:
                ids.append(self.codec(text))
            except EmptyTextError as error:
                raise EmptyTextError(f"input {name}: {error}") from None
            cuts.append(self.tokens_cut(text, len(ids[-1])))
        self._warn_cuts([(n, len(i) + c, c) for n, i, c in zip(names, ids, cuts, strict=True) if c])
        batches = length_sorted_batches([len(x) for x in ids], size)
        results: list[Prediction | None] = [None] * len(ids)
        for rows in progress_bar(batches, total=len(batches), enabled=progress, unit="batch"):
            tokens, lengths = pad_sequences([ids[i] for i in rows], self.network.pad_index)
            for i, prediction in zip(rows, self.predict_batch(tokens, lengths), strict=True):
                results[i] = prediction
        return results, cuts  # type: ignore[return-value]

    def tokens_cut(self, text: str, kept: int) -> int:
        """How many tokens of ``text`` the codec cut, given that it kept ``kept`` (0: none)."""
        limit = self.codec.max_length
        if not limit or kept < limit:
            return 0
        return len(split_words(self.codec.tokenizer, text)) - kept

    def _warn_cuts(self, cuts: list[tuple[Any, int, int]]) -> None:
        if cuts:
            message = cut_summary(cuts, "tokens", int(self.codec.max_length or 0), "reads")
            warnings.warn(message, TruncationWarning, stacklevel=4)

    __call__ = classify

    def records(
        self,
        texts: Sequence[str],
        ids: Sequence[Any] | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> list[dict[str, Any]]:
        """One record per text, ``{"id", "label", "probability", "probabilities": {label: p}}``: what
        ``classify --format jsonl``, the predict stage and the server write. ``ids`` default to 1…n; they
        name the inputs in errors and warnings. A text that was cut has ``"truncated"``: the tokens cut."""
        ids = list(range(1, len(texts) + 1)) if ids is None else list(ids)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        predicted, cuts = self._classify(texts, batch_size, progress, ids)
        records = [prediction_record(i, p, self.labels) for i, p in zip(ids, predicted, strict=True)]
        for record, cut in zip(records, cuts, strict=True):
            if cut:
                record["truncated"] = cut
        return records
