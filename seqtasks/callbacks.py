"""Callbacks that make a run's artefacts easy to find."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only


class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is the latest state after every validation.

    Since Lightning 2.5 ``save_last`` writes ``last.ckpt`` only in a step where a top-k checkpoint was
    saved too, so once the monitored metric stops improving ``last.ckpt`` stays at the best epoch and
    ``fit --ckpt_path last.ckpt`` silently resumes from there, repeating epochs. This subclass writes it
    after every validation, as the name promises; everything else is ``ModelCheckpoint``'s.
    """

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def _save_latest(self, trainer: pl.Trainer) -> None:
        # skipped in sanity checks, outside fit, and when this very step was saved already (with last.ckpt)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


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
