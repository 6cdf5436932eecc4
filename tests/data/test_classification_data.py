"""TextClassificationDataModule: the prepare step, splits, labels, loaders, and errors on bad input."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import requires_real_data, write_split

from seqtasks.data import DataError, TextClassificationDataModule
from seqtasks.data.sources import load_split

STAR_NAMES = ["one", "two", "three", "four", "five"]
MODES = pytest.mark.parametrize("streaming", [False, True], ids=["map", "streaming"])


def _module(dataset: Path | str, **kwargs: Any) -> TextClassificationDataModule:
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("pool_batches", 2)
    kwargs.setdefault("min_freq", 1)
    return TextClassificationDataModule(str(dataset), **kwargs)


def _indices(loader: Any) -> list[int]:
    return [i for batch in loader for i in batch["indices"].tolist()]


def _run_everything(dm: TextClassificationDataModule) -> None:
    """Prepare, set up and read every loader to the end, as fit + test would.

    The streamed training loader goes last: its shuffle costs ~5 s per pass (datasets waits for Arrow's
    reader threads), so a test whose error comes earlier does not pay it."""
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    for loader in (dm.test_dataloader(), dm.val_dataloader(), dm.train_dataloader()):
        for _ in loader:
            pass


# ---- the prepare step ------------------------------------------------------------------------------------
def test_prepare_writes_json_in_cache_dir_and_is_reused(
    tiny_reviews: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prepare step's result is a JSON file under SEQTASKS_CACHE_DIR, never in the data directory, and
    a second datamodule with the same settings reads it instead of preparing again."""
    data_files = sorted(p.name for p in tiny_reviews.rglob("*"))
    dm = _module(tiny_reviews)
    dm.prepare_data()
    path = dm.prepared_path()
    assert path.is_file()
    assert path.is_relative_to(os.environ["SEQTASKS_CACHE_DIR"])
    assert sorted(p.name for p in tiny_reviews.rglob("*")) == data_files
    stored = json.loads(path.read_text())
    assert stored["vocabulary"] == dm.prepared["vocabulary"]

    again = _module(tiny_reviews)

    def must_not_run() -> None:
        raise AssertionError("prepared again instead of reading the file")

    monkeypatch.setattr(again, "run_prepare", must_not_run)
    assert again.prepared_path() == path
    assert again.vocab_size == dm.vocab_size and again.labels == dm.labels


def test_prepare_file_depends_on_settings(tiny_reviews: Path) -> None:
    """A setting that changes the vocabulary gets its own file, not a stale one."""
    small = _module(tiny_reviews, max_vocab_size=5)
    assert small.prepared_path() != _module(tiny_reviews).prepared_path()
    assert small.vocab_size == 5


def test_sizes_the_model_links_to(tiny_reviews: Path) -> None:
    """vocab_size, labels and pad_index come from the prepared data, not from a recipe."""
    dm = _module(tiny_reviews, labels=["neg", "pos"])
    assert dm.labels == ["neg", "pos"]
    assert dm.pad_index == 0
    assert dm.vocab_size == len(dm.prepared["vocabulary"]) > 2
    assert dm.prepared["vocabulary"][:2] == ["<pad>", "<unk>"]
    assert _module(tiny_reviews).labels == ["0", "1"]  # an int column without names: its values


def test_held_out_rows_stay_out_of_the_vocabulary(tmp_path: Path) -> None:
    """The vocabulary is built from the training rows only: held-out validation words are unknown."""
    size = 40
    texts = [f"common word{i}" for i in range(size)]
    write_split(tmp_path / "ds", "train", {"text": texts, "label": [i % 2 for i in range(size)]})
    dm = _module(tmp_path / "ds", validation_fraction=0.25, test_split=None)
    dm.setup("fit")
    held_out = set(_indices(dm.val_dataloader()))
    assert len(held_out) == 10
    vocabulary = set(dm.prepared["vocabulary"])
    assert {f"word{i}" for i in held_out}.isdisjoint(vocabulary)
    assert {f"word{i}" for i in range(size) if i not in held_out} <= vocabulary


