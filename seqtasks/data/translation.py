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

from collections.abc import Iterator
from typing import Any, Literal

import torch

from seqtasks.data.batching import pad_sequences
from seqtasks.data.datamodule import SeqDataModule
from seqtasks.data.errors import DataError
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

SubwordModel = Literal["bpe", "unigram"]


def train_subword_tokenizer(
    texts: list[str], vocab_size: int, model: SubwordModel = "bpe", min_frequency: int = 2
) -> str:
    """Train a reversible subword tokenizer on ``texts``; returns its JSON string (plain data)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if model == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            show_progress=False,
        )
    elif model == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="<unk>", show_progress=False
        )
    else:
        raise ValueError(f"tokenizer must be bpe or unigram, got {model!r}")
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation("isolated")]
    )
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, trainer)
    if tokenizer.token_to_id("<pad>") != PAD_INDEX or tokenizer.token_to_id("</s>") != EOS_INDEX:
        raise RuntimeError("the special tokens did not get their fixed ids")
    return tokenizer.to_str()


def load_tokenizer(json_string: str) -> Any:
    """A ``tokenizers.Tokenizer`` from the JSON string kept in prepared files and checkpoints."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json_string)


def require_text(text: Any) -> str:
    """The one rule for a text on either side, in training and at inference: a non-empty string.

    An empty (or all-whitespace) text is refused, never translated as an empty sentence: the DataModule
    names the row and field (:class:`DataError`), the inference API raises :class:`ValueError`.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a non-empty text, got {text!r}")
    return text


class TranslationCodec:
    """Texts ↔ subword ids, the same way for training batches and for inference.

    A source text becomes its subwords, cut to ``max_source_length - 1``, then ``</s>``; a target text
    becomes ``<s>``, its subwords cut to ``max_target_length``, then ``</s>``. Ids become text again by the
    target tokenizer's decoder, special tokens dropped. Bad input: see :func:`require_text` (an empty text
    is refused). Its state (:meth:`artefacts`) is plain data: the tokenizers' JSON strings and the lengths.

    Args:
        source_tokenizer: the source tokenizer's JSON string (as :func:`train_subword_tokenizer` returns it).
        target_tokenizer: the target tokenizer's JSON string (the same string for a joint vocabulary).
        max_source_length: keep at most this many source subwords (``</s>`` included).
        max_target_length: keep at most this many target subwords (``<s>``, ``</s>`` apart).
    """

    def __init__(
        self,
        source_tokenizer: str,
        target_tokenizer: str,
        max_source_length: int = 100,
        max_target_length: int = 100,
    ) -> None:
        self.source_json, self.target_json = source_tokenizer, target_tokenizer
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.source_tokenizer = load_tokenizer(source_tokenizer)
        self.target_tokenizer = (
            self.source_tokenizer
            if target_tokenizer == source_tokenizer
            else load_tokenizer(target_tokenizer)
        )

    @classmethod
    def from_artefacts(cls, artefacts: dict[str, Any]) -> TranslationCodec:
        """The codec a checkpoint's artefacts describe."""
        return cls(
            artefacts["source_tokenizer"],
            artefacts["target_tokenizer"],
            artefacts.get("max_source_length", 100),
            artefacts.get("max_target_length", 100),
        )

    def artefacts(self) -> dict[str, Any]:
        """The codec's state as plain data (the checkpoint keys)."""
        return {
            "source_tokenizer": self.source_json,
            "target_tokenizer": self.target_json,
            "max_source_length": self.max_source_length,
        }

    @property
    def source_vocab_size(self) -> int:
        return self.source_tokenizer.get_vocab_size()

    @property
    def target_vocab_size(self) -> int:
        return self.target_tokenizer.get_vocab_size()

    def encode_source(self, text: str) -> list[int]:
        ids = self.source_tokenizer.encode(require_text(text)).ids
        return [*ids[: self.max_source_length - 1], EOS_INDEX]

    def encode_target(self, text: str) -> list[int]:
        ids = self.target_tokenizer.encode(require_text(text)).ids
        return [BOS_INDEX, *ids[: self.max_target_length], EOS_INDEX]

    def source_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded source ids ``(B, S)`` and lengths ``(B,)`` of ``texts``, in the given order."""
        return pad_sequences([self.encode_source(text) for text in texts], PAD_INDEX)

    def decode(self, ids: list[int]) -> str:
        """Target ids → plain text (special tokens dropped)."""
        return self.target_tokenizer.decode(list(ids), skip_special_tokens=True)

    def source_tokens(self, ids: list[int]) -> list[str]:
        return [self.source_tokenizer.id_to_token(int(i)) for i in ids]

    def target_tokens(self, ids: list[int]) -> list[str]:
        return [self.target_tokenizer.id_to_token(int(i)) for i in ids]


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

    def encode_settings(self) -> dict[str, Any]:
        return {"max_source_length": self.max_source_length, "max_target_length": self.max_target_length}

    def required_columns(self) -> list[str]:
        return [self.source_language, self.target_language]

    def check_columns(self, data: Any, split: str) -> None:
        columns = data.column_names
        if columns is None:
            columns = list(next(iter(data)).keys())
        if PAIR_COLUMN in columns and not all(c in columns for c in self.required_columns()):
            return  # the Hub layout: {language: text} dicts, checked row by row
        super().check_columns(data, split)

    def build_prepared(self, rows: Iterator[tuple[int, dict[str, Any]]], source: str) -> dict[str, Any]:
        sources, targets = [], []
        for index, row in rows:
            src, tgt = self.pair(row, index, source)
            sources.append(src)
            targets.append(tgt)
        if not sources:
            raise DataError(source, "no training rows to train the tokenizers on")
        train = lambda texts: train_subword_tokenizer(  # noqa: E731
            texts, self.subword_vocab_size, self.tokenizer, self.min_frequency
        )
        if self.joint_vocabulary:
            joint = train(sources + targets)
            source_json, target_json = joint, joint
        else:
            source_json, target_json = train(sources), train(targets)
        return {"source_tokenizer": source_json, "target_tokenizer": target_json, "pairs": len(sources)}

    # ---- rows → examples ---------------------------------------------------------------------------
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
