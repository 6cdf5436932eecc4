"""What the predictors share: the checked load of a checkpoint, the device, the labelled predictors' setup."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from seqtasks.checkpoints import CheckpointError, Trained, load_trained, task_kind

DEFAULT_BATCH_SIZE = 64


def load_for(path: str | os.PathLike, network_type: type, does: str, map_location: str = "cpu") -> Trained:
    """The network and artefacts of ``path``; a checkpoint of another task is refused by name."""
    trained = load_trained(path, map_location)
    if not isinstance(trained.network, network_type):
        raise CheckpointError(f"{path} holds a {task_kind(trained)}, which does not {does}")
    return trained


class Predictor:
    """A trained network in inference: subclasses name the network they run and what it does (messages)."""

    network_type: ClassVar[type[nn.Module]]
    does: ClassVar[str]

    network: nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device


class LabelPredictor(Predictor):
    """A network that gives labels (classes, tags), with the codec it was trained with.

    Args:
        network: the trained network (kept in its mode; each call runs in evaluation mode).
        codec: the codec of the training data.
        labels: the label names, in the network's output order.
        batch_size: inputs per forward pass.
    """

    codec_type: ClassVar[Any]
    codec_key: ClassVar[str]
    refusal: ClassVar[str] = "{kind} does not {does}"
    """What ``from_task`` says of a task of another kind (``{kind}``, ``{does}`` filled in)."""

    def __init__(
        self, network: nn.Module, codec: Any, labels: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.network = network
        self.codec = codec
        self.labels = list(labels)
        self.batch_size = batch_size

    @classmethod
    def from_task(cls, task: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
        """The predictor of a trained (or training) task, or of a :class:`~seqtasks.checkpoints.Trained`."""
        if not isinstance(getattr(task, "network", None), cls.network_type):
            refusal = cls.refusal.format(kind=task_kind(task), does=cls.does)
            raise TypeError(f"{refusal} (its network is no {cls.network_type.__name__})")
        return cls(
            task.network, cls.codec_type.from_state(task.artefacts[cls.codec_key]), task.labels, batch_size
        )

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, map_location: str = "cpu", batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Any:
        """The predictor of a checkpoint (any seqtasks format); no data or config needed."""
        return cls.from_task(load_for(path, cls.network_type, cls.does, map_location), batch_size)
