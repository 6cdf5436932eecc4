"""DataLoader workers read, encode and collate streamed data; the shards are split over ranks x workers
with nothing read twice and nothing dropped, and every rank still gives the same number of batches.

The DDP case runs ``tests/scripts/ddp_workers.py`` in a subprocess (2 gloo ranks x 2 workers, bounded by a
timeout that kills the whole process group): a hang fails, it does not block the suite.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import make_review, write_split
from fixtures.processes import run_bounded

from seqtasks.data import TextClassificationDataModule
from seqtasks.data.datamodule import describe_work_split

SCRIPT = Path(__file__).parents[1] / "scripts" / "ddp_workers.py"
SHARDS, PER_SHARD = 5, 19  # an odd number of shards of an odd size: 95 rows
EPOCHS = 2
TIMEOUT_S = 300


def _write(root: Path, shards: int, per_shard: int) -> Path:
    """Training rows in ``shards`` parquet files; each row starts with a word of its own (``idN``)."""
    rng = random.Random(2)
    for shard in range(shards):
        labels = [i % 2 for i in range(per_shard)]
        texts = [
            f"id{shard * per_shard + i} {make_review(rng, bool(label))}" for i, label in enumerate(labels)
        ]
        write_split(root, f"train-{shard:05d}-of-{shards:05d}", {"text": texts, "label": labels})
    return root


def _launch(dataset: Path, out: Path, *extra: str) -> tuple[str, list[dict[str, Any]]]:
    command = [sys.executable, str(SCRIPT), "--dataset", str(dataset), "--out", str(out), *extra]
    output = run_bounded(command, TIMEOUT_S, waiting_on="ranks or workers waiting")
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    return output, ranks


def _firsts(ranks: list[dict[str, Any]], epoch: int) -> list[int]:
    return [t for rank in ranks for b in rank["seen"].get(str(epoch), []) for t in b["first"]]


@pytest.mark.slow
def test_two_ranks_two_workers_see_every_example_once_per_epoch(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "data", SHARDS, PER_SHARD)
    output, ranks = _launch(dataset, tmp_path / "out", "--workers", "2", "--epochs", str(EPOCHS))
    assert "5 shards over 2 rank(s) x 2 reader(s)" in output  # the log says how the work was split
    rows = SHARDS * PER_SHARD
    for epoch in range(EPOCHS):
        batches = [r["seen"][str(epoch)] for r in ranks]
        assert len(batches[0]) == len(batches[1]), f"epoch {epoch}: the ranks ran different batch counts"
        firsts = _firsts(ranks, epoch)
        assert len(firsts) == rows, f"epoch {epoch}: {len(firsts)} real rows trained, not {rows}"
        assert len(set(firsts)) == rows, f"epoch {epoch}: some rows were trained twice, others not at all"
    assert ranks[0]["seen"]["0"] != ranks[0]["seen"]["1"]  # a new order each epoch


@pytest.mark.slow
def test_two_ranks_two_workers_resume_mid_epoch_from_their_own_positions(tmp_path: Path) -> None:
    """Stopped mid-epoch 1 with a checkpoint, resumed: each rank continues its own share, so the epoch's
    rows over both runs and both ranks are every row once (whole shards per rank: 4 shards)."""
    dataset = _write(tmp_path / "data", 4, PER_SHARD)
    per_epoch = 4 * PER_SHARD // 2 // 8 + 1 + 1  # 38 rows per rank in batches of 8 over 2 workers: 6
    stop = per_epoch + 3
    _, first = _launch(dataset, tmp_path / "first", "--workers", "2", "--stop-at", str(stop))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    _, second = _launch(dataset, tmp_path / "second", "--workers", "2", "--resume", str(last))
    assert [len(r["seen"]["1"]) for r in first] == [3, 3]
    firsts = _firsts(first, 1) + _firsts(second, 1)
    assert len(firsts) == len(set(firsts)) == 4 * PER_SHARD


def _module(dataset: Path, workers: int, streaming: bool) -> TextClassificationDataModule:
    module = TextClassificationDataModule(
        str(dataset),
        labels=["neg", "pos"],
        streaming=streaming,
        batch_size=8,
        validation_fraction=0.0,
        test_split=None,
        min_freq=1,
        lowercase=False,
        pool_batches=2,
        shuffle_buffer=16,
        num_workers=workers,
    )
    module.setup("fit")
    return module


def _orders(module: TextClassificationDataModule) -> list[list[list[int]]]:
    loader = module.train_dataloader()
    orders = []
    for epoch in range(2):
        module.set_epoch(epoch)
        if hasattr(loader.batch_sampler, "sampler"):
            loader.batch_sampler.sampler.set_epoch(epoch)  # what Lightning does each epoch (map-style)
        orders.append([b["tokens"][:, 0].tolist() for b in loader])
    return orders


def test_map_style_workers_keep_the_training_order(tmp_path: Path) -> None:
    """Map-style, workers only collate: the batches and their order are those of ``num_workers=0``."""
    dataset = _write(tmp_path / "data", 2, 20)
    assert _orders(_module(dataset, 2, streaming=False)) == _orders(_module(dataset, 0, streaming=False))


def test_streamed_workers_read_each_row_once(tmp_path: Path) -> None:
    """One process, 2 workers over 3 shards: each epoch every row once, padded to the loader's length."""
    dataset = _write(tmp_path / "data", 3, 13)
    module = _module(dataset, 2, streaming=True)
    for order in _orders(module):
        real = [t for batch in order for t in batch]
        assert len(order) == len(module.train_dataloader())
        assert len(set(real)) == 39


@pytest.mark.parametrize(("shards", "world", "workers"), [(3, 2, 2), (1, 1, 2)])
def test_too_few_shards_for_the_readers_warn(
    tmp_path: Path, shards: int, world: int, workers: int, recwarn: Any
) -> None:
    module = _module(_write(tmp_path / "data", shards, 4), workers, streaming=True)
    module._log_work_split(shards, 0, world)
    assert any("some workers read nothing" in str(w.message) for w in recwarn.list)


def test_the_work_split_names_every_rank_and_worker() -> None:
    assert describe_work_split(4, 2, 2).endswith(
        "rank 0: shards [0, 2] (worker 0: [0], worker 1: [2]); "
        "rank 1: shards [1, 3] (worker 0: [1], worker 1: [3])"
    )
    assert "rank 1: 1 row in 2 of each chunk of shards [0, 1, 2, 3, 4]" in describe_work_split(5, 2, 2)
