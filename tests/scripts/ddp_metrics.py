"""Validate and test one tiny classifier with 2 DDP processes on CPU; each rank writes its metrics and rows.

    python tests/scripts/ddp_metrics.py --dataset DIR --weights FILE --out DIR [--modes map streaming]

Launched by ``tests/test_ddp.py`` in a subprocess (Lightning's ``ddp`` strategy re-runs this command line for
rank 1). For each mode, one after the other in the same two processes, the model with the weights in
``FILE`` (a state dict) is validated and tested, and each rank writes ``OUT/<mode>/rank<r>.json``: the
validation and test metrics (synced across the ranks) and the row indices of every batch it evaluated,
real rows (counted) and repeated rows (there only to keep the ranks in step) apart. :func:`build` makes
the same datamodule and model for the test's one-process reference run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from tiny_model import tiny_classifier

from seqtasks.data import TextClassificationDataModule
from seqtasks.tasks import SequenceClassifier

BATCH_SIZE = 10


def build(dataset: str, streaming: bool) -> tuple[TextClassificationDataModule, SequenceClassifier]:
    """The datamodule (validation and test splits of the dataset, no carve) and an untrained model."""
    pl.seed_everything(7, verbose=False)
    data = TextClassificationDataModule(
        dataset,
        labels=["neg", "pos"],
        streaming=streaming,
        batch_size=BATCH_SIZE,
        min_freq=1,
        max_length=32,
        pool_batches=2,
    )
    model = tiny_classifier(data)
    return data, model


def trainer(devices: int, root: Path, callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        callbacks=callbacks or [],
    )


class RecordRows(pl.Callback):
    """The row indices of each validation and test batch this rank evaluated: real and repeated."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[int]]] = {
            stage: {"real": [], "repeated": []} for stage in ("val", "test")
        }

    def _record(self, stage: str, batch: dict[str, Any]) -> None:
        indices = batch["indices"].tolist()
        real = batch["real"].tolist() if "real" in batch else [True] * len(indices)
        for index, flag in zip(indices, real, strict=True):
            self.rows[stage]["real" if flag else "repeated"].append(index)

    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, *args: Any) -> None:
        self._record("val", batch)

    def on_test_batch_start(self, trainer: Any, pl_module: Any, batch: Any, *args: Any) -> None:
        self._record("test", batch)


def evaluate(devices: int, dataset: str, weights: str, streaming: bool, root: Path) -> dict[str, Any]:
    """Validate and test the model with ``weights``: the metrics, and which rows this rank evaluated."""
    data, model = build(dataset, streaming)
    model.load_state_dict(torch.load(weights, weights_only=True))
    rows = RecordRows()
    run = trainer(devices, root, [rows])
    (validated,) = run.validate(model, datamodule=data, verbose=False)
    (tested,) = run.test(model, datamodule=data, verbose=False)
    metrics = {k: float(v) for k, v in {**validated, **tested}.items() if k.startswith(("val/", "test/"))}
    return {"rank": run.global_rank, "world_size": run.world_size, "metrics": metrics, "rows": rows.rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--modes", nargs="+", choices=["map", "streaming"], default=["map", "streaming"])
    args = parser.parse_args()
    for mode in args.modes:
        out = args.out / mode
        record = evaluate(2, args.dataset, args.weights, mode == "streaming", out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"rank{record['rank']}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
