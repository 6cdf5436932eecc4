"""Two-process DDP training on CPU sees each training example exactly once per epoch, map-style and streamed,
and validation and test count each row of a split exactly once, whatever padding keeps the ranks in step.

Lightning's ``ddp`` strategy starts the second rank by re-running the command line, so DDP never starts
inside pytest: the tests launch ``tests/scripts/ddp_*.py`` in a subprocess (one launch runs both modes,
one after the other, to pay the two processes' start-up once) and assert on what each rank wrote down.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_review, write_split
from fixtures.processes import run_bounded

SCRIPT = Path(__file__).parent / "scripts" / "ddp_epoch.py"
MODES = ("map", "streaming")
EPOCHS = 2
TRAIN_ROWS = 96  # tiny_reviews' training split
HELD_OUT = 12  # validation_fraction 0.125 of it: 84 training rows, 42 per rank, so no sampler padding
TIMEOUT_S = 300


def launch(command: list[str]) -> None:
    """Run a two-rank launcher; a hang (ranks waiting on each other) fails at the timeout, killing both."""
    run_bounded(command, TIMEOUT_S)


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


METRICS_SCRIPT = SCRIPT.parent / "ddp_metrics.py"
UNEVEN_SHARDS = {"validation": (20, 7), "test": (100, 37, 4)}
"""Rows per file. Two validation shards go whole to one rank each (20 vs 7 rows: the short rank repeats a
batch); three test shards are interleaved row by row (71 vs 70 rows, batch size 10: 8 batches vs 7 and a
repeated one). Map-style, both splits are odd-sized: the distributed sampler repeats one row."""


def _uneven_dataset(root: Path) -> Path:
    rng = random.Random(5)
    write_split(root, "train", _reviews(rng, 96))
    for split, sizes in UNEVEN_SHARDS.items():
        for shard, size in enumerate(sizes):
            write_split(root, f"{split}-{shard:05d}-of-{len(sizes):05d}", _reviews(rng, size))
    return root


def _reviews(rng: random.Random, size: int) -> dict[str, list]:
    labels = [rng.randrange(2) for _ in range(size)]
    return {"text": [make_review(rng, bool(label)) for label in labels], "label": labels}


def _metrics_script():
    """The script as a module, its folder on the import path as when it runs (for ``tiny_model``)."""
    spec = importlib.util.spec_from_file_location("ddp_metrics", METRICS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(METRICS_SCRIPT.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(METRICS_SCRIPT.parent))
    return module


@pytest.mark.slow
def test_validation_and_test_metrics_count_each_row_once_across_ranks(tmp_path: Path) -> None:
    """Two ranks over uneven streamed shards and odd-sized map-style splits: the rows repeated to keep the
    ranks in step are flagged (``batch["real"]``) and left out, so every row of a split counts exactly once
    and the validation and test metrics equal the one-process figures (counts exactly, losses to float
    rounding). Before the fix the repeated rows were counted: test accuracy over 151 rows, not 141."""
    script = _metrics_script()
    dataset = _uneven_dataset(tmp_path / "uneven")
    _, model = script.build(str(dataset), streaming=False)
    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)
    alone = {
        mode: script.evaluate(1, str(dataset), str(weights), mode == "streaming", tmp_path / "alone" / mode)
        for mode in MODES
    }
    out = tmp_path / "out"
    command = [sys.executable, str(METRICS_SCRIPT), "--dataset", str(dataset), "--weights", str(weights)]
    launch([*command, "--out", str(out), "--modes", *MODES])
    sizes = {"val": sum(UNEVEN_SHARDS["validation"]), "test": sum(UNEVEN_SHARDS["test"])}
    for mode in MODES:
        records = [json.loads((out / mode / f"rank{rank}.json").read_text()) for rank in range(2)]
        assert [(r["rank"], r["world_size"]) for r in records] == [(0, 2), (1, 2)]
        for stage, size in sizes.items():
            where = f"{mode} {stage}"
            shares = [r["rows"][stage]["real"] for r in records]
            assert all(len(share) == len(set(share)) for share in shares), f"{where}: a row counted twice"
            if mode == "map":  # row numbers of the split (a stream's count each rank's rows from 0)
                assert sorted(shares[0] + shares[1]) == list(range(size)), f"{where}: rows lost or repeated"
            assert len(shares[0]) + len(shares[1]) == size, f"{where}: rows lost or repeated"
            assert any(r["rows"][stage]["repeated"] for r in records), f"{where}: nothing was padded"
        reference = alone[mode]["metrics"]
        assert set(reference) >= {"val/acc", "val/f1_macro", "val/loss", "test/acc", "test/f1_macro"}
        for record in records:
            metrics = record["metrics"]
            assert metrics.keys() == reference.keys(), mode
            for name, value in reference.items():
                if name.endswith("/loss"):  # a mean of float32 sums taken in another order
                    assert metrics[name] == pytest.approx(value, rel=1e-5), f"{mode} {name}"
                else:  # ratios of the same integer counts
                    assert metrics[name] == value, f"{mode} {name}"
