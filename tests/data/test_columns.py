"""Columnar collation (``collate_table``) gives exactly the batches ``collate`` gives from the same rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import torch
from conftest import requires_real_data
from fixtures.music import make_tiny_rolls
from fixtures.ner import make_tiny_ner

from seqtasks.data import TokenTaggingDataModule
from seqtasks.data.batching import REAL
from seqtasks.data.columns import ColumnStore, int_column, pad_list_column, pad_nested_column
from seqtasks.data.music import PianoRollDataModule
from seqtasks.data.tagging_codec import pad_characters, pad_sequences


def assert_same_batch(columnar: dict[str, Any], rows: dict[str, Any]) -> None:
    assert list(columnar) == list(rows)
    for key, value in rows.items():
        if isinstance(value, torch.Tensor):
            assert columnar[key].dtype == value.dtype, key
            assert torch.equal(columnar[key], value), key
        else:
            assert columnar[key] == value, key


def assert_loader_batches_equal_rows(dm: Any, split: str) -> int:
    """Every batch of ``split``'s loader against ``collate`` of the same indices' rows; the batch count."""
    assert dm.collates_tables()
    loader = dm.train_dataloader() if split == "train" else dm.test_dataloader()
    rows = dm.examples(split).with_format(None)
    batches = 0
    for indices, batch in zip(loader.batch_sampler, loader, strict=True):
        expected = dm.collate([rows[int(i)] for i in indices])
        assert_same_batch({k: v for k, v in batch.items() if k != REAL}, expected)
        batches += 1
    return batches


def test_tagging_batches_equal_the_row_collate(tmp_path: Path) -> None:
    dm = TokenTaggingDataModule(str(make_tiny_ner(tmp_path / "d")), batch_size=3)
    dm.setup("fit")
    assert assert_loader_batches_equal_rows(dm, "train") > 1


def test_piano_roll_batches_equal_the_row_collate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tiny_rolls(tmp_path, monkeypatch)
    dm = PianoRollDataModule("jsb_chorales", batch_size=5)
    dm.setup("fit")
    assert assert_loader_batches_equal_rows(dm, "train") > 1


def test_a_subclass_with_its_own_collate_gets_rows(tmp_path: Path) -> None:
    class Upper(TokenTaggingDataModule):
        def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
            return {"count": torch.tensor(len(examples))}

    dm = Upper(str(make_tiny_ner(tmp_path / "d")), batch_size=3)
    dm.setup("fit")
    assert not dm.collates_tables()
    assert set(next(iter(dm.train_dataloader()))) == {"count", REAL}


def test_sliced_and_chunked_columns() -> None:
    """Offsets that do not start at 0 (a slice) and several chunks read as the rows they hold."""
    sentences = [[[3, 4], [5]], [[6]], [[7, 8, 9], [1], [2, 2]], [[4]]]
    ids = [[1, 2, 3], [4], [5, 6], [7, 8]]
    nested = pa.chunked_array([pa.array(sentences[:1]), pa.array(sentences[1:]).slice(1)])
    flat = pa.chunked_array([pa.array(ids[:2]).slice(1), pa.array(ids[2:])])
    kept_sentences, kept_ids = sentences[2:], ids[1:]
    out, lengths = pad_list_column(flat, pad_value=9)
    want, want_lengths = pad_sequences(kept_ids, 9)
    assert torch.equal(out, want) and torch.equal(lengths, want_lengths)
    chars = pad_nested_column(pa.array(sentences).slice(2), 3, pad_value=0)
    assert torch.equal(chars, pad_characters(kept_sentences, 3, 0))
    assert torch.equal(pad_nested_column(nested, 3), pad_characters(sentences[:1] + kept_sentences, 3))


def test_a_column_store_gathers_the_rows_an_arrow_table_holds() -> None:
    """The store reads a table of several chunks whose arrays are slices (offsets not starting at 0) and
    gives any rows, in the order asked, repeated or not: numbers, lists, lists of lists and strings."""
    sentences = [[[3, 4], [5]], [[6]], [[7, 8, 9], [1], [2, 2]], [[4]], [[1, 1, 1, 1]]]
    ids = [[1, 2, 3], [4], [5, 6], [7, 8], [9]]
    tokens = [["a", "b"], ["c"], ["d", "e", "f"], ["g"], ["h"]]
    table = pa.concat_tables(
        [
            pa.table({"chars": [[[0]]], "ids": [[0]], "tokens": [["x"]], "length": [0]}).slice(1),
            pa.table(
                {
                    "chars": pa.array([[[9]], *sentences[:2]]).slice(1),
                    "ids": pa.array([[9], *ids[:2]]).slice(1),
                    "tokens": tokens[:2],
                    "length": [2, 1],
                }
            ),
            pa.table({"chars": sentences[2:], "ids": ids[2:], "tokens": tokens[2:], "length": [3, 1, 1]}),
        ]
    )
    assert table.column("ids").num_chunks == 3
    store = ColumnStore(table)
    assert len(store) == 5
    for rows in ([2, 0], [4, 4, 1], [3], [0, 1, 2, 3, 4]):
        batch = store.gather(rows)
        assert batch.column_names == ["chars", "ids", "tokens", "length"]
        words, lengths = pad_list_column(batch.column("ids"), pad_value=7)
        want, want_lengths = pad_sequences([ids[r] for r in rows], 7)
        assert torch.equal(words, want) and torch.equal(lengths, want_lengths)
        width = max(len(sentences[r]) for r in rows)
        chars = pad_nested_column(batch.column("chars"), width)
        assert torch.equal(chars, pad_characters([sentences[r] for r in rows], width))
        assert batch.column("tokens").to_pylist() == [tokens[r] for r in rows]
        assert int_column(batch.column("length")).tolist() == [[2, 1, 3, 1, 1][r] for r in rows]


@pytest.mark.realdata
@requires_real_data
def test_conll2003_batches_equal_the_row_collate() -> None:
    dm = TokenTaggingDataModule("eriktks/conll2003", tokens_column="tokens", tags_column="ner_tags")
    dm.setup("fit")
    dm.setup("test")
    assert assert_loader_batches_equal_rows(dm, "train") == 439
    assert assert_loader_batches_equal_rows(dm, "test") > 0


@pytest.mark.realdata
@requires_real_data
@pytest.mark.parametrize("dataset", ["jsb_chorales", "nottingham"])
def test_polyphonic_batches_equal_the_row_collate(dataset: str) -> None:
    dm = PianoRollDataModule(dataset)
    dm.setup("fit")
    dm.setup("test")
    assert assert_loader_batches_equal_rows(dm, "train") > 0
    assert assert_loader_batches_equal_rows(dm, "test") > 0
