"""The translation codec: subword tokenizers (trained by the prepare step, kept as JSON strings in the
checkpoint), texts → ids and ids → text. The DataModule and inference (:mod:`seqtasks.inference.translation`)
both use it. No Lightning, no datasets.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from seqtasks.data.batching import pad_sequences
from seqtasks.networks.seq2seq import BOS_INDEX, EOS_INDEX, PAD_INDEX, SPECIAL_TOKENS

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
