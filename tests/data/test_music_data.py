"""Music datamodules: piano rolls from parquet frames; Bach chorales from music21, cached, with a report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import requires_real_data, write_split
from fixtures.music import make_tiny_rolls

from seqtasks.data.errors import DataError
from seqtasks.data.music import BachChoralesDataModule, PianoRollDataModule, convert_bach_chorales
from seqtasks.music.events import EventCodec, build_vocabulary


@pytest.fixture
def tiny_rolls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_tiny_rolls(tmp_path, monkeypatch)


def test_piano_roll_batches(tiny_rolls: Path) -> None:
    dm = PianoRollDataModule("jsb_chorales", batch_size=4)
    dm.setup("fit")
    assert dm.prepared["train_pieces"] == 24
    batch = next(iter(dm.train_dataloader()))
    rolls, lengths = batch["rolls"], batch["lengths"]
    assert rolls.shape[0] == 4 and rolls.shape[2] == 88
    mask = torch.arange(rolls.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
    assert rolls[~mask].sum() == 0  # padding is silent
    assert set(rolls.unique().tolist()) <= {0.0, 1.0}


def test_piano_roll_bad_pitch_names_file_and_row(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    write_split(root, "train", {"frames": [[[60]], [[60, 120]]]})
    write_split(root, "validation", {"frames": [[[60]]]})
    with pytest.raises(DataError, match=r"train\.parquet, row 1, field 'frames'.*pitch 120"):
        PianoRollDataModule(str(root)).prepare_data()


def test_unconvertible_pieces_are_reported_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    import seqtasks.data.music as music

    listing = [(1, "bach/bwv66.6"), (2, "bach/bwv66.6"), (3, "bach/no-such-chorale")]
    monkeypatch.setattr(music, "bach_chorale_names", lambda: listing)
    pieces, skipped = convert_bach_chorales(EventCodec(build_vocabulary()))
    assert [p["name"] for p in pieces] == ["bach/bwv66.6"]
    reasons = {s["piece"]: s["reason"] for s in skipped}
    assert reasons["riemenschneider 002 (bach/bwv66.6)"] == "same file as riemenschneider 001"
    assert "could not parse" in reasons["riemenschneider 003 (bach/no-such-chorale)"]


def test_bach_chorales_prepare_is_cached_and_split_by_piece(isolated_env: Path) -> None:
    dm = BachChoralesDataModule(max_pieces=5, validation_fraction=0.2, test_fraction=0.2, max_length=64)
    dm.prepare_data()
    path = dm.prepared_path()
    assert path.exists() and str(path).startswith(str(isolated_env))
    splits = dm.prepared["splits"]
    assert sorted(splits["train"] + splits["validation"] + splits["test"]) == list(range(5))
    assert len(splits["validation"]) == len(splits["test"]) == 1
    assert dm.vocab_size == len(build_vocabulary()) and dm.pad_index == 0
    again = BachChoralesDataModule(max_pieces=5, validation_fraction=0.2, test_fraction=0.2, max_length=64)
    assert again.prepared["splits"] == splits  # read from the cache file, same split
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape == batch["targets"].shape and batch["inputs"].size(1) <= 63
    # the target is the input shifted by one
    row = int(batch["lengths"].argmax())
    assert torch.equal(batch["inputs"][row, 1:], batch["targets"][row, :-1])


# pieces and frames (train, validation, test) of the standard splits, as Boulanger-Lewandowski et al. 2012
# published them; the pitch range is the training split's
STANDARD_SPLITS = {
    "jsb_chorales": ((229, 76, 77), (13_807, 4_602, 4_725), [43, 96]),
    "nottingham": ((694, 173, 170), (176_561, 45_513, 44_463), [31, 93]),
    "musedata": ((524, 135, 124), (245_202, 82_755, 64_339), [21, 96]),
    "piano_midi": ((87, 12, 25), (75_911, 8_540, 19_036), [21, 108]),
}


@pytest.mark.realdata
@requires_real_data
@pytest.mark.parametrize("dataset", sorted(STANDARD_SPLITS))
def test_standard_split_counts(dataset: str) -> None:
    dm = PianoRollDataModule(dataset)
    dm.setup("fit")
    dm.setup("test")
    splits = ("train", "validation", "test")
    pieces, frames, pitch_range = STANDARD_SPLITS[dataset]
    assert tuple(len(dm.examples(s)) for s in splits) == pieces
    assert tuple(sum(dm.examples(s)["length"]) for s in splits) == frames
    assert dm.prepared["pitch_range"] == pitch_range
