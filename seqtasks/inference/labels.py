"""A class per sequence: the label of each row of class probabilities.

Shared by the classifier's predictor (:mod:`seqtasks.inference.classification`) and the task's
``predict_step``, which cannot import the predictor (the predictor loads tasks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import Tensor


class Prediction(NamedTuple):
    """One text's class: its label, that label's probability and every class's probability."""

    label: str
    probability: float
    probabilities: list[float]


def predictions(probabilities: Tensor, labels: Sequence[str]) -> list[Prediction]:
    """One :class:`Prediction` per row of ``probabilities`` ``(B, num_labels)``: the most probable label."""
    out = []
    for row in probabilities.cpu():
        best = int(row.argmax())
        out.append(Prediction(labels[best], float(row[best]), row.tolist()))
    return out


def prediction_record(id: Any, prediction: Prediction, labels: Sequence[str]) -> dict[str, Any]:
    """The JSONL / server record of one text: ``{"id", "label", "probability", "probabilities"}``, the last
    a ``{label: probability}`` object in the network's class order."""
    return {
        "id": id,
        "label": prediction.label,
        "probability": prediction.probability,
        "probabilities": dict(zip(labels, prediction.probabilities, strict=True)),
    }
