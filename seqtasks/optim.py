"""Learning-rate schedules that recipes name by class path, and the optimizer a task uses by default.

A recipe gives the optimizer and the schedule as ``class_path`` / ``init_args`` (LightningCLI injects them
as callables: ``OptimizerCallable`` / ``LRSchedulerCallable``)::

    model:
      init_args:
        optimizer:
          class_path: torch.optim.AdamW
          init_args: {lr: 0.001, weight_decay: 0.0}
        lr_scheduler:
          class_path: seqtasks.optim.StepDecay
          init_args: {start: 30, factor: 0.5}

Every schedule here is a pure function of the epoch number (``SlantedTriangular``: of the optimizer step,
its ``interval`` is ``"step"``), so a resumed fit (whose scheduler state is in the checkpoint) follows it
exactly.
"""

from __future__ import annotations

from functools import partial

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

DEFAULT_LR = 1e-3

default_optimizer = partial(torch.optim.AdamW, lr=DEFAULT_LR, weight_decay=0.0)
"""AdamW, lr 1e-3, no weight decay: what a task uses when the recipe names no optimizer."""


class StepDecay(LambdaLR):
    """The rate stays constant until epoch ``start`` (0-based), then is multiplied by ``factor`` each epoch.

    Luong et al. (2015) halve it every epoch after the fifth: ``StepDecay(start=5, factor=0.5)``.

    Args:
        optimizer: the optimizer whose rate it sets (given by the task).
        start: the first epoch trained at a decayed rate.
        factor: the multiplier per epoch from ``start`` on, in (0, 1].
    """

    def __init__(self, optimizer: Optimizer, start: int, factor: float = 0.5) -> None:
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"StepDecay factor must be in (0, 1], got {factor}")
        if start < 0:
            raise ValueError(f"StepDecay start must be >= 0, got {start}")
        self.start, self.factor = start, factor
        super().__init__(optimizer, self.multiplier)

    def multiplier(self, epoch: int) -> float:
        """The factor on the base rate in ``epoch``."""
        return 1.0 if epoch < self.start else self.factor ** (epoch - self.start + 1)


class InverseTimeDecay(LambdaLR):
    """``lr / (1 + decay · epoch)``: the SGD schedule of Ma & Hovy (2016) and Lample et al. (2016).

    Args:
        optimizer: the optimizer whose rate it sets (given by the task).
        decay: the decay per epoch.
    """

    def __init__(self, optimizer: Optimizer, decay: float = 0.05) -> None:
        if decay < 0:
            raise ValueError(f"InverseTimeDecay decay must be >= 0, got {decay}")
        self.decay = decay
        super().__init__(optimizer, self.multiplier)

    def multiplier(self, epoch: int) -> float:
        return 1.0 / (1.0 + self.decay * epoch)


class SlantedTriangular(LambdaLR):
    """ULMFiT's slanted triangular rate (Howard & Ruder 2018), stepped once per *training step*.

    The rate climbs linearly from ``lr / ratio`` to ``lr`` over the first ``cut_fraction`` of the steps,
    then falls linearly back to ``lr / ratio`` at the last step: a short warm-up lets a fine-tuned model
    find its region, the long decay refines it.

    Args:
        optimizer: the optimizer whose rate it sets (given by the task).
        total_steps: the number of optimizer steps of the whole fit; None: the task fills in the trainer's
            estimate (``Trainer.estimated_stepping_batches``) before the first step.
        cut_fraction: the share of the steps spent climbing, in (0, 1).
        ratio: how much smaller the lowest rate is than ``lr``, ≥ 1.
    """

    interval = "step"
    """Stepped after each optimizer step, not each epoch (the task configures Lightning so)."""

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None = None,
        cut_fraction: float = 0.1,
        ratio: float = 32.0,
    ) -> None:
        if not 0.0 < cut_fraction < 1.0:
            raise ValueError(f"SlantedTriangular cut_fraction must be in (0, 1), got {cut_fraction}")
        if ratio < 1.0:
            raise ValueError(f"SlantedTriangular ratio must be >= 1, got {ratio}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"SlantedTriangular total_steps must be >= 1, got {total_steps}")
        self.total_steps = total_steps
        self.cut_fraction, self.ratio = cut_fraction, ratio
        super().__init__(optimizer, self.multiplier)

    def multiplier(self, step: int) -> float:
        """The factor on the base rate after ``step`` optimizer steps."""
        if step == 0:  # the first step's rate needs no total (LambdaLR asks for it at construction)
            return 1.0 / self.ratio
        if self.total_steps is None:
            raise ValueError("SlantedTriangular: total_steps is unset (a task sets it from the trainer)")
        cut = max(1, int(self.total_steps * self.cut_fraction))
        climbing = step < cut
        p = step / cut if climbing else max(0.0, 1.0 - (step - cut) / max(1, self.total_steps - cut))
        return (1.0 + p * (self.ratio - 1.0)) / self.ratio
