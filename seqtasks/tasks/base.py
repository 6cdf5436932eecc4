"""The thin base every task's LightningModule shares: artefacts in checkpoints, epoch seeding, fine-tuning.

* **Artefacts** (vocabularies, tokenizers as plain data) travel in ``checkpoint["seqtasks"]`` so a
  checkpoint alone is enough for inference, loadable with ``torch.load(weights_only=True)``.
* **Resume** (``fit --ckpt_path``) restores weights, optimizer, epoch and step through Lightning. The
  random state is re-seeded from ``(seed, epoch, rank)`` at each epoch's first batch, and batch order
  depends only on ``(seed, epoch)``, so a resumed run repeats the losses of an uninterrupted one.
* **Fine-tune** (``init_from``) copies weights only, before training, with a fresh optimizer; tensors whose
  shape changed (a new label set, a new vocabulary) are mapped by :meth:`SeqTask.adapt_state` or left
  freshly initialised.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info

CHECKPOINT_KEY = "seqtasks"


class SeqTask(pl.LightningModule):
    """Base LightningModule of seqtasks tasks.

    Args:
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        init_from: a checkpoint to fine-tune from (weights only; optimizer and schedule start fresh).
        step_decay: from epoch ``step_decay_start`` on, the learning rate is multiplied by this factor
            each epoch (Luong et al. 2015 halve it every epoch after the fifth).
        step_decay_start: the first epoch (0-based) trained at a decayed rate; None keeps ``lr``. The rate
            is set from the epoch number at each epoch's start, so a resumed fit follows it exactly.
    """

    def __init__(
        self,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        init_from: str | None = None,
        step_decay: float = 0.5,
        step_decay_start: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < step_decay <= 1.0:
            raise ValueError(f"step_decay must be in (0, 1], got {step_decay}")
        if step_decay_start is not None and step_decay_start < 0:
            raise ValueError(f"step_decay_start must be >= 0, got {step_decay_start}")
        self.lr = lr
        self.weight_decay = weight_decay
        self.init_from = init_from
        self.step_decay = step_decay
        self.step_decay_start = step_decay_start
        self.artefacts: dict[str, Any] = {}

    # ---- artefacts --------------------------------------------------------------------------------
    def collect_artefacts(self, datamodule: Any) -> dict[str, Any]:
        """Plain-data artefacts taken from the datamodule at setup (override per task)."""
        return {}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and not self.artefacts:
            self.artefacts = self.collect_artefacts(datamodule)
        if stage == "fit" and self.init_from and not getattr(self, "_initialised_from", False):
            self.load_pretrained(self.init_from)
            self._initialised_from = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "task": f"{type(self).__module__}.{type(self).__qualname__}",
            "artefacts": self.artefacts,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if CHECKPOINT_KEY in checkpoint:
            self.artefacts = checkpoint[CHECKPOINT_KEY]["artefacts"]
            # a resumed fit must not re-apply init_from over the restored weights
            self._initialised_from = True

    # ---- fine-tuning ------------------------------------------------------------------------------
    def adapt_state(
        self, source: dict[str, torch.Tensor], source_artefacts: dict[str, Any]
    ) -> dict[str, Any]:
        """Map a pretrained state dict onto this model; default: keep tensors of matching name and shape."""
        own = self.state_dict()
        return {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}

    def load_pretrained(self, path: str) -> None:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        artefacts = checkpoint.get(CHECKPOINT_KEY, {}).get("artefacts", {})
        adapted = self.adapt_state(checkpoint["state_dict"], artefacts)
        own = self.state_dict()
        own.update(adapted)
        self.load_state_dict(own)
        fresh = sorted(k for k in own if k not in adapted)
        rank_zero_info(
            f"init_from {path}: {len(adapted)} tensors loaded, {len(fresh)} freshly initialised"
            + (f" ({', '.join(fresh)})" if fresh else "")
        )

    # ---- training plumbing ------------------------------------------------------------------------
    def learning_rate(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based) under the step-decay schedule."""
        if self.step_decay_start is None or epoch < self.step_decay_start:
            return self.lr
        return self.lr * self.step_decay ** (epoch - self.step_decay_start + 1)

    def on_train_epoch_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)
        if self.step_decay_start is not None:
            rate = self.learning_rate(self.current_epoch)
            for optimizer in self.trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = rate
            self.log("train/lr", rate, on_step=False, on_epoch=True)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Seed at the epoch's first batch, not in on_train_epoch_start: creating the DataLoader iterator
        # draws from the global RNG, and Lightning creates it before on_train_epoch_start in the first
        # epoch of a fit (a resumed one too) but after it in later epochs, so a seed set there would be
        # one draw further along in an uninterrupted run than in a resumed one.
        if batch_idx == 0:
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
            torch.manual_seed(seed * 1_000_003 + self.current_epoch * 1_009 + self.global_rank)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def load_task(path: str, map_location: str = "cpu") -> SeqTask:
    """Load any seqtasks checkpoint: the task class is named inside it; no network, no data needed."""
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if CHECKPOINT_KEY not in checkpoint:
        raise ValueError(f"{path}: not a seqtasks checkpoint (no {CHECKPOINT_KEY!r} entry)")
    module_name, _, class_name = checkpoint[CHECKPOINT_KEY]["task"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    model = cls.load_from_checkpoint(path, map_location=map_location, weights_only=True)
    model.eval()
    return model
