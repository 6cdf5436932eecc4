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
        if not logged and trainer.log_dir:
            folder = os.path.join(trainer.log_dir, "figures")
            os.makedirs(folder, exist_ok=True)
            name = f"{key.replace('/', '_')}_epoch{trainer.current_epoch:03d}.png"
            figure.savefig(os.path.join(folder, name), dpi=100)
    finally:
        plt.close(figure)
