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
  A resume whose recipe changes a model setting (``--model.init_args.network.init_args.dropout 0.9``) warns,
  naming each setting with the checkpoint's value and this run's.
* **Fine-tune** (``init_from``) copies weights only, before training, with a fresh optimizer; tensors whose
  shape changed (a new label set, a new vocabulary) are mapped by :meth:`SeqTask.adapt_state` or left
  freshly initialised. A checkpoint of another task, or one of which no tensor fits, is refused
  (:class:`~seqtasks.checkpoints.CheckpointError`) unless ``init_from_strict`` is false or the task
  names that one in ``init_from_tasks`` (a classifier starts from a language model so).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from seqtasks.checkpoints import (
    CHECKPOINT_KEY,
    FORMAT,
    CheckpointError,
    read_checkpoint,
    task_class,
    upgrade_checkpoint,
)
from seqtasks.optim import default_optimizer


class SeqTask(pl.LightningModule):
    """Base LightningModule of seqtasks tasks.

    Args:
        optimizer: the optimizer, built with the parameters (``class_path`` / ``init_args`` in a recipe);
            None is AdamW with lr 1e-3 and no weight decay.
        lr_scheduler: a schedule built with the optimizer and stepped once per epoch (e.g.
            ``seqtasks.optim.StepDecay``); a ``ReduceLROnPlateau`` follows ``monitor``. None keeps the rate.
        init_from: a checkpoint to fine-tune from (weights only; optimizer and schedule start fresh).
        init_from_strict: refuse an ``init_from`` checkpoint of another task, or one of which no tensor
            fits this model; false loads whatever fits (possibly nothing) with only a log line.
    """

    monitor = "val/loss"
    """The metric a ``ReduceLROnPlateau`` schedule follows, unless the schedule names its own."""

    init_from_tasks: tuple[str, ...] = ()
    """Other tasks (class names) whose checkpoints can initialise this one (:meth:`adapt_state` maps them),
    e.g. a word-level ``LanguageModel`` for a classifier."""

    def __init__(
        self,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: str | None = None,
        init_from_strict: bool = True,
    ) -> None:
        super().__init__()
        self.optimizer = optimizer or default_optimizer
        self.lr_scheduler = lr_scheduler
        self.init_from = init_from
        self.init_from_strict = init_from_strict
        self.artefacts: dict[str, Any] = {}
        self.network_args: list[Any] = []
        self._epoch_metrics_logged = False  # see logs_epoch_metrics

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets ``_current_fx_name`` around every hook it calls, 44 times a training step. It is
        # bookkeeping (a str or None), never a parameter, buffer or module, so it skips nn.Module's checks
        # for those: 0.6 µs a call instead of 4.6 (~0.18 ms a step, measured on the 2-core CPU).
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

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
            defaults = {
                name: parameter.default
                for name, parameter in inspect.signature(type(self).__init__).parameters.items()
                if parameter.default is not inspect.Parameter.empty
            }
            warn_changed_settings(checkpoint.get("hyper_parameters") or {}, dict(self.hparams), defaults)
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

    def load_pretrained(self, path: str, strict: bool | None = None) -> None:
        """Copy the tensors of checkpoint ``path`` that fit (see :meth:`adapt_state`).

        With ``strict`` (None: ``init_from_strict``), a checkpoint of another task or one of which no
        tensor fits is refused with a :class:`~seqtasks.checkpoints.CheckpointError`: training from
        scratch while the recipe says fine-tune is never silent.
        """
        strict = self.init_from_strict if strict is None else strict
        checkpoint = read_checkpoint(path)
        try:
            source = task_class(checkpoint)  # only seqtasks' own tasks
        except CheckpointError as error:
            raise CheckpointError(f"init_from {path}: {error}") from None
        upgrade_checkpoint(checkpoint)
        override = "set init_from_strict: false on the model to load whatever fits anyway"
        related = isinstance(self, source) or issubclass(source, type(self))
        if strict and not (related or source.__name__ in self.init_from_tasks):
            raise CheckpointError(
                f"init_from {path}: a {source.__name__} checkpoint cannot initialise a "
                f"{type(self).__name__}; give a {type(self).__name__} checkpoint ({override})"
            )
        artefacts = checkpoint[CHECKPOINT_KEY]["artefacts"]
        adapted = self.adapt_state(checkpoint["state_dict"], artefacts)
        if strict and not adapted:
            raise CheckpointError(
                f"init_from {path}: none of its {len(checkpoint['state_dict'])} tensors fits this "
                f"{type(self).__name__} (different names or shapes), so nothing would be fine-tuned "
                f"({override})"
            )
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
        self._epoch_metrics_logged = False  # see logs_epoch_metrics
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
            torch.manual_seed(epoch_seed(self.current_epoch, self.global_rank))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Lightning's transfer, except that a dict batch's values holding only text (the tagger's raw tokens)
        are passed on as they are: Lightning's default walks every string of them (~490 in a CoNLL-2003
        batch: 3-4 ms a step on the 2-core CPU, 5 % of the tagger's training step) to find no tensor."""
        move = super().transfer_batch_to_device
        if not isinstance(batch, dict):
            return move(batch, device, dataloader_idx)
        return {k: v if _text(v) else move(v, device, dataloader_idx) for k, v in batch.items()}

    def logs_this_step(self, batch_idx: int) -> bool:
        """Whether a training step logs its step values (``train/loss_step``, ``train/nll_step``): on the
        steps whose values the logger writes (every ``trainer.log_every_n_steps``-th, as Lightning counts
        them), and on every step outside a fit.

        A ``self.log`` call costs ~1 ms on a CPU (measured: 0.7-1.2 ms; it moves Lightning's result metric
        to the value's device and goes through ``torch.compiler.disable``), 3-7 % of the music recipe's
        training step, and a step value the logger does not write only refreshes the progress bar.
        """
        trainer = self._trainer
        if trainer is None:
            return True
        every = max(1, int(trainer.log_every_n_steps))
        return (trainer.global_step + 1) % every == 0

    def logs_epoch_metrics(self) -> bool:
        """Whether a training step logs the epoch's metric objects (``train/loss``, ``train/nll``): once an
        epoch, at the first step this fit runs in it (a resumed epoch too), and on every step outside a fit.

        Lightning keeps a logged metric object for the rest of the epoch and computes it once at the
        epoch's end over every ``update`` since its last reset, so the epoch mean covers every batch; logging
        it again each step would only repeat that ~1 ms call."""
        if self._trainer is None:
            return True
        if self._epoch_metrics_logged:
            return False
        self._epoch_metrics_logged = True
        return True

    def parameter_groups(self) -> list[tuple[list[torch.nn.Parameter], float]]:
        """The optimizer's parameter groups as ``(parameters, rate multiplier)``; default: one group, ×1.
        A task with discriminative rates (a lower layer learns slower) returns one group per layer."""
        return [(list(self.parameters()), 1.0)]

    def configure_optimizers(self) -> Any:
        groups = self.parameter_groups()
        if len(groups) == 1 and groups[0][1] == 1.0:
            optimizer = self.optimizer(groups[0][0])
        else:
            optimizer = self.optimizer([{"params": params} for params, _ in groups])
            for group, (_, scale) in zip(optimizer.param_groups, groups, strict=True):
                group["lr"] = group["lr"] * scale
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
        if getattr(scheduler, "total_steps", 0) is None and self._trainer is not None:
            steps = self.trainer.estimated_stepping_batches
            if steps == float("inf"):
                raise ValueError(
                    f"{type(scheduler).__name__} needs the fit's length: set trainer.max_steps or "
                    "trainer.max_epochs, or the schedule's total_steps"
                )
            scheduler.total_steps = int(steps)
        config: dict[str, Any] = {"scheduler": scheduler, "interval": getattr(scheduler, "interval", "epoch")}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = getattr(scheduler, "monitor", None) or self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}


