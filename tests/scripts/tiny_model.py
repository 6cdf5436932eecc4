"""The tiny classifier the multi-process test scripts train (a script's own folder is on its import path)."""

from __future__ import annotations

from functools import partial
from typing import Any

from seqtasks.encoders import GRUEncoder
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.tasks import SequenceClassifier


def tiny_classifier(data: Any, **network: Any) -> SequenceClassifier:
    """A GRU-8 / embedding-8 ``SequenceClassifier`` sized by ``data``; ``network`` adds network settings."""
    return SequenceClassifier(
        network=partial(
            ClassifierNetwork,
            encoder=lambda size: GRUEncoder(size, hidden_size=8, bidirectional=False),
            embedding_dim=8,
            **network,
        ),
        vocab_size=data.vocab_size,
        labels=data.labels,
        pad_index=data.pad_index,
    )
