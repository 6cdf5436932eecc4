"""A fit killed with SIGKILL in the middle of an epoch and resumed with ``ckpt_path`` finishes the epoch as
if it had never stopped: the examples of that epoch are one epoch with no repeats, and every step after the
resume has the uninterrupted run's loss, bit for bit (loader position and RNG states are in the checkpoint).

Each fit runs ``tests/scripts/resume_fit.py`` in a subprocess (a kill -9 must not take pytest with it);
the script kills itself at a step count, so the test is deterministic and bounded.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_review, write_split

SCRIPT = Path(__file__).parents[1] / "scripts" / "resume_fit.py"
ROWS, SHARDS, BATCH = 96, 3, 8
EVERY, KILL_AT = 5, 17  # checkpoints at steps 5, 10, 15, …; killed in epoch 1, two steps after step 15
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def sharded_reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 training rows in 3 parquet files (3 shards when streamed), 8 validation rows."""
    rng = random.Random(1)
    root = tmp_path_factory.mktemp("sharded_reviews")
    per = ROWS // SHARDS
    for shard in range(SHARDS):
        labels = [i % 2 for i in range(per)]
        texts = [make_review(rng, bool(label)) for label in labels]
        write_split(root, f"train-{shard:05d}-of-{SHARDS:05d}", {"text": texts, "label": labels})
    write_split(
        root, "validation", {"text": [make_review(rng, i % 2 == 1) for i in range(8)], "label": [0, 1] * 4}
    )
    return root


def fit(dataset: Path, out: Path, extra: list[str], killed: bool = False) -> list[dict]:
    command = [
        sys.executable,
        str(SCRIPT),
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--every",
        str(EVERY),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command + extra, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    if killed:
        assert done.returncode == -9, done.stderr[-3000:]
    else:
        assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [["--workers", "0"], ["--streaming"], ["--streaming", "--workers", "2"]],
    ids=["map", "stream", "stream-2w"],
)
def test_killed_fit_resumes_mid_epoch_exactly(sharded_reviews: Path, tmp_path: Path, mode: list[str]) -> None:
    # two workers each cut a short last batch: the loader pads the epoch to its bound, 12 + 1 batches
    steps_per_epoch = ROWS // BATCH + (1 if "2" in mode else 0)
    whole = fit(sharded_reviews, tmp_path / "whole", mode)
    assert [s["step"] for s in whole] == list(range(1, 2 * steps_per_epoch + 1))
    killed = fit(sharded_reviews, tmp_path / "killed", [*mode, "--kill-at", str(KILL_AT)], killed=True)
    assert [s["step"] for s in killed] == list(range(1, KILL_AT + 1))
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    resumed = fit(sharded_reviews, tmp_path / "resumed", [*mode, "--resume", str(last)])

    saved = KILL_AT // EVERY * EVERY  # the step of last.ckpt
    assert [s["step"] for s in resumed] == list(range(saved + 1, 2 * steps_per_epoch + 1))
    # the interrupted epoch: the steps the checkpoint kept, then the resumed ones: each row once
    epoch = [s for s in killed if s["epoch"] == 1 and s["step"] <= saved]
    epoch += [s for s in resumed if s["epoch"] == 1]
    rows = sorted(row for s in epoch for row in s["rows"])
    every = sorted(row for s in whole if s["epoch"] == 1 for row in s["rows"])
    assert len(rows) == len(every) == ROWS
    assert rows == every, "the resumed epoch repeated or skipped rows"
    # and the same batches and the same losses as the run that was never interrupted, step by step
    after = {s["step"]: s for s in whole if s["step"] > saved}
    assert [s["rows"] for s in resumed] == [after[s["step"]]["rows"] for s in resumed]
    assert [s["loss"] for s in resumed] == [after[s["step"]]["loss"] for s in resumed]
