"""Train a tiny classifier with 2 DDP processes x 2 DataLoader workers over a streamed, sharded dataset, and
record the rows each rank trained on.

    python tests/scripts/ddp_workers.py --dataset DIR --out DIR [--workers 2] [--epochs 2]
        [--stop-at STEP] [--resume CKPT]

Launched by ``tests/data/test_workers.py`` in a subprocess (Lightning's ``ddp`` strategy starts the other
rank by re-running this command line, which inside pytest would re-run pytest). Each rank writes
``OUT/rank<r>.json``: per epoch, for every training batch, the first token of each real row (the test's
rows start with a token of their own) and the batch's row count with padding. ``--stop-at STEP`` ends
the fit after that step (mid-epoch) with a checkpoint ``OUT/checkpoints/last.ckpt`` written there;
``--resume CKPT`` continues from one.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from tiny_model import tiny_classifier

from seqtasks.data import TextClassificationDataModule
from seqtasks.data.batching import REAL


class RecordRows(pl.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: dict[int, list[dict[str, Any]]] = defaultdict(list)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        real = batch[REAL].tolist()
        first = [int(t) for t, r in zip(batch["tokens"][:, 0], real, strict=True) if r]
        self.seen[trainer.current_epoch].append({"first": first, "size": len(real)})

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        payload = {"rank": trainer.global_rank, "world_size": trainer.world_size, "seen": self.seen}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(payload))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--stop-at", type=int, default=-1)
    parser.add_argument("--resume")
    args = parser.parse_args()
    pl.seed_everything(7)
    data = TextClassificationDataModule(
        args.dataset,
        labels=["neg", "pos"],
        streaming=True,
        batch_size=8,
        validation_fraction=0.0,
        test_split=None,
        min_freq=1,
        max_length=32,
        lowercase=False,
        pool_batches=2,
        shuffle_buffer=16,
        num_workers=args.workers,
    )
    model = tiny_classifier(data)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=args.epochs,
        max_steps=args.stop_at,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(args.out),
        callbacks=[
            RecordRows(args.out),
            ModelCheckpoint(
                dirpath=str(args.out / "checkpoints"),
                every_n_train_steps=max(args.stop_at, 0),
                save_last=True,
                save_top_k=0,
            ),
        ],
    )
    trainer.fit(model, datamodule=data, ckpt_path=args.resume)


if __name__ == "__main__":
    main()
