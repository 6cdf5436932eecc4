"""Padded tensors straight from a batch's Arrow table, without making a Python object per value.

A map-style training batch of a prepared dataset is a few list columns (ids per token, characters per
token, keys per frame). Fetching its rows as Python dicts and padding the lists costs more than a small
model's step takes to consume them (CoNLL-2003: ~1.4 ms per batch of 32 sentences, 4 % of the tagger's
step; JSB: ~0.5 ms of a 12 ms step). The loader can instead gather the batch's rows as one
``pyarrow.Table`` (``datasets`` does that without converting anything) and build the same tensors from
each column's flat values and offsets. A datamodule opts in by overriding
:meth:`SeqDataModule.collate_table`, which must return exactly what its ``collate`` returns for the same
rows (tests compare the two on the real datasets).

A map-style loader goes one step further: :class:`ColumnStore` holds a split's columns in memory once,
integer lists as flat numpy values and offsets, so a batch is gathered with a few numpy calls instead of
through ``datasets``' row fetch and Arrow's chunk handling (JSB, a batch of 8: 0.53 → 0.25 ms fetch and
collate). Its batches (:class:`StoredRows`) answer ``column`` and ``column_names`` as a table does, so the
same ``collate_table`` reads both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch


class FlatList:
    """A list column of some rows: every row's items in row order (``values``: numbers, or a ``FlatList``
    for lists of lists) and each row's count (``lengths``)."""

    __slots__ = ("lengths", "values")

    def __init__(self, values: Any, lengths: np.ndarray) -> None:
        self.values, self.lengths = values, lengths


class PyColumn:
    """A column of Python values (a sentence's raw tokens, say), answering ``to_pylist`` as Arrow does."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def to_pylist(self) -> list[Any]:
        return self.rows


def _spans(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of ``rows``' items in a flat column with ``offsets``, in row order, and their counts."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + shift, lengths


class ColumnStore:
    """A prepared split's columns in memory, gathered a batch of rows at a time.

    Integers and (nested) lists of integers are kept as numpy arrays: values plus offsets per list level
    (in the column's own integer type; ``collate_table`` makes them int64 per batch). Any other column
    (the raw token strings) is kept as Python lists. Built from the split's Arrow table at once (a
    memory-mapped dataset's pages are read then); the datamodule keeps one per split for its loaders.
    """

    def __init__(self, table: pa.Table) -> None:
        self.column_names = list(table.column_names)
        self.num_rows = table.num_rows
        self._ints: dict[str, np.ndarray] = {}
        self._lists: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}  # values, offsets outermost first
        self._python: dict[str, list[Any]] = {}
        for name in self.column_names:
            array = table.column(name).combine_chunks()
            kind = array.type
            depth = 0
            while pa.types.is_list(kind) or pa.types.is_large_list(kind):
                kind, depth = kind.value_type, depth + 1
            if not pa.types.is_integer(kind) or array.null_count:
                self._python[name] = array.to_pylist()
            elif depth == 0:
                self._ints[name] = array.to_numpy()
            else:
                offsets = []
                for _ in range(depth):
                    offsets.append(array.offsets.to_numpy().astype(np.int64))
                    array = array.values  # offsets index into the full child array
                self._lists[name] = (array.to_numpy(), offsets)

    def __len__(self) -> int:
        return self.num_rows

    def gather(self, rows: list[int]) -> StoredRows:
        return StoredRows(self, np.asarray(rows, dtype=np.int64))

    def column(self, name: str, rows: np.ndarray) -> Any:
        """Column ``name`` of ``rows``: an array, a :class:`FlatList` or a :class:`PyColumn`."""
        if name in self._ints:
            return self._ints[name][rows]
        if name in self._python:
            return PyColumn([self._python[name][int(i)] for i in rows])
        values, offsets = self._lists[name]
        positions, levels = rows, []
        for level in offsets:
            positions, lengths = _spans(level, positions)
            levels.append(lengths)
        column: Any = values[positions]
        for lengths in reversed(levels):
            column = FlatList(column, lengths)
        return column


class StoredRows:
    """Some rows of a :class:`ColumnStore`, read like a ``pyarrow.Table`` by ``collate_table``."""

    def __init__(self, store: ColumnStore, rows: np.ndarray) -> None:
        self.store, self.rows = store, rows
        self.column_names = store.column_names

    def column(self, name: str) -> Any:
        return self.store.column(name, self.rows)


def _array(column: Any) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _flat(column: Any) -> tuple[Any, np.ndarray]:
    """A list column's values (only the rows it holds, a slice's too) and each row's count."""
    if isinstance(column, FlatList):
        return column.values, column.lengths
    array = _array(column)
    offsets = array.offsets.to_numpy()
    return array.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])), np.diff(offsets)


