"""Switching a module to evaluation mode for inference, and back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode and no autograd inside the block; the module's previous mode is restored after.

    Inference must not run dropout, also on a model fresh from ``fit`` (left in training mode), and must
    leave a model that is still being trained as it found it, even when the block raises.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)
