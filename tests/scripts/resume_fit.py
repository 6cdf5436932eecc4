"""A tiny classifier fit that records every training step, checkpoints every N steps and can kill itself.

    python tests/scripts/resume_fit.py --dataset DIR --out DIR [--streaming] [--workers W]
        [--every 3] [--kill-at STEP] [--resume CKPT] [--epochs 2]

Launched by ``tests/data/test_resume_fit.py``. Each training step appends one JSON line to
``OUT/steps.jsonl`` (epoch, global step after it, loss, each real row's tokens and label), flushed at
once, so a run killed with SIGKILL has written every step it finished. ``--kill-at STEP`` sends SIGKILL to
this process at the end of that step, a step after the last checkpoint (Lightning saves ``last.ckpt`` every
``--every`` steps, after the other callbacks): the kill is decided by a count, not by timing.
``--resume CKPT`` continues with ``fit(ckpt_path=CKPT)``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from tiny_model import tiny_classifier

from seqtasks.data import TextClassificationDataModule
from seqtasks.data.batching import REAL


class RecordSteps(pl.Callback):
    """Append each finished training step to ``steps.jsonl``; SIGKILL this process after step ``kill_at``."""

    def __init__(self, out: Path, kill_at: int | None) -> None:
        self.path = out / "steps.jsonl"
        self.kill_at = kill_at

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        record = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "loss": float(loss),
            # a row's identity: its tokens and label (a stream's row indices follow its shard order); rows
            # repeated only to pad the epoch to the loader's batch count are left out
            "rows": [
                f"{row[:length].tolist()}/{label}"
                for row, length, label, real in zip(
                    batch["tokens"], batch["lengths"], batch["labels"], batch[REAL], strict=True
                )
                if real
            ],
        }
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self.kill_at is not None and trainer.global_step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--streaming", action="store_true")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--resume")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(7)
    data = TextClassificationDataModule(
        args.dataset,
        labels=["neg", "pos"],
        streaming=args.streaming,
        batch_size=8,
        validation_fraction=0.0,
        validation_split="validation",
        test_split=None,
        min_freq=1,
        max_length=32,
        pool_batches=2,
        shuffle_buffer=24,
        num_workers=args.workers,
    )
    model = tiny_classifier(data, embedding_dropout=0.3, dropout=0.3)
    checkpoints = ModelCheckpoint(
        dirpath=str(args.out / "checkpoints"), every_n_train_steps=args.every, save_last=True, save_top_k=0
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=args.epochs,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(args.out),
        callbacks=[RecordSteps(args.out, args.kill_at), checkpoints],
    )
    trainer.fit(model, datamodule=data, ckpt_path=args.resume)


if __name__ == "__main__":
    main()