# ---- splits and loaders -----------------------------------------------------------------------------------
def test_held_out_validation_is_disjoint_and_the_same_in_both_modes(tiny_reviews: Path) -> None:
    """Without a validation split, ``validation_fraction`` of train is held out: disjoint from training,
    together all of train, and the same rows in map-style and streaming mode."""
    seen: dict[bool, tuple[list[int], list[int]]] = {}
    for streaming in (False, True):
        dm = _module(tiny_reviews, streaming=streaming, validation_fraction=0.25)
        dm.setup("fit")
        assert (dm.prepared["train_rows"], dm.prepared["held_out_rows"]) == (96, 24)
        seen[streaming] = (_indices(dm.train_dataloader()), _indices(dm.val_dataloader()))
    for train, validation in seen.values():
        assert len(validation) == len(set(validation)) == 24
        assert len(train) == len(set(train)) == 72
        assert sorted(train + validation) == list(range(96))
    assert sorted(seen[False][1]) == sorted(seen[True][1])


def test_held_out_fraction_of_a_multi_shard_stream_is_refused(tmp_path: Path) -> None:
    """A multi-shard stream's row indices follow its shuffled shard order, so a held-out fraction could not
    name the same rows each epoch: it must be refused with a message, not leak validation into training."""
    root = tmp_path / "sharded"
    root.mkdir()
    for shard in range(2):
        texts = [f"good film {shard} {i}" if i % 2 else f"bad film {shard} {i}" for i in range(8)]
        pq.write_table(
            pa.table({"text": texts, "label": [i % 2 for i in range(8)]}), root / f"train-{shard}.parquet"
        )
    dm = _module(root, streaming=True, validation_fraction=0.25)
    with pytest.raises(ValueError, match=r"2 shards.*validation split"):
        dm.setup("fit")


@MODES
def test_validation_split_is_used_when_present(tiny_reviews: Path, streaming: bool) -> None:
    """A dataset with a validation split keeps all training rows and validates on that split."""
    write_split(tiny_reviews, "validation", {"text": ["good film", "bad film", "fine"], "label": [1, 0, 1]})
    dm = _module(tiny_reviews, streaming=streaming, validation_fraction=0.25)
    dm.setup("fit")
    assert sorted(_indices(dm.train_dataloader())) == list(range(96))
    assert sorted(_indices(dm.val_dataloader())) == [0, 1, 2]


@MODES
def test_train_loader_yields_every_example_once_per_epoch(tiny_reviews: Path, streaming: bool) -> None:
    """Each epoch sees every training example exactly once, in a new order each epoch."""
    dm = _module(tiny_reviews, streaming=streaming, validation_fraction=0.0)
    dm.setup("fit")
    loader = dm.train_dataloader()
    orders = []
    for epoch in range(2):
        if streaming:
            dm.set_epoch(epoch)
        else:
            loader.batch_sampler.sampler.set_epoch(epoch)  # what Lightning does each epoch
        order = _indices(loader)
        assert sorted(order) == list(range(96))
        orders.append(order)
    assert orders[0] != orders[1]


@MODES
def test_test_loader_yields_every_row_once(tiny_reviews: Path, streaming: bool) -> None:
    """Evaluation drops nothing and repeats nothing."""
    dm = _module(tiny_reviews, streaming=streaming)
    dm.setup("test")
    assert sorted(_indices(dm.test_dataloader())) == list(range(32))


@MODES
def test_batches_hold_the_encoded_rows(tiny_reviews: Path, streaming: bool) -> None:
    """Each batch row is its source row encoded: right tokens, padding with pad_index, right label."""
    dm = _module(tiny_reviews, streaming=streaming, max_length=6)
    dm.setup("test")
    table = pq.read_table(tiny_reviews / "test.parquet").to_pydict()
    for batch in dm.test_dataloader():
        for row, index in enumerate(batch["indices"].tolist()):
            length = int(batch["lengths"][row])
            expected = dm.text_codec(table["text"][index])
            assert 0 < length <= 6
            assert batch["tokens"][row, :length].tolist() == expected
            assert set(batch["tokens"][row, length:].tolist()) <= {dm.pad_index}
            assert int(batch["labels"][row]) == table["label"][index]


@MODES
def test_label_values_map_stars_to_named_classes(tiny_stars: Path, streaming: bool) -> None:
    """Stars 1..5 with ``label_values`` become classes 0..4 carrying the given names."""
    dm = _module(
        tiny_stars, streaming=streaming, label_column="stars", labels=STAR_NAMES, label_values=[1, 2, 3, 4, 5]
    )
    dm.setup("test")
    assert dm.labels == STAR_NAMES
    stars = pq.read_table(tiny_stars / "test.parquet").column("stars").to_pylist()
    found = {}
    for batch in dm.test_dataloader():
        found.update(zip(batch["indices"].tolist(), batch["labels"].tolist(), strict=True))
    assert found == {i: s - 1 for i, s in enumerate(stars)}


