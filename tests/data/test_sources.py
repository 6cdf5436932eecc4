"""Where a dataset name is read from, and what a failure to read it says."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import requires_real_data, write_split

from seqtasks.data.errors import DataError
from seqtasks.data.sources import DATA_DIR_ENV, cache_dir, has_split, load_split, resolve

ROWS = {"text": ["one", "two", "three"], "label": [0, 1, 0]}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary SEQTASKS_DATA_DIR; the working directory moves elsewhere so relative names miss."""
    root = tmp_path / "data_dir"
    root.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv(DATA_DIR_ENV, str(root))
    return root


def test_existing_local_directory_resolves_to_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path to a directory is read from there, even without SEQTASKS_DATA_DIR."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    directory = tmp_path / "mine"
    write_split(directory, "train", ROWS)
    resolved = resolve(str(directory))
    assert (resolved.kind, resolved.location) == ("local", str(directory))
    assert resolved.describe("train") == str(directory / "train.parquet")


def test_name_resolves_under_data_dir(data_dir: Path) -> None:
    """``<name>`` is looked up as ``$SEQTASKS_DATA_DIR/<name>``."""
    write_split(data_dir / "reviews" / "mine", "train", ROWS)
    resolved = resolve("reviews/mine")
    assert (resolved.kind, resolved.location) == ("local", str(data_dir / "reviews" / "mine"))


def test_hub_id_resolves_through_local_layout(data_dir: Path) -> None:
    """``stanfordnlp/imdb`` is found where this project's data directory keeps it: ``reviews/imdb``."""
    write_split(data_dir / "reviews" / "imdb", "train", ROWS)
    resolved = resolve("stanfordnlp/imdb")
    assert (resolved.name, resolved.kind) == ("stanfordnlp/imdb", "local")
    assert resolved.location == str(data_dir / "reviews" / "imdb")
    assert load_split(resolved, "train")["text"] == ROWS["text"]


def test_data_dir_name_wins_over_local_layout(data_dir: Path) -> None:
    """The name itself under the data directory is tried before its layout alias."""
    write_split(data_dir / "reviews" / "imdb", "train", ROWS)
    write_split(data_dir / "stanfordnlp" / "imdb", "train", ROWS)
    assert resolve("stanfordnlp/imdb").location == str(data_dir / "stanfordnlp" / "imdb")


def test_unknown_name_resolves_to_hub(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name found nowhere locally is a Hub id, with or without a data directory."""
    resolved = resolve("someone/some-dataset")
    assert (resolved.kind, resolved.location) == ("hub", "someone/some-dataset")
    monkeypatch.delenv(DATA_DIR_ENV)
    assert resolve("someone/some-dataset").kind == "hub"


def test_offline_hub_failure_names_dataset_data_dir_and_cause(data_dir: Path) -> None:
    """When the Hub can't be reached, the error says which dataset, where it looked locally, and why."""
    resolved = resolve("stanfordnlp/imdb")
    assert resolved.kind == "hub"
    with pytest.raises(FileNotFoundError) as caught:
        load_split(resolved, "train")
    message = str(caught.value)
    assert "'stanfordnlp/imdb'" in message
    assert f"{DATA_DIR_ENV}={str(data_dir)!r} holds neither 'stanfordnlp/imdb' nor 'reviews/imdb'" in message
    cause = caught.value.__cause__
    assert cause is not None
    assert f"{type(cause).__name__}: " in message


def test_offline_hub_failure_says_data_dir_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SEQTASKS_DATA_DIR the message says so: the usual reason a local dataset was not found."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"'someone/some-dataset'.*{DATA_DIR_ENV} is not set"):
        load_split(resolve("someone/some-dataset"), "train")


@pytest.mark.parametrize("streaming", [False, True], ids=["map", "streaming"])
def test_load_split_reads_local_parquet(tmp_path: Path, streaming: bool) -> None:
    """Both modes read the same rows, in file order, from ``<split>.parquet``."""
    write_split(tmp_path / "ds", "train", ROWS)
    data = load_split(resolve(str(tmp_path / "ds")), "train", streaming=streaming)
    assert [row["text"] for row in data] == ROWS["text"]
    assert [row["label"] for row in data] == ROWS["label"]


@pytest.mark.parametrize("streaming", [False, True], ids=["map", "streaming"])
def test_load_split_reads_sharded_split_files_in_order(tmp_path: Path, streaming: bool) -> None:
    """``<split>-*.parquet`` shards are one split, read in file-name order; other splits stay out."""
    write_split(tmp_path / "ds", "train-00000-of-00002", {"text": ["a", "b"], "label": [0, 1]})
    write_split(tmp_path / "ds", "train-00001-of-00002", {"text": ["c"], "label": [0]})
    write_split(tmp_path / "ds", "test", {"text": ["z"], "label": [1]})
    data = load_split(resolve(str(tmp_path / "ds")), "train", streaming=streaming)
    assert [row["text"] for row in data] == ["a", "b", "c"]


def test_has_split(tmp_path: Path) -> None:
    """Only splits with files count; an unreachable Hub dataset has none (offline, no exception)."""
    write_split(tmp_path / "ds", "train", ROWS)
    local = resolve(str(tmp_path / "ds"))
    assert has_split(local, "train") and not has_split(local, "validation")
    assert not has_split(resolve("someone/some-dataset"), "train")


@pytest.mark.parametrize("streaming", [False, True], ids=["map", "streaming"])
def test_corrupt_parquet_is_a_data_error_naming_the_file(tmp_path: Path, streaming: bool) -> None:
    """A split file that is not readable parquet stops with a DataError that names that file."""
    directory = tmp_path / "ds"
    directory.mkdir()
    bad = directory / "train.parquet"
    bad.write_bytes(b"this is not parquet\n" * 20)
    with pytest.raises(DataError, match=re.escape(str(bad))) as caught:
        load_split(resolve(str(directory)), "train", streaming=streaming)
    assert caught.value.__cause__ is not None


def test_cache_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prepared files go to SEQTASKS_CACHE_DIR (created on demand), never next to the data."""
    monkeypatch.setenv("SEQTASKS_CACHE_DIR", str(tmp_path / "new" / "cache"))
    assert cache_dir() == tmp_path / "new" / "cache"
    assert cache_dir().is_dir()


@pytest.mark.realdata
@requires_real_data
def test_real_imdb_resolves_locally() -> None:
    """With the project's data directory, the recipe's Hub id reads the local copy (no network)."""
    resolved = resolve("stanfordnlp/imdb")
    assert resolved.kind == "local"
    assert resolved.location == os.path.join(os.path.abspath(os.environ[DATA_DIR_ENV]), "reviews", "imdb")
    first = next(iter(load_split(resolved, "test", streaming=True)))
    assert isinstance(first["text"], str) and first["label"] in (0, 1)
