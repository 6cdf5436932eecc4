"""The tagging codec: raw text → CoNLL-2003-like tokens (with character offsets), tokens → word, character
and casing ids, examples → batches. The DataModule and inference (:mod:`seqtasks.inference.tagging`) both
use it, so a sentence is encoded the same way in training and at inference. No Lightning, no datasets.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from seqtasks.data.batching import pad_sequences
from seqtasks.data.columns import pad_nested_flat
from seqtasks.data.text import Vocabulary
from seqtasks.nn.chars import casing

_DIGIT = re.compile(r"\d")
_CLITIC = r"(?:s|re|ve|ll|m|d)\b"
"""What follows the apostrophe of the clitics CoNLL-2003 (like the Penn Treebank) writes as tokens of their
own: 's 're 've 'll 'm 'd (and n't)."""
_ABBREVIATIONS = (
    "Mr Mrs Ms Dr St Jr Sr Inc Corp Co Ltd Bros vs Gen Lt Col Sgt Capt Rev Gov Sen Rep Prof Mt Ft Ave "
    "Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec Calif Fla Ariz Colo Conn Mass Mich Minn Tenn Wash "
    "Wis vol"
)
_TOKEN = re.compile(
    "|".join(
        [
            rf"(?i:'{_CLITIC}|(?<=\w)n't\b)",  # Merkel|'s, do|n't
            r"\w+(?=(?i:n't)\b)",  # the word before n't: do|n't, ca|n't
            r"(?:[^\W\d_]\.){2,}(?:-\w+)*",  # U.S., a.m., F.B.I., U.S.-led
            rf"(?:{'|'.join(_ABBREVIATIONS.split())})\.(?=\s+\S)",  # Mr. Inc. vs. (not at the end)
            r"[A-Z]\.(?=\s+\S)",  # an initial: M. Waugh
            r"^\d{1,2}\.(?=\s)",  # a ranking at the start: 1. Michael Johnson
            r"[A-Z]{1,2}\$",  # currencies: US$ C$ HK$
            # numbers: 3.5 1,000 1996-08-22 6-4 3-1/2 +44 .500 10th 1980s
            r"[+]?\.?\d+(?:[.,:/]\d+)*\w*(?:-\w+(?:[.,:/]\d+)*)*",
            rf"\w+(?:(?:[-&]|(?i:'(?!{_CLITIC})))\w+)*",  # Anglo-Dutch S&P O'Brien, not Merkel's
            r"-{2,}|\.{2,}|\*{2,}",  # -- ... **
            r"[^\w\s]",  # any other punctuation: ( ) " , . ' $ %
        ]
    )
)
"""CoNLL-2003's token boundaries (measured against its training tokens: see :func:`tokenize_spans`)."""


class EmptySentenceError(ValueError):
    """A sentence with no tokens: there is nothing to tag (refused in training and at inference alike)."""


def normalise_word(token: str, lowercase: bool) -> str:
    """The vocabulary's form of a word: digits → 0, lower-cased when ``lowercase``."""
    token = _DIGIT.sub("0", token)
    return token.lower() if lowercase else token


def tokenize_spans(text: str) -> list[tuple[str, int, int]]:
    """CoNLL-2003 tokens of raw text with their character spans: ``(token, start, end)``, ``text[start:end]``
    being the token.

    The rules follow the corpus's own tokens (Reuters, Penn-Treebank-like): punctuation and brackets are
    tokens (``(Reuters)`` → ``( Reuters )``), clitics are split off (``Merkel's`` → ``Merkel 's``,
    ``don't`` → ``do n't``), while abbreviations (``U.S.``, ``Inc.``, initials), numbers (``3.5``,
    ``1,000``, ``1996-08-22``, scores ``6-4``), currencies (``US$``) and hyphenated words
    (``Anglo-Dutch``) stay whole; ``%`` and ``$`` are tokens of their own, as in the corpus. On the first
    2,000 CoNLL-2003 training sentences (``benchmarks/conll_tokenizer.py``) it gives back 99.91% of the
    gold tokens (98.90% of sentences exactly), from the tokens joined by spaces and from the detokenised
    text alike; the former plain word/number/punctuation rule gave 97.79% (73.20%) and 96.83% (72.55%).
    """
    return [(match.group(), match.start(), match.end()) for match in _TOKEN.finditer(text)]


def tokenize(text: str) -> list[str]:
    """Split raw text into CoNLL-2003 tokens (see :func:`tokenize_spans`, which also gives the offsets)."""
    return [match.group() for match in _TOKEN.finditer(text)]


class TaggingCodec:
    """Tokens → word ids, character ids and casing ids: the one encoding of training and inference.

    The DataModule encodes its rows with it and the inference API (:class:`seqtasks.inference.tagging.Tagger`)
    encodes what it is asked to tag with it, from the checkpoint's ``tagging_codec`` artefact (its
    :meth:`state_dict`, plain data). One decision per bad input, the same in training and at inference:

    * an empty sentence (no tokens) is refused: :meth:`encode` raises :class:`EmptySentenceError`, a
      ``ValueError`` (the DataModule
      reports it as a :class:`~seqtasks.data.errors.DataError` naming the row, the inference API names the
      sentence);
    * a word outside the vocabulary (after normalisation: digits → ``0``, lower-cased when ``lowercase``)
      is the unknown word, id 1; a character outside the character vocabulary is the unknown character;
    * a word longer than ``max_word_length`` keeps its first ``max_word_length`` characters for the
      character features (its word id and casing still see all of it); an empty-string token has one
      unknown character.

    Args:
        words: the word vocabulary (``<pad>``, ``<unk>`` first).
        chars: the character vocabulary (``<pad>``, ``<unk>`` first).
        lowercase: the vocabulary is lower-cased.
        max_word_length: characters kept of each word for the character features.
    """

    def __init__(
        self, words: list[str], chars: list[str], lowercase: bool = True, max_word_length: int = 20
    ) -> None:
        self.words = Vocabulary(words)
        self.chars = Vocabulary(chars)
        self.lowercase = lowercase
        self.max_word_length = max_word_length

    def encode(self, tokens: Sequence[str]) -> dict[str, Any]:
        """``{"words", "chars", "casing", "length"}`` of one non-empty sentence."""
        if not tokens:
            raise EmptySentenceError("an empty sentence (no tokens) cannot be tagged")
        word_index, char_index = self.words.index, self.chars.index
        return {
            "words": [word_index.get(normalise_word(t, self.lowercase), 1) for t in tokens],
            "chars": [[char_index.get(c, 1) for c in t[: self.max_word_length]] or [1] for t in tokens],
            "casing": [casing(t) for t in tokens],
            "length": len(tokens),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "words": list(self.words.tokens),
            "chars": list(self.chars.tokens),
            "lowercase": self.lowercase,
            "max_word_length": self.max_word_length,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TaggingCodec:
        return cls(state["words"], state["chars"], state["lowercase"], state["max_word_length"])


def pad_characters(sentences: list[list[list[int]]], time: int, pad_index: int = 0) -> torch.Tensor:
    """``(B, time, L)`` character ids of ``B`` sentences' words, right-padded to the longest word ``L``.

    Built from one flat array of every character id and index arithmetic (:func:`pad_nested_flat`, which
    also pads Arrow columns): padding nested Python lists word by word cost more than the tagger's
    training step on CPU.
    """
    words = [chars for sentence in sentences for chars in sentence]
    return pad_nested_flat(
        np.fromiter(itertools.chain.from_iterable(words), dtype=np.int64),
        np.fromiter(map(len, words), dtype=np.int64, count=len(words)),
        np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences)),
        time,
        pad_index,
    )


def collate_tagged(examples: list[dict[str, Any]], pad_index: int = 0) -> dict[str, torch.Tensor]:
    """Pad words, tags, casing ``(B, T)`` and characters ``(B, T, L)``."""
    words, lengths = pad_sequences([e["words"] for e in examples], pad_index)
    casing_ids, _ = pad_sequences([e["casing"] for e in examples], 0)
    batch = {"words": words, "lengths": lengths, "casing": casing_ids}
    batch["chars"] = pad_characters([e["chars"] for e in examples], words.size(1), pad_index)
    if examples and "tags" in examples[0]:
        batch["tags"], _ = pad_sequences([e["tags"] for e in examples], 0)
    if examples and "index" in examples[0]:
        batch["indices"] = torch.tensor([e["index"] for e in examples], dtype=torch.long)
    if examples and "tokens" in examples[0]:  # the raw tokens, for writing predictions (not a tensor)
        batch["tokens"] = [list(e["tokens"]) for e in examples]
    return batch
