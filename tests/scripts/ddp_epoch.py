"""Train a tiny classifier with 2 DDP processes on CPU and record which examples each rank trained on.

    python tests/scripts/ddp_epoch.py --dataset DIR --out DIR [--modes map streaming] [--epochs 2]

Launched by ``tests/test_ddp.py`` in a subprocess: Lightning's ``ddp`` strategy starts the other rank by
re-running this command line, which inside pytest would re-run pytest. For each mode, one fit after the
other in the same two processes, each rank writes ``OUT/<mode>/rank<r>.json``: per epoch, the ``indices``
(row numbers in the split file) of every training batch and every validation batch it processed.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from tiny_model import tiny_classifier

from seqtasks.data import TextClassificationDataModule


class RecordIndices(pl.Callback):
    """Keep the row indices of each batch this rank processes, by stage and epoch; write them at the end."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: dict[str, dict[int, list[list[int]]]] = {
            "train": defaultdict(list),
            "val": defaultdict(list),
        }

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
            "seen": {stage: {str(e): b for e, b in epochs.items()} for stage, epochs in self.seen.items()},
        }
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(payload))


def train(
    dataset: str, out: Path, streaming: bool, epochs: int, batch_size: int, validation_fraction: float
) -> None:
    pl.seed_everything(7)
    data = TextClassificationDataModule(
        dataset,
        labels=["neg", "pos"],
        streaming=streaming,
        batch_size=batch_size,
        validation_fraction=validation_fraction,
        test_split=None,
        min_freq=1,
        max_length=32,
        pool_batches=2,  # several pools per rank, so pooling and shuffling are exercised
        shuffle_buffer=16,
    )
    model = tiny_classifier(data)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=epochs,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(out),
        callbacks=[RecordIndices(out)],
    )
    trainer.fit(model, datamodule=data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["map", "streaming"],
        default=["map", "streaming"],
        help="one run per mode, one after the other in the same two processes; results under OUT/<mode>",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--validation-fraction", type=float, default=0.125)
    args = parser.parse_args()
    for mode in args.modes:
        train(
            args.dataset,
            args.out / mode,
            streaming=mode == "streaming",
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_fraction=args.validation_fraction,
        )


if __name__ == "__main__":
    main()
