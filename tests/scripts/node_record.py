"""A callback for multi-process test runs of ``seqtasks fit``: what each rank trained on and wrote.

    PYTHONPATH=tests/scripts seqtasks fit --config RECIPE ... --trainer.callbacks+=node_record.RecordRanks

Each rank writes ``$SEQTASKS_RECORD_DIR/rank<global rank>.json`` at the end of fit: the row ids
(``batch["indices"]``) of every training batch per epoch, and every checkpoint file this rank itself saved
(its ``CheckpointIO.save_checkpoint`` calls), so a test can assert that one rank alone wrote each file.
``$SEQTASKS_RECORD_SLEEP`` (seconds, default 0) slows each training batch down, so that a test can kill a rank
in the middle of an epoch. Used by ``tests/test_multinode.py`` and ``tests/test_dead_rank.py``.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


class RecordRanks(pl.Callback):
    def __init__(self) -> None:
        self.out = Path(os.environ["SEQTASKS_RECORD_DIR"])
        self.train: dict[int, list[list[int]]] = defaultdict(list)
        self.saved: list[str] = []
        self.sleep = float(os.environ.get("SEQTASKS_RECORD_SLEEP", "0"))

    def setup(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        if getattr(io, "_recorded", False):
            return
        save = io.save_checkpoint

        def recording_save(checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
            self.saved.append(str(path))
            save(checkpoint, path, storage_options)

        io.save_checkpoint = recording_save
        io._recorded = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.train[trainer.current_epoch].append(batch["indices"].tolist())
        self._dump(trainer)  # kept up to date: a rank may be killed before fit ends
        if self.sleep:
            time.sleep(self.sleep)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._dump(trainer)

    def _dump(self, trainer: pl.Trainer) -> None:
        payload = {
            "rank": trainer.global_rank,
            "node_rank": trainer.node_rank,
            "world_size": trainer.world_size,
            "environment": type(trainer.strategy.cluster_environment).__name__,
            "pid": os.getpid(),
            "train": {str(epoch): batches for epoch, batches in self.train.items()},
            "saved": self.saved,
        }
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"rank{trainer.global_rank}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(payload))
        os.replace(temporary, path)
