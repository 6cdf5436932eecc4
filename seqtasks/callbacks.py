"""Callbacks that make a run's artefacts easy to find and keep a run from going wrong silently.

``FiniteLoss`` stops (or skips) a batch whose training loss is NaN or infinite; ``AtomicCheckpointIO`` writes
every checkpoint through a temporary file beside it, so a kill never leaves a half-written ``last.ckpt``.
``RandomState`` and ``RunIdentity`` put in the checkpoint what a resumed run needs to continue the same run:
every rank's random number generators, and the logger's run id (read back by ``seqtasks fit --ckpt_path``).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn


class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is the latest state after every validation.

    Since Lightning 2.5 ``save_last`` writes ``last.ckpt`` only in a step where a top-k checkpoint was
    saved too, so once the monitored metric stops improving ``last.ckpt`` stays at the best epoch and
    ``fit --ckpt_path last.ckpt`` silently resumes from there, repeating epochs. This subclass writes it
    after every validation, as the name promises; everything else is ``ModelCheckpoint``'s.

    Args:
        save_last_every_n_steps: also write ``last.ckpt`` every this many training steps, in the middle of
            an epoch (None: only after validations and at the end). A kill then loses at most that many
            steps; with ``RandomState`` and a dataloader that keeps its position, the resumed run continues
            where the checkpoint was taken.
        *args, **kwargs: ``ModelCheckpoint``'s.
    """

    def __init__(self, *args: Any, save_last_every_n_steps: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if save_last_every_n_steps is not None and save_last_every_n_steps < 1:
            raise ValueError(
                "BestAndLastCheckpoint: save_last_every_n_steps must be at least 1 (or None), "
                f"not {save_last_every_n_steps}"
            )
        if save_last_every_n_steps is not None and not self.save_last:
            raise ValueError("BestAndLastCheckpoint: save_last_every_n_steps needs save_last: true")
        self.save_last_every_n_steps = save_last_every_n_steps

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        every = self.save_last_every_n_steps
        if every and trainer.global_step % every == 0:
            self._save_latest(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a run that ends between validations (max_steps, max_time) keeps its final state as last.ckpt
        super().on_train_end(trainer, pl_module)
        self._save_latest(trainer)

    def _save_latest(self, trainer: pl.Trainer) -> None:
        # skipped in sanity checks, outside fit, and when this very step was saved already (with last.ckpt)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def _rng_states() -> dict[str, Any]:
    """This process's generators as plain data (``torch.load(weights_only=True)`` reads it back)."""
    import numpy as np

    version, keys, gauss = random.getstate()
    name, np_keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "keys": list(keys), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_states(state: dict[str, Any]) -> None:
    import numpy as np

    python = state["python"]
    random.setstate((python["version"], tuple(python["keys"]), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RandomState(pl.Callback):
    """Keep every rank's random generators (python ``random``, numpy, torch, CUDA) in the checkpoint.

    Dropout, word dropout and sampling draw from them, so without them a resumed run starts from the
    weights of the checkpoint but draws other masks than the uninterrupted run would have: its losses
    drift apart from the first step. Each rank's state is stored (gathered onto the checkpoint that rank 0
    writes) and given back to the same rank. They are set again where the uninterrupted run went on from
    the checkpoint: at once for one taken at an epoch's end (before the next epoch's dataloader iterator
    draws its seed), at the next training batch for one taken in the middle of an epoch, unless the
    training dataloader keeps its own position and random state (then it restores them). ``SeqTask`` also
    reseeds torch at each epoch's first batch; this callback covers python's and numpy's generators, other
    LightningModules and mid-epoch checkpoints.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        mine = _rng_states()
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            ranks: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(ranks, mine)  # every rank saves; rank 0 writes the file
        else:
            ranks = [mine]
        # all batches of the epoch fetched: the checkpoint is at the epoch's end (after its validation)
        epoch_end = bool(trainer.fit_loop.epoch_loop._num_ready_batches_reached())
        checkpoint.setdefault("callbacks", {})[self.state_key] = {"ranks": ranks, "epoch_end": epoch_end}

    def state_dict(self) -> dict[str, Any]:
        return {}  # written in on_save_checkpoint, which sees the trainer (and the other ranks)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._world = (trainer.global_rank, trainer.world_size)  # Lightning calls load_state_dict next

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict if state_dict.get("ranks") else None
        world, self._world = getattr(self, "_world", None), None
        if self._pending is not None and self._pending["epoch_end"] and world is not None:
            # now: the resumed fit builds its first dataloader iterator (which draws a seed) before any
            # training hook, as the uninterrupted run did right after this checkpoint
            self._restore(*world)

    def _restore(self, rank: int, world_size: int) -> None:
        pending, self._pending = self._pending, None
        ranks = pending["ranks"]
        if len(ranks) != world_size:
            rank_zero_warn(
                f"RandomState: the checkpoint holds the random state of {len(ranks)} process(es), this run "
                f"has {world_size}; each rank takes rank (its rank mod {len(ranks)})'s state"
            )
        _set_rng_states(ranks[rank % len(ranks)])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None and self._pending["epoch_end"]:  # restored without on_load_checkpoint
            self._restore(trainer.global_rank, trainer.world_size)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is None:
            return
        loader = trainer.train_dataloader
        if hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict"):
            # a dataloader that keeps its position (seqtasks.data.batching.StatefulLoader) restores the
            # generators itself, where its batches resume: setting them here again would undo its draws
            self._pending = None
            return
        self._restore(trainer.global_rank, trainer.world_size)


RUN_KEY = "seqtasks_run"
"""Top-level checkpoint key of ``RunIdentity``: the logger's class, run id, save_dir and project."""


class RunIdentity(pl.Callback):
    """Write the run's identity (the first logger's class, version/run id, save_dir) into each checkpoint.

    ``seqtasks fit --ckpt_path CKPT`` reads it back before the logger is built (``SeqtasksCLI``) and gives
    the logger that id: a W&B run is resumed (``id`` + ``resume="allow"``), a CSV/TensorBoard run keeps its
    ``version``, and the checkpoints directory (derived from save_dir/name/version) stays the same, so
    ``ModelCheckpoint`` reloads its best score and best path instead of starting "best" afresh.
    """

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if not trainer.loggers:
            return
        logger = trainer.loggers[0]
        version = logger.version
        if version is None:
            return
        checkpoint[RUN_KEY] = {
            "logger": f"{type(logger).__module__}.{type(logger).__qualname__}",
            "version": version if isinstance(version, (int, str)) else str(version),
            "save_dir": None if logger.save_dir is None else str(logger.save_dir),
            "name": None if logger.name is None else str(logger.name),
        }


class CheckpointReport(pl.Callback):
    """At the end of fit, print where the best and last checkpoints are and record them in W&B's summary."""

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        paths: dict[str, str] = {}
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                if callback.best_model_path:
                    paths["checkpoint/best"] = callback.best_model_path
                    if callback.best_model_score is not None:
                        paths["checkpoint/best_score"] = f"{float(callback.best_model_score):.4f}"
                if callback.last_model_path:
                    paths["checkpoint/last"] = callback.last_model_path
        for key, value in paths.items():
            print(f"{key}: {value}")
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.experiment.summary.update(paths)


class EpochSummary(pl.Callback):
    """One plain line per epoch (metrics and wall time), readable in a log file of a background run."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import time

        self._start = time.perf_counter()

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import time

        elapsed = time.perf_counter() - getattr(self, "_start", time.perf_counter())
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if not k.endswith("_step") and getattr(v, "numel", lambda: 1)() == 1
        }
        shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
        print(f"[epoch {trainer.current_epoch}] {elapsed:.0f}s  {shown}", flush=True)

    @rank_zero_only
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        print("[test] " + "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())), flush=True)


def flushes_denormals() -> bool:
    """Whether CPU arithmetic in this process flushes denormal floats to zero now (a denormal reads 0)."""
    return bool((torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0)


class FlushDenormal(pl.Callback):
    """Flush denormal floats to zero on the CPU while the fit runs (``torch.set_flush_denormal``).

    Adam's first moment of a parameter row that gets no gradient decays by ``beta1`` every step, into the
    denormal range (below 1.2e-38) after a few hundred steps and on to zero about 150 steps later. An
    embedding's rows are absent from most batches, so many of them sit in that range at any time, and x86
    arithmetic on denormals is slow: an AdamW step over the NER recipe's 50k-word embedding took 90 ms
    instead of 9 (``benchmarks/RESULTS.md``), and its epochs grew from 48 s to 90 s over a run. Values that
    small change no update measurably. The previous setting comes back when the fit ends.

    Args:
        enabled: flush (True) or leave the process's setting alone (False).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._previous: bool | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.enabled and self._previous is None:
            self._previous = flushes_denormals()
            torch.set_flush_denormal(True)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous is not None:
            torch.set_flush_denormal(self._previous)
            self._previous = None


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (raised by ``FiniteLoss``; the run exits non-zero)."""


class FiniteLoss(pl.Callback):
    """Check the training loss of every batch: a NaN or infinite loss stops the run, or skips that batch.

    The check runs before the backward pass, so with ``"stop"`` the bad update never reaches the weights
    and no "best" checkpoint is tested afterwards. Under DDP all ranks decide together (one tiny all-reduce
    per step), so they stop or skip in step.

    Args:
        policy: ``"stop"``: raise ``NonFiniteLossError`` naming the epoch, global step and batch index.
            ``"skip"``: discard that batch's gradients so the optimizer does not update on it (with gradient
            accumulation, the whole accumulated step), warn, and log the count per epoch as
            ``train/skipped_batches``.
        max_consecutive_skips: with ``"skip"``, stop anyway after this many non-finite batches in a row: the
            weights themselves are then likely not finite, and skipping forever would train nothing.
    """

    def __init__(self, policy: Literal["stop", "skip"] = "stop", max_consecutive_skips: int = 20) -> None:
        if policy not in ("stop", "skip"):
            raise ValueError(f"FiniteLoss: policy must be 'stop' or 'skip', not {policy!r}")
        if max_consecutive_skips < 1:
            raise ValueError(
                f"FiniteLoss: max_consecutive_skips must be at least 1, not {max_consecutive_skips}"
            )
        self.policy = policy
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped_total = 0
        self._epoch_skipped = 0
        self._consecutive = 0
        self._batch_idx = 0
        self._discard_step = False

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_skipped = 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_idx = batch_idx

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        local_bad = not bool(torch.isfinite(loss.detach()).all())
        if not trainer.strategy.reduce_boolean_decision(local_bad, all=False):
            self._consecutive = 0
            return
        where = (
            f"epoch {trainer.current_epoch}, global step {trainer.global_step}, batch {self._batch_idx}"
            + (f" (on at least one of {trainer.world_size} processes)" if trainer.world_size > 1 else "")
        )
        value = float(loss.detach().float().sum()) if local_bad else "not finite on another process"
        if self.policy == "stop":
            raise NonFiniteLossError(
                f"the training loss is {value} at {where}; the run stops before this update reaches the "
                "weights. Lower the learning rate or clip gradients, check the data and the initial weights, "
                "or skip such batches with FiniteLoss(policy='skip')"
            )
        self._consecutive += 1
        if self._consecutive > self.max_consecutive_skips:
            raise NonFiniteLossError(
                f"the training loss is {value} at {where}, for {self._consecutive} batches in a row "
                f"(FiniteLoss max_consecutive_skips={self.max_consecutive_skips}); the weights are likely "
                "not finite any more, so the run stops"
            )
        self._discard_step = True
        self.skipped_total += 1
        self._epoch_skipped += 1
        rank_zero_warn(
            f"skipped the update of batch {self._batch_idx}: training loss {value} at {where} "
            f"({self.skipped_total} skipped in this run)"
        )

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._discard_step:  # optimizers skip parameters without a gradient: no update, no state change
            for group in optimizer.param_groups:
                for parameter in group["params"]:
                    parameter.grad = None
            self._discard_step = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.policy == "skip":
            # every rank holds the same count (the decision is shared); max keeps Lightning quiet under DDP
            count = float(self._epoch_skipped)
            pl_module.log("train/skipped_batches", count, on_epoch=True, sync_dist=True, reduce_fx="max")
            if self._epoch_skipped:
                rank_zero_warn(
                    f"epoch {trainer.current_epoch}: skipped {self._epoch_skipped} batch(es) whose training "
                    "loss was not finite (no update was made for them)"
                )

    def state_dict(self) -> dict[str, Any]:
        return {"skipped_total": self.skipped_total}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped_total = int(state_dict.get("skipped_total", 0))


def atomic_torch_save(checkpoint: Any, path: str | os.PathLike) -> None:
    """``torch.save`` into a temporary file beside ``path``, flushed and fsynced, then renamed onto it.

    The rename stays within the checkpoint's own directory, so it is atomic: ``path`` is always either the
    previous complete file or the new complete one, whatever ``TMPDIR`` is and whenever the process is
    killed. A kill leaves at most a ``.<name>.<host>.<pid>.<random>.tmp`` file, removed by the next save
    to the same name once that process is gone.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace(".", "_")
    _remove_stale_temporaries(target, host)
    temporary = target.with_name(f".{target.name}.{host}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(target.parent)


def _remove_stale_temporaries(target: Path, host: str) -> None:
    """Temporary files of earlier saves to ``target`` from this host whose process no longer runs."""
    for leftover in target.parent.glob(f".{target.name}.{host}.*.tmp"):
        try:
            pid = int(leftover.name[len(f".{target.name}.{host}.") :].split(".")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                leftover.unlink()
        except (ValueError, PermissionError):
            continue


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` whose local saves are atomic within the checkpoint's directory.

    Lightning 2.6 writes a local checkpoint through fsspec's transaction: a temporary file made by
    ``tempfile.mkstemp()`` in ``TMPDIR``, then ``shutil.move`` onto the target. With ``TMPDIR`` on another
    filesystem (a tmpfs, a node-local disk) the move is a copy into the target, and a kill during it leaves
    a truncated ``last.ckpt`` (the previous good one already gone) and an orphan in ``TMPDIR``. Here the
    temporary file is written beside the target and renamed onto it (``atomic_torch_save``). Remote paths
    (``s3://``...) keep Lightning's own way. ``seqtasks fit`` installs it unless a recipe names another
    ``CheckpointIO`` plugin.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, str(path).removeprefix("file://"))
