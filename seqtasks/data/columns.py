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


def list_column(column: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``list<int>`` column → ``(values, lengths)``: all rows' values in order, and each row's count."""
    array = _array(column)
    offsets = array.offsets.to_numpy()
    values = array.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    return _ints(values), torch.from_numpy(np.diff(offsets).astype(np.int64))


def _ints(array: pa.Array) -> torch.Tensor:
    return torch.from_numpy(array.to_numpy(zero_copy_only=False).astype(np.int64))


def pad_list_column(column: Any, pad_value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``list<int>`` column → right-padded ``(B, T)`` long tensor, ``(B,)`` lengths (``pad_sequences``)."""
    values, lengths = list_column(column)
    width = int(lengths.max()) if len(lengths) else 0
    out = torch.full((len(lengths), width), pad_value, dtype=torch.long)
    out[torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)] = values
    return out, lengths


def pad_nested_column(column: Any, time: int, pad_value: int = 0) -> torch.Tensor:
    """A ``list<list<int>>`` column (sentences of words of characters) → ``(B, time, L)``, right-padded to
    the longest inner list ``L`` (at least 1), as ``pad_characters`` builds it."""
    array = _array(column)
    offsets = array.offsets.to_numpy()
    inner = array.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    chars, word_lengths = list_column(inner)
    sentence_lengths = torch.from_numpy(np.diff(offsets).astype(np.int64))
    words = len(word_lengths)
    width = max(int(word_lengths.max()) if words else 1, 1)
    out = torch.full((len(sentence_lengths), time, width), pad_value, dtype=torch.long)
    row = torch.repeat_interleave(torch.arange(len(sentence_lengths)), sentence_lengths)
    first_word = torch.cumsum(sentence_lengths, 0) - sentence_lengths
    position = torch.arange(words) - first_word[row]
    word = torch.repeat_interleave(torch.arange(words), word_lengths)
    first_char = torch.cumsum(word_lengths, 0) - word_lengths
    out[row[word], position[word], torch.arange(len(chars)) - first_char[word]] = chars
    return out


def int_column(column: Any) -> torch.Tensor:
    """An integer column → a ``(B,)`` long tensor."""
    return _ints(_array(column))
