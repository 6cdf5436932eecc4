"""Parallel text for translation: subword tokenizers trained by the prepare step, sentence pairs → batches.

Two layouts are read: one column per language (``en``, ``hi``: this project's ``en_hi/*`` folders), and
the Hub's ``translation`` column of ``{language: text}`` dicts (``cfilt/iitb-english-hindi``).

The tokenizers (HuggingFace ``tokenizers``: BPE or unigram, joint or one per language) are trained on the
training rows only, and kept as their JSON strings: in the prepared file and in the checkpoint, so the
model translates from the checkpoint alone. Their pre-tokenizer (Metaspace, then punctuation split) and
decoder make detokenisation give plain text back. :class:`TranslationCodec` turns texts into ids and ids
back into text, for the DataModule's batches and for inference (:mod:`seqtasks.inference.translation`) alike.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow.compute as pc
import torch

from seqtasks.data.batching import pad_sequences
from seqtasks.data.datamodule import SeqDataModule
from seqtasks.data.errors import DataError
from seqtasks.data.sources import cache_dir
from seqtasks.data.translation_codec import (
    SubwordModel,
    TranslationCodec,
    load_tokenizer,
    require_text,
    train_subword_tokenizer,
)
from seqtasks.networks.seq2seq import BOS_INDEX, EOS_INDEX, PAD_INDEX, SPECIAL_TOKENS, UNK_INDEX

__all__ = [
    "BOS_INDEX",
    "EOS_INDEX",
    "PAD_INDEX",
    "SPECIAL_TOKENS",
    "UNK_INDEX",
    "TranslationCodec",
    "TranslationDataModule",
    "load_tokenizer",
    "require_text",
    "train_subword_tokenizer",
]

PAIR_COLUMN = "translation"


class TranslationDataModule(SeqDataModule):
    """Sentence pairs from a parallel dataset, tokenised into subwords.

    Args:
        dataset: Hub id or local directory (see :class:`SeqDataModule`).
        source_language: the source side: its column, or its key in a ``translation`` column.
        target_language: the target side, likewise.
        tokenizer: subword model, ``bpe`` or ``unigram``.
        subword_vocab_size: subword vocabulary size of each tokenizer (special tokens included); not
            named ``vocab_size``, which the CLI links into models.
        joint_vocabulary: one tokenizer trained on both sides, instead of one per language.
        min_frequency: a BPE merge needs at least this many occurrences.
        max_source_length: keep at most this many source subwords (``</s>`` included).
        max_target_length: keep at most this many target subwords in training (``<s>``, ``</s>`` apart).
        batch_size: sentence pairs per batch.
        validation_fraction: share of the training split held out when the dataset has no validation split.
        **kwargs: see :class:`SeqDataModule` (streaming, batch size, splits, seed...).
    """

    def __init__(
        self,
        dataset: str,
        source_language: str = "en",
        target_language: str = "hi",
        tokenizer: SubwordModel = "bpe",
        subword_vocab_size: int = 8000,
        joint_vocabulary: bool = True,
        min_frequency: int = 2,
        max_source_length: int = 100,
        max_target_length: int = 100,
        batch_size: int = 64,
        validation_fraction: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, batch_size=batch_size, validation_fraction=validation_fraction, **kwargs)
        if source_language == target_language:
            raise ValueError(f"source_language and target_language are both {source_language!r}")
        if subword_vocab_size < len(SPECIAL_TOKENS) + 1:
            raise ValueError(f"subword_vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens")
        if max_source_length < 2 or max_target_length < 1:
            raise ValueError(
                f"max_source_length must be >= 2 and max_target_length >= 1, got "
                f"{max_source_length} and {max_target_length}"
            )
        self.source_language = source_language
        self.target_language = target_language
        self.tokenizer = tokenizer
        self.subword_vocab_size = subword_vocab_size
        self.joint_vocabulary = joint_vocabulary
        self.min_frequency = min_frequency
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self._codec: TranslationCodec | None = None

    # ---- the codec and the sizes the model links to ------------------------------------------------
    @property
    def codec(self) -> TranslationCodec:
        """The codec of the prepared tokenizers (training the tokenizers first if they are not yet)."""
        if self._codec is None:
            self._codec = TranslationCodec(
                self.prepared["source_tokenizer"],
                self.prepared["target_tokenizer"],
                self.max_source_length,
                self.max_target_length,
            )
        return self._codec

    @property
    def source_vocab_size(self) -> int:
        return self.codec.source_vocab_size

    @property
    def target_vocab_size(self) -> int:
        return self.codec.target_vocab_size

    @property
    def pad_index(self) -> int:
        return PAD_INDEX

    def artefacts(self) -> dict[str, Any]:
        return {
            **self.codec.artefacts(),
            "source_language": self.source_language,
            "target_language": self.target_language,
        }

    # ---- the prepare step --------------------------------------------------------------------------
    def prepare_settings(self) -> dict[str, Any]:
        return {
            "source_language": self.source_language,
            "target_language": self.target_language,
            "tokenizer": self.tokenizer,
            "vocab_size": self.subword_vocab_size,
            "joint_vocabulary": self.joint_vocabulary,
            "min_frequency": self.min_frequency,
        }

    def sort_keys(self, data: Any) -> Sequence[Any]:
        """(source length, target length): a pool sorted by source length alone left the targets of a
        batch ragged (23.5 % of the translation-tatoeba recipe's positions were padding)."""
        targets = pc.list_value_length(data.with_format("arrow")["target_ids"]).to_pylist()
        return list(zip(data["length"], targets, strict=True))

    def encode_settings(self) -> dict[str, Any]:
        return {"max_source_length": self.max_source_length, "max_target_length": self.max_target_length}

    def required_columns(self) -> list[str]:
        return [self.source_language, self.target_language]

    def input_columns(self) -> list[str]:
        return [self.source_language]  # a file to translate needs no references

    def check_columns(self, data: Any, split: str) -> None:
        columns = data.column_names
        if columns is None:
            columns = list(next(iter(data)).keys())
        if PAIR_COLUMN in columns and not all(c in columns for c in self.required_columns()):
            return  # the Hub layout: {language: text} dicts, checked row by row
        super().check_columns(data, split)

    def build_prepared(self, rows: Iterator[tuple[int, dict[str, Any]]], source: str) -> dict[str, Any]:
        """Train the tokenizers on the training rows, streamed: memory does not grow with the corpus.

        A joint tokenizer reads each pair's two texts in turn (the same tokenizer as training on all
        sources, then all targets: BPE and unigram training count words, so the order does not matter);
        separate ones read the sources while the targets are spooled to a temporary file, read back for
        the target tokenizer.
        """
        pairs = 0

        def texts(spool: Any = None) -> Iterator[str]:
            nonlocal pairs
            for index, row in rows:
                src, tgt = self.pair(row, index, source)
                pairs += 1
                yield src
                if spool is None:
                    yield tgt
                else:
                    spool.write(json.dumps(tgt, ensure_ascii=False) + "\n")

        def train(texts: Iterator[str]) -> str:
            first = next(texts, None)
            if first is None:
                raise DataError(source, "no training rows to train the tokenizers on")
            return train_subword_tokenizer(
                itertools.chain([first], texts), self.subword_vocab_size, self.tokenizer, self.min_frequency
            )

        if self.joint_vocabulary:
            source_json = target_json = train(texts())
        else:
            with tempfile.TemporaryFile("w+", encoding="utf-8", dir=cache_dir()) as spool:
                source_json = train(texts(spool))
                spool.seek(0)
                target_json = train(json.loads(line) for line in spool)
        return {"source_tokenizer": source_json, "target_tokenizer": target_json, "pairs": pairs}

    # ---- rows → examples ---------------------------------------------------------------------------
    def _has_target(self, row: dict[str, Any]) -> bool:
        pair = row.get(PAIR_COLUMN)
        return self.target_language in row or (
            isinstance(pair, dict) and pair.get(self.target_language) is not None
        )

    def source_text(self, row: dict[str, Any], index: int, source: str) -> str:
        """The source text of a row (either layout), checked like :meth:`pair` does."""
        if self.source_language in row:
            text, field = row[self.source_language], self.source_language
        elif isinstance(row.get(PAIR_COLUMN), dict):
            text, field = row[PAIR_COLUMN].get(self.source_language), f"{PAIR_COLUMN}.{self.source_language}"
        else:
            raise DataError(source, f"no {self.source_language!r} text in columns {sorted(row)}", row=index)
        try:
            return require_text(text)
        except ValueError as error:
            raise DataError(source, str(error), row=index, field=field) from None

    def pair(self, row: dict[str, Any], index: int, source: str) -> tuple[str, str]:
        """The (source, target) texts of a row, in either layout; bad input names the row and field."""
        texts = []
        for language in (self.source_language, self.target_language):
            if language in row:
                text, field = row[language], language
            elif isinstance(row.get(PAIR_COLUMN), dict):
                text, field = row[PAIR_COLUMN].get(language), f"{PAIR_COLUMN}.{language}"
            else:
                raise DataError(source, f"no {language!r} text in columns {sorted(row)}", row=index)
            try:
                texts.append(require_text(text))
            except ValueError as error:
                raise DataError(source, str(error), row=index, field=field) from None
        return texts[0], texts[1]

    def encode_row(self, row: dict[str, Any], index: int, source: str) -> dict[str, Any]:
        """An example; a row of the predict file (``predict_file``) needs only its source text."""
        if source == getattr(self, "predict_file", None) and not self._has_target(row):
            src = self.source_text(row, index, source)
            source_ids = self.codec.encode_source(src)
            return {
                "source_ids": source_ids,
                "target_ids": [],
                "length": len(source_ids),
                "target_text": "",
                "index": index,
            }
        src, tgt = self.pair(row, index, source)
        source_ids, target_ids = self.codec.encode_source(src), self.codec.encode_target(tgt)
        return {
            "source_ids": source_ids,
            "target_ids": target_ids,
            "length": len(source_ids),
            "target_text": tgt,
            "index": index,
        }

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        source, source_lengths = pad_sequences([e["source_ids"] for e in examples], PAD_INDEX)
        target, _ = pad_sequences([e["target_ids"] for e in examples], PAD_INDEX)
        return {
            "source": source,
            "source_lengths": source_lengths,
            "target_in": target[:, :-1].clone(),
            "target_out": target[:, 1:].clone(),
            "target_text": [e["target_text"] for e in examples],
            "indices": torch.tensor([e["index"] for e in examples], dtype=torch.long),
        }
