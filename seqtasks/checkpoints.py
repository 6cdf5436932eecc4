"""Reading seqtasks checkpoints, upgrading those of earlier layouts, and loading a task from one.

A seqtasks checkpoint is a Lightning checkpoint with a ``"seqtasks"`` entry: the task's class path, the
layout ``format`` and the artefacts (vocabularies, tokenizers, label names as plain data). Everything in
it loads with ``torch.load(weights_only=True)``.

Format 1 (before the networks moved out of the LightningModules) kept the layers on the task itself
(``embedding.weight``) and the optimizer as flat settings (``lr``, ``step_decay_start``, ...). Format 2
keeps them on ``task.network`` (``network.embedding.weight``) and the optimizer and schedule as
``class_path`` / ``init_args``. :func:`upgrade_checkpoint` turns a format-1 checkpoint into format 2 in
memory, through the task class's ``upgrade_legacy``; inference, ``fit --ckpt_path`` (resume) and
``init_from`` (fine-tune) all read through it, so every checkpoint a user has keeps working.
"""

from __future__ import annotations

import functools
import importlib
import io
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seqtasks.errors import SeqtasksError

CHECKPOINT_KEY = "seqtasks"
FORMAT = 2

RENAMED_TASKS = {
    "seqtasks.tasks.music.PianoRollModel": "seqtasks.tasks.music.PianoRollComposer",
    "seqtasks.tasks.music.EventLanguageModel": "seqtasks.tasks.music.EventComposer",
}
"""Task classes that were renamed: the name a checkpoint carries → the class that loads it."""


TASK_CLASSES = frozenset(
    {
        "seqtasks.tasks.SequenceClassifier",
        "seqtasks.tasks.classification.SequenceClassifier",
        "seqtasks.tasks.TokenTagger",
        "seqtasks.tasks.tagging.TokenTagger",
        "seqtasks.tasks.Seq2SeqTranslator",
        "seqtasks.tasks.translation.Seq2SeqTranslator",
        "seqtasks.tasks.PianoRollComposer",
        "seqtasks.tasks.music.PianoRollComposer",
        "seqtasks.tasks.EventComposer",
        "seqtasks.tasks.music.EventComposer",
        "seqtasks.tasks.LanguageModel",
        "seqtasks.tasks.language_model.LanguageModel",
        *RENAMED_TASKS,
    }
)
"""The task class paths a checkpoint may name: seqtasks' own tasks (and their former names). A checkpoint
chooses nothing else to import (a crafted ``seqtasks.task`` of ``this.Zen`` is refused before any import)."""

TRUSTED_PACKAGES = ("seqtasks", "torch", "lightning")
"""The packages whose classes a checkpoint's ``class_path`` settings (network, encoder, optimizer, ...) may
name; ``SEQTASKS_TRUSTED_MODULES`` (comma-separated package names) adds the packages of your own encoders."""


class CheckpointError(SeqtasksError):
    """A file that is not a seqtasks checkpoint, or not one this task can use (a ``ValueError`` too)."""


