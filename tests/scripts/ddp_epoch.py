"""Train a tiny classifier with 2 DDP processes on CPU and record which examples each rank trained on.

    python tests/scripts/ddp_epoch.py --dataset DIR --out DIR [--streaming] [--epochs 2]

Launched by ``tests/test_ddp.py`` in a subprocess: Lightning's ``ddp`` strategy starts the other rank by
re-running this command line, which inside pytest would re-run pytest. Each rank writes
``rank<r>.json`` into ``--out``: per epoch, the ``indices`` of every training batch and every validation
batch it processed.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from seqtasks.data import TextClassificationDataModule
from seqtasks.encoders import GRUEncoder
from seqtasks.tasks import SequenceClassifier


class RecordIndices(pl.Callback):
    """Keep the row indices of each batch this rank processes, by stage and epoch; write them at the end."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: dict[str, dict[int, list[list[int]]]] = {"train": defaultdict(list), "val": defaultdict(list)}

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.seen["train"][trainer.current_epoch].append(batch["indices"].tolist())

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not trainer.sanity_checking:
            self.seen["val"][trainer.current_epoch].append(batch["indices"].tolist())

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        payload = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "seen": {stage: {str(e): b for e, b in by_epoch.items()} for stage, by_epoch in self.seen.items()},
        }
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(payload))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--streaming", action="store_true")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--validation-fraction", type=float, default=0.125)
    args = parser.parse_args()

    pl.seed_everything(7)
    data = TextClassificationDataModule(
        args.dataset,
        labels=["neg", "pos"],
        streaming=args.streaming,
        batch_size=args.batch_size,
        validation_fraction=args.validation_fraction,
        test_split=None,
        min_freq=1,
        max_length=32,
        pool_batches=2,  # several pools per rank, so pooling and shuffling are exercised
        shuffle_buffer=16,
    )
    model = SequenceClassifier(
        vocab_size=data.vocab_size,
        labels=data.labels,
        pad_index=data.pad_index,
        encoder=lambda size: GRUEncoder(size, hidden_size=8, bidirectional=False),
        embedding_dim=8,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=args.epochs,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(args.out),
        callbacks=[RecordIndices(args.out)],
    )
    trainer.fit(model, datamodule=data)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
