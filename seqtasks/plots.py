"""Figures for runs: sent to W&B when it is the logger, else saved as PNG beside the run's logs."""

from __future__ import annotations

import os
from typing import Any


def log_figure(module: Any, key: str, figure: Any) -> None:
    """Log a matplotlib figure from a LightningModule under ``key`` (rank 0 only), then close it."""
    import matplotlib.pyplot as plt

    try:
        trainer = module.trainer
        if trainer.global_rank != 0:
            return
        logged = False
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                logger.experiment.log({key: wandb.Image(figure), "trainer/global_step": trainer.global_step})
                logged = True
        # not trainer.log_dir: under DDP it is a collective (a broadcast from rank 0), and only rank 0 is
        # here, so it would wait forever for the other ranks
        log_dir = _local_log_dir(trainer)
        if not logged and log_dir:
            folder = os.path.join(log_dir, "figures")
            os.makedirs(folder, exist_ok=True)
            name = f"{key.replace('/', '_')}_epoch{trainer.current_epoch:03d}.png"
            figure.savefig(os.path.join(folder, name), dpi=100)
    finally:
        plt.close(figure)


def _local_log_dir(trainer: Any) -> str | None:
    """``trainer.log_dir`` as rank 0 sees it, without its broadcast."""
    if not trainer.loggers:
        return trainer.default_root_dir
    logger = trainer.loggers[0]
    return getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