def read_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path`` as plain data (``weights_only``), or an error naming the file."""
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except Exception as error:  # a truncated file, a pickle with code in it, not a torch file at all
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise CheckpointError(f"{path}: not a seqtasks checkpoint (no {CHECKPOINT_KEY!r} entry)")
    return checkpoint


def task_path(checkpoint: dict[str, Any]) -> str:
    """The class path of the task that loads ``checkpoint`` (after renames)."""
    name = checkpoint[CHECKPOINT_KEY]["task"]
    return RENAMED_TASKS.get(name, name)


def check_task_name(checkpoint: dict[str, Any]) -> str:
    """The task class path ``checkpoint`` names, if one of :data:`TASK_CLASSES`; else a CheckpointError
    (nothing is imported)."""
    entry = checkpoint.get(CHECKPOINT_KEY)
    name = entry.get("task") if isinstance(entry, dict) else None
    if not isinstance(name, str) or name not in TASK_CLASSES:
        raise CheckpointError(
            f"the checkpoint names the task class {name!r}, which is not a seqtasks task; refusing to "
            f"import it (seqtasks loads only its own tasks: {', '.join(sorted(_short_task_names()))})"
        )
    return name


def task_class(checkpoint: dict[str, Any]) -> type:
    """The task class of ``checkpoint``, one of :data:`TASK_CLASSES`: the checkpoint imports nothing else."""
    check_task_name(checkpoint)
    module_name, _, class_name = task_path(checkpoint).rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def _short_task_names() -> set[str]:
    return {name.rpartition(".")[2] for name in TASK_CLASSES if name not in RENAMED_TASKS}


def check_class_paths(checkpoint: dict[str, Any]) -> None:
    """Refuse a checkpoint whose settings name a class outside :data:`TRUSTED_PACKAGES` (before any import:
    loading instantiates every ``class_path`` of ``hyper_parameters``)."""
    extra = os.environ.get("SEQTASKS_TRUSTED_MODULES", "")
    trusted = (*TRUSTED_PACKAGES, *(name.strip() for name in extra.split(",") if name.strip()))

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("class_path", "_class_path") and not _trusted(item, trusted):
                    raise CheckpointError(
                        f"the checkpoint's setting {where}{key} names {item!r}, outside the packages "
                        f"seqtasks trusts ({', '.join(trusted)}); refusing to import it (if you trust this "
                        "file, add its package to SEQTASKS_TRUSTED_MODULES)"
                    )
                walk(item, f"{where}{key}.")
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(item, f"{where}{index}.")

    walk(checkpoint.get("hyper_parameters") or {}, "")


def _trusted(class_path: Any, trusted: tuple[str, ...]) -> bool:
    return isinstance(class_path, str) and any(
        class_path == name or class_path.startswith(f"{name}.") for name in trusted
    )


def upgrade_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Bring ``checkpoint`` to the current :data:`FORMAT`, in place; returns it."""
    entry = checkpoint[CHECKPOINT_KEY]
    if entry.get("format", 1) < FORMAT:
        cls = task_class(checkpoint)
        cls.upgrade_legacy(checkpoint)
        entry["task"] = task_path(checkpoint)
        hparams = checkpoint.get("hyper_parameters", {})
        if "_class_path" in hparams:  # LightningCLI's record of the class: Lightning instantiates it
            hparams["_class_path"] = entry["task"]
        entry["format"] = FORMAT
    return checkpoint


def load_task(path: str | os.PathLike, map_location: str = "cpu") -> Any:
    """Load any seqtasks checkpoint in eval mode: no config file, no data, no network needed."""
    checkpoint = read_checkpoint(path, map_location)
    try:
        cls = task_class(checkpoint)
        check_class_paths(checkpoint)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    upgrade_checkpoint(checkpoint)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    model = cls.load_from_checkpoint(buffer, map_location=map_location, weights_only=True)
    model.checkpoint_path = str(path)
    model.eval()
    return model


@dataclass
class Trained:
    """What inference needs of a checkpoint: the network (eval mode), the artefacts, the hyperparameters.

    It stands in for the task wherever a predictor's ``from_task`` takes one (``network``, ``artefacts``,
    ``labels``), without building the LightningModule — so a command need not import Lightning.
    """

    network: nn.Module
    artefacts: dict[str, Any]
    hparams: dict[str, Any]
    task_name: str

    @property
    def labels(self) -> list[str] | None:
        labels = self.hparams.get("labels", self.artefacts.get("labels"))
        return None if labels is None else list(labels)


