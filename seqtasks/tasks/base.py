"""The thin base every task's LightningModule shares: optimizer and schedule from the recipe, artefacts in
checkpoints, epoch seeding, fine-tuning.

* **Network**: each task receives its network (a plain ``nn.Module`` from :mod:`seqtasks.networks`) as a
  callable from the recipe, calls it with the sizes only the data knows, and keeps it as ``self.network``.
* **Optimizer and schedule** are recipe settings (``class_path`` / ``init_args``), injected by LightningCLI
  as callables; :mod:`seqtasks.optim` has the epoch-wise schedules.
* **Artefacts** (vocabularies, tokenizers as plain data) come from the datamodule's public
  :meth:`~seqtasks.data.datamodule.SeqDataModule.artefacts` and travel in ``checkpoint["seqtasks"]`` so a
  checkpoint alone is enough for inference, loadable with ``torch.load(weights_only=True)``.
* **Resume** (``fit --ckpt_path``) restores weights, optimizer, schedule, epoch and step through
  Lightning. The random state is re-seeded from ``(seed, epoch, rank)`` at each epoch's first batch, and
  batch order depends only on ``(seed, epoch)``, so a resumed run repeats the losses of an uninterrupted one.
* **Fine-tune** (``init_from``) copies weights only, before training, with a fresh optimizer; tensors whose
  shape changed (a new label set, a new vocabulary) are mapped by :meth:`SeqTask.adapt_state` or left
  freshly initialised.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info

from seqtasks.checkpoints import CHECKPOINT_KEY, FORMAT, read_checkpoint, upgrade_checkpoint
from seqtasks.optim import default_optimizer


class SeqTask(pl.LightningModule):
    """Base LightningModule of seqtasks tasks.

    Args:
        optimizer: the optimizer, built with the parameters (``class_path`` / ``init_args`` in a recipe);
            None is AdamW with lr 1e-3 and no weight decay.
        lr_scheduler: a schedule built with the optimizer and stepped once per epoch (e.g.
            ``seqtasks.optim.StepDecay``); a ``ReduceLROnPlateau`` follows ``monitor``. None keeps the rate.
        init_from: a checkpoint to fine-tune from (weights only; optimizer and schedule start fresh).
    """

    monitor = "val/loss"
    """The metric a ``ReduceLROnPlateau`` schedule follows, unless the schedule names its own."""

    def __init__(
        self,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.optimizer = optimizer or default_optimizer
        self.lr_scheduler = lr_scheduler
        self.init_from = init_from
        self.artefacts: dict[str, Any] = {}
        self.network_args: list[Any] = []

    def build_network(self, network: Callable[..., torch.nn.Module], *args: Any) -> torch.nn.Module:
        """``network(*args)``, the sizes the data gave, recorded so the checkpoint can rebuild it alone."""
        self.network_args = list(args)
        return network(*args)

    # ---- artefacts --------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and not self.artefacts and hasattr(datamodule, "artefacts"):
            self.artefacts = dict(datamodule.artefacts())
        if stage == "fit" and self.init_from and not getattr(self, "_initialised_from", False):
            self.load_pretrained(self.init_from)
            self._initialised_from = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "task": f"{type(self).__module__}.{type(self).__qualname__}",
            "format": FORMAT,
            "network_args": self.network_args,
            "artefacts": self.artefacts,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if CHECKPOINT_KEY in checkpoint:
            upgrade_checkpoint(checkpoint)  # a checkpoint of an earlier layout resumes too
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
        checkpoint = upgrade_checkpoint(read_checkpoint(path))
        artefacts = checkpoint[CHECKPOINT_KEY]["artefacts"]
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
    def on_train_epoch_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)
        if self.lr_scheduler is not None and self.trainer.optimizers:
            rate = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log("train/lr", rate, on_step=False, on_epoch=True)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Seed at the epoch's first batch, not in on_train_epoch_start: creating the DataLoader iterator
        # draws from the global RNG, and Lightning creates it before on_train_epoch_start in the first
        # epoch of a fit (a resumed one too) but after it in later epochs, so a seed set there would be
        # one draw further along in an uninterrupted run than in a resumed one.
        if batch_idx == 0:
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
            torch.manual_seed(seed * 1_000_003 + self.current_epoch * 1_009 + self.global_rank)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
        config: dict[str, Any] = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = getattr(scheduler, "monitor", None) or self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}


def map_rows(
    own: torch.Tensor, source: torch.Tensor, old_names: Sequence[str], new_names: Sequence[str]
) -> torch.Tensor:
    """``own`` with each row whose name exists in ``old_names`` replaced by the pretrained row."""
    weight = own.clone()
    new_index = {name: i for i, name in enumerate(new_names)}
    pairs = [(i, new_index[n]) for i, n in enumerate(old_names) if n in new_index]
    if pairs:
        old_rows, new_rows = zip(*pairs, strict=True)
        weight[list(new_rows)] = source[list(old_rows)]
    return weight
