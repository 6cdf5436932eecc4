"""Long-range tasks: the requested distance exactly, balanced labels, the cue and the blank in their places.

If the distance were off, or the filler leaked a cue word, the lab's "accuracy vs distance" would measure
something else than memory over that many steps.
"""

from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq
import pytest
from conftest import requires_real_data

from seqtasks.analysis.long_range import (
    BLANK,
    TENSE_CUES,
    FillerCorpus,
    build_adding_dataset,
    build_tense_dataset,
)
from seqtasks.data.classification import TextClassificationDataModule
from seqtasks.data.text import WordTokenizer

TOKENIZE = WordTokenizer(lowercase=True, strip_html=True)
CUE_OF = {cue: label for label, cue in TENSE_CUES.items()}


def _rows(path, split):
    return pq.read_table(path / f"{split}.parquet").to_pylist()


def _check_tense(path, distance: int, sizes: dict[str, int]) -> None:
    for split, size in sizes.items():
        rows = _rows(path, split)
        assert len(rows) == size
        assert Counter(r["label"] for r in rows) == {"need": size // 2, "had": size // 2}
        for row in rows:
            tokens = TOKENIZE(row["text"])
            assert len(tokens) == distance + 1, row["text"]
            assert CUE_OF[tokens[0]] == row["label"]  # the cue at the first position decides the label
            assert tokens[-1] == BLANK  # the verb to predict is the last position
            assert tokens[1] == "," and tokens[-3:-1] == [",", "i"]
            filler = tokens[2:-3]
            assert len(filler) == distance - 4
            assert not set(filler) & set(CUE_OF), row["text"]  # no tense cue in the filler


@pytest.mark.parametrize("distance", [5, 9, 40])
def test_tense_task_without_data_dir_uses_the_builtin_text(monkeypatch, distance: int) -> None:
    monkeypatch.delenv("SEQTASKS_DATA_DIR", raising=False)
    dataset = build_tense_dataset(distance, train_size=40, validation_size=10, test_size=20, seed=1)
    assert dataset.labels == ["need", "had"] and dataset.chance == 0.5
    assert "built-in" in dataset.filler_source
    _check_tense(dataset.path, distance, {"train": 40, "validation": 10, "test": 20})


def test_tense_task_is_reused_and_deterministic(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("SEQTASKS_DATA_DIR", raising=False)
    first = build_tense_dataset(12, train_size=20, validation_size=4, test_size=4, root=tmp_path / "a")
    second = build_tense_dataset(12, train_size=20, validation_size=4, test_size=4, root=tmp_path / "b")
    assert _rows(first.path, "train") == _rows(second.path, "train")
    other_seed = build_tense_dataset(12, train_size=20, validation_size=4, test_size=4, seed=5, root=tmp_path)
    assert _rows(other_seed.path, "train") != _rows(first.path, "train")


def test_tense_task_refuses_a_distance_too_short_for_its_template() -> None:
    with pytest.raises(ValueError, match="distance >= 5"):
        build_tense_dataset(4)


def test_filler_corpus_drops_excluded_tokens_and_wraps() -> None:
    import random

    corpus = FillerCorpus({"train": [["a", "today", "b"], ["c"]]}, "test", exclude={"today"})
    window = corpus.window("validation", 7, random.Random(0))  # unknown split: falls back to train
    assert len(window) == 7 and "today" not in window and set(window) <= {"a", "b", "c"}


def test_library_datamodule_reads_the_task_at_the_requested_length(monkeypatch) -> None:
    """Trained through TextClassificationDataModule, every row is distance + 1 tokens: nothing truncated."""
    monkeypatch.delenv("SEQTASKS_DATA_DIR", raising=False)
    dataset = build_tense_dataset(30, train_size=40, validation_size=10, test_size=10)
    datamodule = TextClassificationDataModule(str(dataset.path), labels=dataset.labels, max_length=None)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["lengths"].tolist() == [31] * len(batch["lengths"])
    assert datamodule.labels == ["need", "had"]


@requires_real_data
@pytest.mark.realdata
def test_tense_task_takes_its_filler_from_conll() -> None:
    dataset = build_tense_dataset(20, train_size=30, validation_size=10, test_size=10)
    assert dataset.filler_source.startswith("CoNLL-2003")
    _check_tense(dataset.path, 20, {"train": 30, "validation": 10, "test": 10})


@pytest.mark.parametrize("distance", [2, 7, 30])
def test_adding_problem_marks_two_values_and_labels_their_sum(distance: int) -> None:
    dataset = build_adding_dataset(distance, levels=4, train_size=50, validation_size=5, test_size=5)
    assert dataset.labels == [str(s) for s in range(7)] and dataset.chance == 0.25
    for row in _rows(dataset.path, "train"):
        tokens = row["text"].split()
        assert len(tokens) == distance + 1
        marked = [i for i, token in enumerate(tokens) if token.startswith("m")]
        assert marked[0] == 0 and len(marked) == 2  # the first value sits exactly `distance` steps back
        assert marked[1] >= (distance + 1) // 2
        assert int(row["label"]) == sum(int(tokens[i][1:]) for i in marked)
        assert all(0 <= int(token[1:]) < 4 for token in tokens)
