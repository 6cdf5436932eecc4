"""Text classification data: one text column, one label column (IMDB, star-rated reviews).

Texts are encoded with :class:`~seqtasks.data.text.TextCodec`, the codec inference uses too; its state is
the ``text_codec`` artefact of every classifier checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets
import torch

from seqtasks.data.batching import pad_sequences
from seqtasks.data.datamodule import SeqDataModule
from seqtasks.data.errors import DataError
from seqtasks.data.sources import load_split
from seqtasks.data.text import EmptyTextError, TextCodec, Vocabulary, WordTokenizer, split_words


class TextClassificationDataModule(SeqDataModule):
    """Texts and their labels from any dataset with a text column and a label column.

    Args:
        dataset: Hub id or local directory (see :class:`SeqDataModule`).
        text_column: column holding the text.
        label_column: column holding the label.
        labels: class names in class order. When omitted: the column's ClassLabel names, else the sorted
            distinct values found in the training split.
        label_values: the column value of each class, in the order of ``labels`` (e.g. ``[1, 2, 3, 4, 5]``
            for stars). When omitted: ``0..n-1`` for an integer column, else the names themselves.
        max_length: keep at most this many tokens of each text (the first ones); None keeps all.
        min_freq: a word enters the vocabulary when it occurs at least this often in training.
        max_vocab_size: cap on the vocabulary, the two special tokens included.
        lowercase: fold case before tokenising.
        **kwargs: see :class:`SeqDataModule` (streaming, batch size, splits, seed...).
    """

    def __init__(
        self,
        dataset: str,
        text_column: str = "text",
        label_column: str = "label",
        labels: list[str] | None = None,
        label_values: list[int | str] | None = None,
        max_length: int | None = 400,
        min_freq: int = 2,
        max_vocab_size: int | None = 30_000,
        lowercase: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, **kwargs)
        if labels is not None and label_values is not None and len(labels) != len(label_values):
            raise ValueError(
                f"labels and label_values must have the same length, "
                f"got {len(labels)} and {len(label_values)}"
            )
        if labels is not None and len(set(labels)) != len(labels):
            raise ValueError(f"labels must be distinct, got {labels}")
        self.text_column = text_column
        self.label_column = label_column
        self.label_names = labels
        self.label_values = label_values
        self.max_length = max_length
        self.min_freq = min_freq
        self.max_vocab_size = max_vocab_size
        self.lowercase = lowercase
        self._text_codec: TextCodec | None = None
        self._value_to_class: dict[Any, int] | None = None

    # ---- sizes the model links to ------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.prepared["vocabulary"])

    @property
    def pad_index(self) -> int:
        return Vocabulary.pad_index

    @property
    def labels(self) -> list[str]:
        return list(self.prepared["labels"])

    @property
    def text_codec(self) -> TextCodec:
        """The codec of the prepared vocabulary: what training encodes with, and the checkpoint keeps."""
        if self._text_codec is None:
            tokenizer = WordTokenizer(lowercase=self.lowercase, strip_html=True)
            self._text_codec = TextCodec(tokenizer, Vocabulary(self.prepared["vocabulary"]), self.max_length)
        return self._text_codec

    def artefacts(self) -> dict[str, Any]:
        return {"text_codec": self.text_codec.state_dict()}

    # ---- the prepare step --------------------------------------------------------------------------
    def prepare_settings(self) -> dict[str, Any]:
        return {
            "text_column": self.text_column,
            "label_column": self.label_column,
            "labels": self.label_names,
            "label_values": self.label_values,
            "min_freq": self.min_freq,
            "max_vocab_size": self.max_vocab_size,
            "lowercase": self.lowercase,
        }

    def encode_settings(self) -> dict[str, Any]:
        return {"max_length": self.max_length}

    def required_columns(self) -> list[str]:
        return [self.text_column, self.label_column]

    def input_columns(self) -> list[str]:
        return [self.text_column]  # a file to predict needs no label

    def _label_feature_names(self) -> list[str] | None:
        data = load_split(self.resolved, self.train_split, streaming=True)
        feature = (data.features or {}).get(self.label_column)
        return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None

    def build_prepared(self, rows: Iterator[tuple[int, dict[str, Any]]], source: str) -> dict[str, Any]:
        tokenizer = WordTokenizer(lowercase=self.lowercase, strip_html=True)
        first_row: dict[Any, int] = {}  # each label value → the first row holding it, for error messages

        def tokens() -> Iterator[list[str]]:
            for index, row in rows:
                text = self._text_of(row, index, source)
                first_row.setdefault(self._raw_label(row, index, source), index)
                try:
                    yield split_words(tokenizer, text)
                except EmptyTextError:
                    raise DataError(source, "empty text", row=index, field=self.text_column) from None

        vocabulary = Vocabulary.build(tokens(), min_freq=self.min_freq, max_size=self.max_vocab_size)
        names, values = self._resolve_labels(set(first_row))
        unknown = sorted((v for v in first_row if v not in set(values)), key=first_row.__getitem__)
        if unknown:
            raise DataError(
                source,
                f"label {unknown[0]!r} is not among label_values {values}"
                f" (unknown values: {sorted(str(v) for v in unknown)})",
                row=first_row[unknown[0]],
                field=self.label_column,
            )
        return {"vocabulary": vocabulary.tokens, "labels": names, "label_values": values}

    def _resolve_labels(self, seen: set[Any]) -> tuple[list[str], list[Any]]:
        names, values = self.label_names, self.label_values
        if names is None and values is not None:  # the values alone fix the classes; name them by value
            names = [str(v) for v in values]
        if names is None:
            class_names = self._label_feature_names()
            if class_names is not None:
                names = class_names
            else:
                ordered = sorted(seen)
                return [str(v) for v in ordered], ordered
        if values is None:
            values = list(range(len(names))) if all(isinstance(v, int) for v in seen) else list(names)
        return list(names), list(values)

    # ---- rows → examples ---------------------------------------------------------------------------
    def _text_of(self, row: dict[str, Any], index: int, source: str) -> str:
        text = row.get(self.text_column)
        if not isinstance(text, str):
            raise DataError(
                source, f"expected text, got {type(text).__name__}", row=index, field=self.text_column
            )
        return text

    def _raw_label(self, row: dict[str, Any], index: int, source: str) -> Any:
        value = row.get(self.label_column)
        if value is None:
            raise DataError(source, "missing label", row=index, field=self.label_column)
        return value

    def encode_row(self, row: dict[str, Any], index: int, source: str) -> dict[str, Any]:
        """An example; a row of the predict file (``predict_file``) may have no label (label -1 then)."""
        if self._value_to_class is None:
            self._value_to_class = {v: i for i, v in enumerate(self.prepared["label_values"])}
        text = self._text_of(row, index, source)
        if row.get(self.label_column) is None and source == getattr(self, "predict_file", None):
            try:
                ids = self.text_codec(text)
            except EmptyTextError:
                raise DataError(source, "empty text", row=index, field=self.text_column) from None
            return {"input_ids": ids, "label": -1, "length": len(ids), "index": index}
        value = self._raw_label(row, index, source)
        if value not in self._value_to_class:
            raise DataError(
                source,
                f"label {value!r} is not in the label set {list(self._value_to_class)}",
                row=index,
                field=self.label_column,
            )
        try:
            ids = self.text_codec(text)
        except EmptyTextError:  # the codec's decision, reported with the file, row and column
            raise DataError(source, "empty text", row=index, field=self.text_column) from None
        return {"input_ids": ids, "label": self._value_to_class[value], "length": len(ids), "index": index}

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        tokens, lengths = pad_sequences([e["input_ids"] for e in examples], self.pad_index)
        labels = torch.tensor([e["label"] for e in examples], dtype=torch.long)
        indices = torch.tensor([e["index"] for e in examples], dtype=torch.long)
        return {"tokens": tokens, "lengths": lengths, "labels": labels, "indices": indices}