def test_label_values_alone_fix_the_classes(tiny_stars: Path) -> None:
    """``label_values`` without names still decides the classes (named by value), in the given order."""
    dm = _module(tiny_stars, label_column="stars", label_values=[5, 4, 3, 2, 1])
    assert dm.labels == ["5", "4", "3", "2", "1"]
    assert dm.prepared["label_values"] == [5, 4, 3, 2, 1]


# ---- bad input stops with a message naming file, row and field ---------------------------------------------
@MODES
def test_missing_column_names_file_and_column(tiny_reviews: Path, streaming: bool) -> None:
    """A wrong ``text_column`` names the parquet file and the missing column."""
    dm = _module(tiny_reviews, streaming=streaming, text_column="review")
    file = re.escape(str(tiny_reviews / "train.parquet"))
    with pytest.raises(DataError, match=f"{file}: missing column.*'review'"):
        dm.prepare_data()


@MODES
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty text"),
        ("   \n", "empty text"),
        ("<br />", "empty text"),
        (None, "expected text, got NoneType"),
    ],
    ids=["empty", "blank", "only-html", "null"],
)
def test_empty_text_names_file_row_and_field(
    tmp_path: Path, streaming: bool, text: str | None, problem: str
) -> None:
    """An empty or null training text is an error naming file, row and field, not a silently empty example."""
    texts = [f"good film {i}" for i in range(12)]
    texts[5] = text
    write_split(tmp_path / "ds", "train", {"text": texts, "label": [i % 2 for i in range(12)]})
    file = re.escape(str(tmp_path / "ds" / "train.parquet"))
    with pytest.raises(DataError, match=f"{file}, row 5, field 'text': {problem}"):
        _run_everything(
            _module(tmp_path / "ds", streaming=streaming, validation_fraction=0.0, test_split=None)
        )


@MODES
def test_empty_text_in_test_split_is_caught(tiny_reviews: Path, streaming: bool) -> None:
    """Rows outside the prepare step (the test split) are checked too, with their own file and row."""
    write_split(tiny_reviews, "test", {"text": ["good", "fine", ""], "label": [1, 1, 0]})
    file = re.escape(str(tiny_reviews / "test.parquet"))
    with pytest.raises(DataError, match=f"{file}, row 2, field 'text': empty text"):
        _run_everything(_module(tiny_reviews, streaming=streaming))


@MODES
def test_missing_label_names_row_and_field(tmp_path: Path, streaming: bool) -> None:
    """A null label is not guessed."""
    write_split(tmp_path / "ds", "train", {"text": ["a", "b", "c", "d"], "label": [0, 1, None, 1]})
    with pytest.raises(DataError, match="row 2, field 'label': missing label"):
        _run_everything(
            _module(tmp_path / "ds", streaming=streaming, validation_fraction=0.0, test_split=None)
        )


@MODES
def test_label_outside_label_set_in_training_names_row_and_field(tmp_path: Path, streaming: bool) -> None:
    """With two named classes, a training label 2 stops the prepare step and names file, row and field."""
    labels = [i % 2 for i in range(12)]
    labels[7] = 2
    write_split(tmp_path / "ds", "train", {"text": [f"text {i}" for i in range(12)], "label": labels})
    dm = _module(tmp_path / "ds", streaming=streaming, labels=["neg", "pos"], validation_fraction=0.0)
    file = re.escape(str(tmp_path / "ds" / "train.parquet"))
    with pytest.raises(DataError, match=f"{file}, row 7, field 'label': label 2 is not among"):
        dm.prepare_data()


def test_label_values_refuse_an_unlisted_value(tiny_stars: Path) -> None:
    """``label_values`` is the label set: a star value outside it is an error, not a new class."""
    dm = _module(tiny_stars, label_column="stars", label_values=[1, 2, 3], validation_fraction=0.0)
    with pytest.raises(
        DataError, match=r"row 3, field 'stars': label 4 is not among label_values \[1, 2, 3\]"
    ):
        dm.prepare_data()


