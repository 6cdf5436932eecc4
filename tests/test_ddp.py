"""Two-process DDP training on CPU sees each training example exactly once per epoch, map-style and streamed.

Lightning's ``ddp`` strategy starts the second rank by re-running the command line, so DDP never starts
inside pytest: the test launches ``tests/scripts/ddp_epoch.py`` in a subprocess (one launch trains both
modes, one after the other, to pay the two processes' start-up once) and asserts on the row indices each
rank wrote down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "ddp_epoch.py"
MODES = ("map", "streaming")
EPOCHS = 2
TRAIN_ROWS = 96  # tiny_reviews' training split
HELD_OUT = 12  # validation_fraction 0.125 of it: 84 training rows, 42 per rank, so no sampler padding
TIMEOUT_S = 300


def launch(command: list[str]) -> None:
    """Run a two-rank launcher; a hang (ranks waiting on each other) fails at the timeout, killing both."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    # a session of its own, so that a timeout also kills the rank Lightning spawned
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"no result in {TIMEOUT_S}s (ranks waiting on each other?):\n{output[-4000:]}")
    assert process.returncode == 0, output[-4000:]


def run_ddp(dataset: Path, out: Path) -> dict[str, list[dict]]:
    command = [sys.executable, str(SCRIPT), "--dataset", str(dataset), "--out", str(out), "--modes", *MODES]
    command += ["--epochs", str(EPOCHS), "--validation-fraction", str(HELD_OUT / TRAIN_ROWS)]
    launch(command)
    records = {}
    for mode in MODES:
        records[mode] = [json.loads((out / mode / f"rank{rank}.json").read_text()) for rank in range(2)]
        assert [(r["rank"], r["world_size"]) for r in records[mode]] == [(0, 2), (1, 2)]
    return records


def flat(batches: list[list[int]]) -> list[int]:
    return [index for batch in batches for index in batch]


def check_sharding(records: list[dict], mode: str) -> None:
    train = [r["seen"]["train"] for r in records]
    val = [r["seen"]["val"] for r in records]
    assert [sorted(t) for t in train] == [[str(e) for e in range(EPOCHS)]] * 2, mode
    per_rank = (TRAIN_ROWS - HELD_OUT) // 2
    validation_rows: set[int] = set()
    for epoch in map(str, range(EPOCHS)):
        where = f"{mode}, epoch {epoch}"
        assert len(train[0][epoch]) == len(train[1][epoch]), f"{where}: ranks ran different batch counts"
        assert len(val[0][epoch]) == len(val[1][epoch]), f"{where}: different validation batch counts"
        rank0, rank1 = flat(train[0][epoch]), flat(train[1][epoch])
        assert len(rank0) == len(set(rank0)) == per_rank, f"{where}: rank 0 saw {len(rank0)} rows"
        assert len(rank1) == len(set(rank1)) == per_rank, f"{where}: rank 1 saw {len(rank1)} rows"
        assert not set(rank0) & set(rank1), f"{where}: both ranks trained on the same rows"
        epoch_val = set(flat(val[0][epoch])) | set(flat(val[1][epoch]))
        assert len(epoch_val) == HELD_OUT, where
        assert not epoch_val & (set(rank0) | set(rank1)), f"{where}: validation rows were trained on"
        assert set(rank0) | set(rank1) | epoch_val == set(range(TRAIN_ROWS)), where
        validation_rows |= epoch_val
    assert len(validation_rows) == HELD_OUT, f"{mode}: the held-out rows changed between epochs"
    for rank in range(2):
        share = [set(flat(train[rank][str(epoch)])) for epoch in range(EPOCHS)]
        assert share[0] != share[1], f"{mode}: rank {rank}'s share ignored the epoch (no set_epoch?)"


@pytest.mark.slow
def test_each_training_example_once_per_epoch_across_ranks(tiny_reviews: Path, tmp_path: Path) -> None:
    """Per epoch the two ranks train on disjoint halves that together cover every training row once.

    Protects the sharding: map-style through Lightning's DistributedSampler inside the bucketing batch
    sampler, streaming through ``split_dataset_by_node`` after a shuffle seeded alike on both ranks. A stream
    that is not split would be trained on twice; a shuffle seeded per rank would lose and repeat rows.
    Also: both ranks run the same number of batches (unequal counts hang DDP; so does a collective that
    only rank 0 enters, which a hang here also catches), the held-out validation rows never reach training,
    and a rank's share changes between epochs (``set_epoch`` reaches the sampler or the stream's shuffle).
    """
    records = run_ddp(tiny_reviews, tmp_path / "out")
    for mode in MODES:
        check_sharding(records[mode], mode)


@pytest.mark.slow
def test_translation_test_set_is_scored_once_across_ranks(tmp_path: Path) -> None:
    """Two ranks each translate a share of a 25-sentence test set (the sampler pads one share with a
    repeated row); rank 0 scores the gathered translations: every sentence exactly once, the same
    translations and BLEU as the model decoding the whole set in one process."""
    from fixtures.translation import make_tiny_parallel

    dataset = make_tiny_parallel(tmp_path / "mt", sizes=(96, 16, 25))
    out = tmp_path / "out"
    script = SCRIPT.parent / "ddp_translate.py"
    launch([sys.executable, str(script), "--dataset", str(dataset), "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert report["world_size"] == 2 and report["test_rows"] == 25
    gathered, alone = report["gathered"], report["one_process"]
    assert gathered["sentences"] == 25
    assert gathered["hypotheses"] == alone["hypotheses"]
    assert gathered["bleu"] == pytest.approx(alone["bleu"])
    assert gathered["chrf"] == pytest.approx(alone["chrf"])