def _numbers(array: Any) -> np.ndarray:
    """Int64 values in memory of their own (Arrow's buffers are read-only; a tensor over them must not be)."""
    if isinstance(array, np.ndarray):  # gathered from a ColumnStore: already a copy of its own
        return array.astype(np.int64, copy=False)
    return array.to_numpy(zero_copy_only=False).astype(np.int64, copy=True)


def list_column(column: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``list<int>`` column → ``(values, lengths)``: all rows' values in order, and each row's count."""
    values, lengths = flat_column(column)
    return torch.from_numpy(values), torch.from_numpy(lengths)


def flat_column(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`list_column` as int64 numpy arrays (for index arithmetic in numpy before one tensor)."""
    values, lengths = _flat(column)
    return _numbers(values), lengths.astype(np.int64)


def pad_flat(
    values: np.ndarray, lengths: np.ndarray, pad_value: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row's values in row order and each row's count → right-padded ``(B, T)``, ``(B,)`` lengths."""
    lengths = lengths.astype(np.int64, copy=False)
    width = int(lengths.max()) if len(lengths) else 0
    out = np.full((len(lengths), width), pad_value, dtype=np.int64)
    out[np.arange(width)[None, :] < lengths[:, None]] = values
    return torch.from_numpy(out), torch.from_numpy(lengths)


def pad_nested_flat(
    chars: np.ndarray, word_lengths: np.ndarray, sentence_lengths: np.ndarray, time: int, pad_value: int = 0
) -> torch.Tensor:
    """Every character in order, each word's and each sentence's count → ``(B, time, L)``, right-padded to
    the longest word ``L`` (at least 1). Index arithmetic in numpy: at these sizes its calls cost half of
    torch's."""
    words = len(word_lengths)
    width = max(int(word_lengths.max()) if words else 1, 1)
    out = np.full((len(sentence_lengths), time, width), pad_value, dtype=np.int64)
    row = np.repeat(np.arange(len(sentence_lengths)), sentence_lengths)  # each word's sentence
    position = np.arange(words) - (np.cumsum(sentence_lengths) - sentence_lengths)[row]
    word = np.repeat(np.arange(words), word_lengths)  # each character's word
    first_char = (np.cumsum(word_lengths) - word_lengths)[word]
    out[row[word], position[word], np.arange(len(chars)) - first_char] = chars
    return torch.from_numpy(out)


def pad_list_column(column: Any, pad_value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``list<int>`` column → right-padded ``(B, T)`` long tensor, ``(B,)`` lengths (``pad_sequences``)."""
    values, lengths = _flat(column)
    return pad_flat(_numbers(values), lengths, pad_value)


def pad_nested_column(column: Any, time: int, pad_value: int = 0) -> torch.Tensor:
    """A ``list<list<int>>`` column (sentences of words of characters) → ``(B, time, L)``, as
    ``pad_characters`` builds it from lists."""
    inner, sentence_lengths = _flat(column)
    chars, word_lengths = _flat(inner)
    return pad_nested_flat(_numbers(chars), word_lengths, sentence_lengths, time, pad_value)


def int_column(column: Any) -> torch.Tensor:
    """An integer column → a ``(B,)`` long tensor."""
    return torch.from_numpy(_numbers(column if isinstance(column, np.ndarray) else _array(column)))