def epoch_seed(epoch: int, rank: int = 0, seed: int | None = None) -> int:
    """The global RNG's seed at an epoch's first training batch (:meth:`SeqTask.on_train_batch_start`):
    from the run's seed (``seed``, else ``PL_GLOBAL_SEED``, which ``seed_everything`` sets), the epoch and
    the rank."""
    if seed is None:
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
    return seed * 1_000_003 + epoch * 1_009 + rank


def _text(value: Any) -> bool:
    """Whether ``value`` is a string or a (nested) list or tuple of strings only."""
    if isinstance(value, str):
        return True
    return isinstance(value, list | tuple) and all(isinstance(item, str) or _text(item) for item in value)


UNCOMPARED_SETTINGS = ("_class_path", "_instantiator", "init_from", "init_from_strict")
"""Settings a resume may change without a warning (a fine-tune source is applied before the first epoch)."""


def changed_settings(
    saved: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any] | None = None
) -> list[tuple[str, Any, Any]]:
    """``(setting, saved value, current value)`` for each setting that differs, nested settings named by
    their dotted path (``network.init_args.dropout``); a missing setting is ``"<unset>"``. A task argument
    the checkpoint predates is no change while it keeps its default (``defaults``)."""
    flat_saved, flat_current = _flatten(saved), _flatten(current)
    # a setting already built (load_from_checkpoint instantiates the specs: a callable, not plain data)
    # cannot be compared with its spec; it comes from the checkpoint's spec anyway
    built = [key for key, value in flat_current.items() if not _plain(value)]
    changes = []
    for key in sorted(set(flat_saved) | set(flat_current)):
        if key.split(".")[0] in UNCOMPARED_SETTINGS or any(_within(key, b) for b in built):
            continue
        old, new = flat_saved.get(key, "<unset>"), flat_current.get(key, "<unset>")
        if key not in flat_saved and key in (defaults or {}) and _same(new, (defaults or {})[key]):
            continue
        if not _same(old, new):
            changes.append((key, old, new))
    return changes


def warn_changed_settings(
    saved: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any] | None = None
) -> None:
    """Warn, naming each model setting this run sets differently from the checkpoint it loads."""
    changes = changed_settings(saved, current, defaults)
    if not changes:
        return
    lines = [f"  {key}: {old!r} in the checkpoint, {new!r} now" for key, old, new in changes]
    rank_zero_warn(
        "the checkpoint was trained with other model settings than this run's:\n"
        + "\n".join(lines)
        + "\nthe weights come from the checkpoint and this run's settings apply from here on, except the "
        "optimizer's and schedule's: their restored state (learning rate included) overrides the recipe",
        category=UserWarning,
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def _within(key: str, setting: str) -> bool:
    return key == setting or key.startswith(f"{setting}.")


def _plain(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    return value is None or isinstance(value, str | int | float | bool | dict | torch.Tensor)


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
    try:
        return bool(old == new)
    except (RuntimeError, TypeError, ValueError):  # e.g. tensors of other shapes: not the same setting
        return False


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
