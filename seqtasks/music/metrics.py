"""The polyphonic-music benchmark's two numbers, as torchmetrics with summed states.

Both keep sums (not per-batch means), so the value over a split is exact whatever the batching, and
torchmetrics adds the sums across ranks under DDP.

* :class:`NLLPerStep`: total negative log-likelihood (nats) / number of time steps. For piano rolls the
  NLL of a step is the sum over the 88 keys of the Bernoulli NLLs, and every test time step counts once
  (Boulanger-Lewandowski et al. 2012; Chung et al. 2014). For event sequences a step is a token.
* :class:`FrameAccuracy`: TP / (TP + FP + FN) over all keys and frames of the split (Bay et al. 2009),
  a key predicted on when its probability is at least the threshold (0.5).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class NLLPerStep(Metric):
    """Summed NLL over summed step count.

    The summed states here (and in :class:`FrameAccuracy`) are updated out of place: a ``validate`` before a
    ``fit`` leaves them made under inference mode, where an in-place ``+=`` would fail in training.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("steps", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, nll_sum: Tensor, steps: Tensor | int) -> None:
        """Add ``nll_sum`` (nats, summed over the batch's steps) and how many ``steps`` it covers."""
        self.total = self.total + nll_sum.detach().to(torch.float64)
        self.steps = self.steps + torch.as_tensor(steps, device=self.steps.device).long()

    def compute(self) -> Tensor:
        return (self.total / self.steps.clamp(min=1)).float()


class FrameAccuracy(Metric):
    """TP / (TP + FP + FN) summed over every key of every real frame."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, threshold: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, targets: Tensor, mask: Tensor | None = None) -> None:
        """``probs`` and 0/1 ``targets`` of shape ``(..., keys)``; ``mask`` (``...``) marks real frames."""
        predicted = probs >= self.threshold
        truth = targets > 0.5
        if mask is not None:
            keep = mask.unsqueeze(-1)
            predicted, truth = predicted & keep, truth & keep
        self.tp = self.tp + (predicted & truth).sum()
        self.fp = self.fp + (predicted & ~truth).sum()
        self.fn = self.fn + (~predicted & truth).sum()

    def compute(self) -> Tensor:
        denominator = (self.tp + self.fp + self.fn).clamp(min=1)
        return self.tp.float() / denominator.float()
