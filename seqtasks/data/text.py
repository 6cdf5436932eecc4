"""The text codec of the classifiers: word tokenizer + vocabulary, text → token ids.

Training (:class:`~seqtasks.data.classification.TextClassificationDataModule`) and inference
(:class:`~seqtasks.inference.classification.Classifier`) both encode text with :class:`TextCodec`; its
state is plain data (lists, dicts) in the checkpoints.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from seqtasks.errors import SeqtasksError

PAD = "<pad>"
UNK = "<unk>"

_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


class WordTokenizer:
    """Splits text into words and punctuation; lower-cases and drops HTML line breaks when asked.

    Args:
        lowercase: fold case before splitting.
        strip_html: replace ``<br />`` tags (IMDB keeps them) with spaces.
    """

    def __init__(self, lowercase: bool = True, strip_html: bool = True) -> None:
        self.lowercase = lowercase
        self.strip_html = strip_html

    def __call__(self, text: str) -> list[str]:
        if self.strip_html:
            text = _HTML_BREAK.sub(" ", text)
        if self.lowercase:
            text = text.lower()
        return _TOKEN.findall(text)

    def state_dict(self) -> dict[str, Any]:
        return {"lowercase": self.lowercase, "strip_html": self.strip_html}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WordTokenizer:
        return cls(**state)


class Vocabulary:
    """Token ↔ index. Index 0 is padding, index 1 the unknown token."""

    def __init__(self, tokens: list[str]) -> None:
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {tokens[:2]}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary must not repeat tokens")
        self.tokens = tokens
        self.index = {token: i for i, token in enumerate(tokens)}

    pad_index = 0
    unk_index = 1

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        get = self.index.get
        return [get(token, 1) for token in tokens]

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Most frequent first, ties broken alphabetically, so the same data gives the same file."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls([PAD, UNK, *ranked])


class EmptyTextError(SeqtasksError):
    """A text with no words in it (empty, blank, or only HTML line breaks): there is nothing to encode."""


def split_words(tokenizer: WordTokenizer, text: str) -> list[str]:
    """The words of ``text``; :class:`EmptyTextError` when there are none (see :class:`TextCodec`)."""
    words = tokenizer(text)
    if not words:
        raise EmptyTextError(f"empty text {text[:40]!r}: it has no words to classify")
    return words


class TextCodec:
    """Tokenizer + vocabulary: text → token ids, the same in training and at inference.

    Bad input, one decision each, in training and at inference alike:

    * an **empty text** (no words after tokenising: ``""``, blanks, only ``<br />``) is refused with
      :class:`EmptyTextError`; the DataModule reports it as a :class:`~seqtasks.data.errors.DataError`
      naming the file, row and column, the :class:`~seqtasks.inference.classification.Classifier` names
      the input's number;
    * an **unknown word** becomes ``<unk>`` (a text of unknown words only is still classified);
    * a **long text** keeps its first ``max_length`` tokens.

    Args:
        tokenizer: splits text into words.
        vocabulary: word → id.
        max_length: keep at most this many tokens (the first ones); None keeps all.
    """

    def __init__(
        self, tokenizer: WordTokenizer, vocabulary: Vocabulary, max_length: int | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
        self.max_length = max_length

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, at most ``max_length``; :class:`EmptyTextError` for an empty text."""
        ids = self.vocabulary.encode(split_words(self.tokenizer, text))
        return ids[: self.max_length] if self.max_length else ids

    __call__ = encode

    def state_dict(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer.state_dict(),
            "vocabulary": list(self.vocabulary.tokens),
            "max_length": self.max_length,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextCodec:
        return cls(
            WordTokenizer.from_state(state["tokenizer"]),
            Vocabulary(list(state["vocabulary"])),
            state["max_length"],
        )
