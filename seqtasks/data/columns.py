"""Padded tensors straight from a batch's Arrow table, without making a Python object per value.

A map-style training batch of a prepared dataset is a few list columns (ids per token, characters per
token, keys per frame). Fetching its rows as Python dicts and padding the lists costs more than a small
model's step takes to consume them (CoNLL-2003: ~1.4 ms per batch of 32 sentences, 4 % of the tagger's
step; JSB: ~0.5 ms of a 12 ms step). The loader can instead gather the batch's rows as one
``pyarrow.Table`` (``datasets`` does that without converting anything) and build the same tensors from
each column's flat values and offsets. A datamodule opts in by overriding
:meth:`SeqDataModule.collate_table`, which must return exactly what its ``collate`` returns for the same
rows (tests compare the two on the real datasets).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch


def _array(column: Any) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _flat(column: Any) -> tuple[pa.Array, np.ndarray]:
    """A list column's values (only the rows it holds, a slice's too) and each row's count."""
    array = _array(column)
    offsets = array.offsets.to_numpy()
    return array.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])), np.diff(offsets)


def _numbers(array: pa.Array) -> np.ndarray:
    """Int64 values in memory of their own (Arrow's buffers are read-only; a tensor over them must not be)."""
    return array.to_numpy(zero_copy_only=False).astype(np.int64, copy=True)


def list_column(column: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``list<int>`` column → ``(values, lengths)``: all rows' values in order, and each row's count."""
    values, lengths = _flat(column)
    return torch.from_numpy(_numbers(values)), torch.from_numpy(lengths.astype(np.int64))


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
    return torch.from_numpy(_numbers(_array(column)))