@MODES
def test_label_outside_label_set_in_test_split_names_row(tiny_reviews: Path, streaming: bool) -> None:
    """A test row with an unknown label names the test file and its row."""
    write_split(tiny_reviews, "test", {"text": ["good", "meh", "bad"], "label": [1, 7, 0]})
    file = re.escape(str(tiny_reviews / "test.parquet"))
    with pytest.raises(DataError, match=f"{file}, row 1, field 'label': label 7 is not in the label set"):
        _run_everything(_module(tiny_reviews, streaming=streaming, labels=["neg", "pos"]))


@MODES
@pytest.mark.parametrize("split", ["train", "test"])
def test_corrupt_parquet_names_the_file(tiny_reviews: Path, streaming: bool, split: str) -> None:
    """An unreadable split file stops with a DataError naming that file."""
    bad = tiny_reviews / f"{split}.parquet"
    bad.write_bytes(b"PAR1 but not really parquet\n" * 20)
    with pytest.raises(DataError, match=re.escape(str(bad))):
        _run_everything(_module(tiny_reviews, streaming=streaming))


@MODES
def test_damaged_row_data_names_the_file(tmp_path: Path, streaming: bool) -> None:
    """A parquet file whose footer is intact but whose data pages are damaged also names the file."""
    path = tmp_path / "ds" / "train.parquet"
    path.parent.mkdir()
    rows = {"text": [f"row number {i}" for i in range(3000)], "label": [0] * 3000}
    pq.write_table(pa.table(rows), path, compression="none")
    damaged = bytearray(path.read_bytes())
    damaged[100 : len(damaged) // 2] = b"\xff" * (len(damaged) // 2 - 100)
    path.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=re.escape(str(path))):
        _module(tmp_path / "ds", streaming=streaming, test_split=None).prepare_data()


# ---- the real datasets ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imdb(tmp_path_factory: pytest.TempPathFactory) -> TextClassificationDataModule:
    """IMDB prepared once for this module (tokenising 22,500 reviews takes a while on two cores)."""
    with pytest.MonkeyPatch.context() as patch:  # module scope runs before the per-test isolated_env
        patch.setenv("SEQTASKS_CACHE_DIR", str(tmp_path_factory.mktemp("imdb_cache")))
        dm = TextClassificationDataModule("stanfordnlp/imdb", labels=["neg", "pos"], validation_fraction=0.1)
        dm.prepare_data()
    return dm


@pytest.mark.realdata
@requires_real_data
def test_real_imdb_prepares_locally(imdb: TextClassificationDataModule) -> None:
    """The IMDB recipe's dataset resolves to the local copy; 2,500 of 25,000 train rows are held out."""
    assert imdb.resolved.kind == "local"
    assert imdb.resolved.location == os.path.join(
        os.path.abspath(os.environ["SEQTASKS_DATA_DIR"]), "reviews", "imdb"
    )
    assert imdb.prepared["train_rows"] - imdb.prepared["held_out_rows"] == 22_500
    assert imdb.prepared["held_out_rows"] == 2_500
    assert imdb.labels == ["neg", "pos"] and imdb.prepared["label_values"] == [0, 1]
    assert imdb.vocab_size == 30_000
    assert imdb.carves_validation
    assert len(load_split(imdb.resolved, "test")) == 25_000


@pytest.mark.realdata
@requires_real_data
def test_real_womens_clothing_has_five_star_classes() -> None:
    """Star ratings 1..5 of the clothing reviews become five classes, all present in training."""
    dm = TextClassificationDataModule(
        "reviews/womens_clothing", text_column="text", label_column="stars", label_values=[1, 2, 3, 4, 5]
    )
    dm.prepare_data()
    assert dm.resolved.kind == "local"
    assert dm.labels == ["1", "2", "3", "4", "5"]
    assert dm.prepared["train_rows"] == 18_112
    stars = Counter(load_split(dm.resolved, "train")["stars"])
    assert sorted(stars) == [1, 2, 3, 4, 5]


def test_artefacts_are_the_codec_state(tiny_reviews: Path) -> None:
    """What the task keeps in its checkpoints: the codec's state, plain data, as the codec encodes."""
    dm = _module(tiny_reviews)
    dm.prepare_data()
    artefacts = dm.artefacts()
    assert list(artefacts) == ["text_codec"]
    assert artefacts["text_codec"] == dm.text_codec.state_dict()
    assert artefacts["text_codec"]["vocabulary"] == dm.prepared["vocabulary"]