def load_trained(path: str | os.PathLike, map_location: str = "cpu") -> Trained:
    """The network and artefacts of a checkpoint, built from the checkpoint alone.

    A current checkpoint records the arguments its task gave the network (``network_args``): the network
    is built from its ``class_path`` / ``init_args`` with those and loaded directly, with no Lightning
    import (a command's cold start). Older checkpoints go through :func:`load_task`.
    """
    checkpoint = read_checkpoint(path, map_location)
    try:
        check_task_name(checkpoint)  # no import: this path must not import Lightning
        check_class_paths(checkpoint)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    entry = checkpoint[CHECKPOINT_KEY]
    spec = checkpoint.get("hyper_parameters", {}).get("network")
    if entry.get("format", 1) < FORMAT or "network_args" not in entry or not isinstance(spec, dict):
        task = load_task(path, map_location)
        name = f"{type(task).__module__}.{type(task).__qualname__}"
        return Trained(task.network, task.artefacts, dict(task.hparams), name)
    network = instantiate(spec, *entry["network_args"])
    prefix = "network."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    network.load_state_dict(state)
    network.to(map_location).eval()
    return Trained(network, entry["artefacts"], checkpoint["hyper_parameters"], task_path(checkpoint))


def task_kind(task: Any) -> str:
    """The task's class name, for messages: of a task, or of the task a :class:`Trained` comes from."""
    name = getattr(task, "task_name", None)
    return name.rpartition(".")[2] if isinstance(name, str) else type(task).__name__


def instantiate(spec: dict[str, Any], *args: Any) -> Any:
    """Build ``spec`` (``class_path`` / ``init_args``) with ``args`` first; a nested spec becomes a callable
    (the ``Callable[..., X]`` arguments of the networks: encoder, pooler, decoder), as LightningCLI does."""
    return _import(spec["class_path"])(
        *args, **{k: _callable(v) for k, v in spec.get("init_args", {}).items()}
    )


def _callable(value: Any) -> Any:
    if isinstance(value, dict) and "class_path" in value:
        init_args = {k: _callable(v) for k, v in (value.get("init_args") or {}).items()}
        return functools.partial(_import(value["class_path"]), **init_args)
    return value


def _import(class_path: str) -> Any:
    module_name, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


# ---- helpers for the tasks' upgrade_legacy ----------------------------------------------------------
def legacy_optimizer(hparams: dict[str, Any]) -> None:
    """Replace format 1's flat optimizer settings in ``hparams`` by ``optimizer`` / ``lr_scheduler``."""
    lr = hparams.pop("lr", 1e-3)
    weight_decay = hparams.pop("weight_decay", 0.0)
    step_decay = hparams.pop("step_decay", 0.5)
    step_decay_start = hparams.pop("step_decay_start", None)
    kind = hparams.pop("optimizer", "adam")
    momentum = hparams.pop("momentum", 0.9)
    lr_decay = hparams.pop("lr_decay", 0.05)
    lr_patience = hparams.pop("lr_patience", None)
    if kind == "sgd":
        hparams["optimizer"] = _class("torch.optim.SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
        hparams["lr_scheduler"] = _class("seqtasks.optim.InverseTimeDecay", decay=lr_decay)
        return
    hparams["optimizer"] = _class("torch.optim.AdamW", lr=lr, weight_decay=weight_decay)
    if step_decay_start is not None:
        hparams["lr_scheduler"] = _class(
            "seqtasks.optim.StepDecay", start=step_decay_start, factor=step_decay
        )
    elif lr_patience is not None:
        hparams["lr_scheduler"] = _class(
            "lightning.pytorch.cli.ReduceLROnPlateau", monitor="val/nll", factor=0.5, patience=lr_patience
        )
    else:
        hparams["lr_scheduler"] = None


def legacy_network(
    checkpoint: dict[str, Any], class_path: str, keys: list[str], *, keep: tuple[str, ...] = ()
) -> None:
    """Move the network's settings in ``hyper_parameters`` under ``network``, its tensors under ``network.``.

    ``keys`` are the settings that now belong to the network (the data sizes stay on the task, which
    passes them on); ``keep`` are settings that stay on the task as well as going to the network.
    """
    hparams = checkpoint["hyper_parameters"]
    init_args = {key: hparams.pop(key) if key not in keep else hparams[key] for key in keys if key in hparams}
    hparams["network"] = {"class_path": class_path, "init_args": init_args}
    checkpoint["state_dict"] = {f"network.{k}": v for k, v in checkpoint["state_dict"].items()}


def _class(class_path: str, **init_args: Any) -> dict[str, Any]:
    return {"class_path": class_path, "init_args": init_args}
