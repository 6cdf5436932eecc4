"""Token tagging data (NER, chunking): one tag per token, from Parquet splits or raw CoNLL files.

Each row holds a list of tokens and a list of tags of the same length. The prepare step builds, from the
training rows only, the word vocabulary (normalised: lower-cased when asked, digits → ``0``), the
character vocabulary and the tag list; a word's casing (all caps, capitalised, numeric...) travels as a
small feature of its own (:func:`seqtasks.nn.chars.casing`), so lower-casing the vocabulary loses nothing
the model could use. :class:`TaggingCodec` is the one encoding of tokens, in training and at inference.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from seqtasks.data.batching import pad_sequences
from seqtasks.data.conll import read_conll
from seqtasks.data.datamodule import SeqDataModule, _atomic_write_json
from seqtasks.data.errors import DataError
from seqtasks.data.sources import ResolvedDataset, cache_dir, load_split
from seqtasks.data.text import PAD, UNK, Vocabulary
from seqtasks.data.vectors import read_word_vectors
from seqtasks.nn.chars import casing
from seqtasks.tags import Scheme, to_iob2

_DIGIT = re.compile(r"\d")
_TOKEN = re.compile(r"(?:\w\.){2,}|\d+(?:[.,:/-]\d+)+|\w+(?:[-'&]\w+)*|[^\w\s]")
"""Abbreviations (U.S.), numbers (3.5, 1996-08-22), words with inner hyphens or apostrophes, punctuation."""


def normalise_word(token: str, lowercase: bool) -> str:
    """The vocabulary's form of a word: digits → 0, lower-cased when ``lowercase``."""
    token = _DIGIT.sub("0", token)
    return token.lower() if lowercase else token


def tokenize(text: str) -> list[str]:
    """Split raw text into CoNLL-like tokens (words, numbers, punctuation), for tagging free text."""
    return _TOKEN.findall(text)


class TaggingCodec:
    """Tokens → word ids, character ids and casing ids: the one encoding of training and inference.

    The DataModule encodes its rows with it and the inference API (:class:`seqtasks.inference.tagging.Tagger`)
    encodes what it is asked to tag with it, from the checkpoint's ``tagging_codec`` artefact (its
    :meth:`state_dict`, plain data). One decision per bad input, the same in training and at inference:

    * an empty sentence (no tokens) is refused: :meth:`encode` raises ``ValueError`` (the DataModule
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
            raise ValueError("an empty sentence (no tokens) cannot be tagged")
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


def collate_tagged(examples: list[dict[str, Any]], pad_index: int = 0) -> dict[str, torch.Tensor]:
    """Pad words, tags, casing ``(B, T)`` and characters ``(B, T, L)``."""
    words, lengths = pad_sequences([e["words"] for e in examples], pad_index)
    casing_ids, _ = pad_sequences([e["casing"] for e in examples], 0)
    batch = {"words": words, "lengths": lengths, "casing": casing_ids}
    width = max((len(c) for e in examples for c in e["chars"]), default=1)
    time = words.size(1)
    empty = [pad_index] * width
    rows = [  # one tensor from nested lists: a tensor per word costs more than the model's step on CPU
        [c + [pad_index] * (width - len(c)) for c in e["chars"]] + [empty] * (time - len(e["chars"]))
        for e in examples
    ]
    batch["chars"] = torch.tensor(rows, dtype=torch.long).view(len(examples), time, width)
    if examples and "tags" in examples[0]:
        batch["tags"], _ = pad_sequences([e["tags"] for e in examples], 0)
    if examples and "index" in examples[0]:
        batch["indices"] = torch.tensor([e["index"] for e in examples], dtype=torch.long)
    return batch


class TokenTaggingDataModule(SeqDataModule):
    """Tokens and one tag per token, from Parquet splits or raw CoNLL column files.

    Args:
        dataset: Hub id or local directory (see :class:`SeqDataModule`).
        tokens_column: column holding each row's list of tokens.
        tags_column: column holding each row's list of tags (strings).
        tag_scheme: scheme of the tags column (``iob1``, ``iob2``, ``bioes``); converted to IOB2.
        labels: the tag names in order; by default ``O`` then ``B-X``, ``I-X`` for each type X found in
            the training split, types sorted.
        conll_files: read raw CoNLL column files instead of Parquet: split name → file (relative to the
            dataset directory unless absolute), e.g. ``{train: raw/eng.train, ...}``.
        conll_label_column: the label column of those files (negative counts from the end).
        conll_scheme: the tag scheme of those files (the original CoNLL-2003 files are ``iob1``).
        lowercase: lower-case the word vocabulary (characters and the casing feature keep the case).
        min_freq: a word enters the vocabulary when it occurs at least this often in training.
        max_word_length: characters kept of each word for the character features.
        word_vectors: a GloVe-style text file of word vectors (``seqtasks word-vectors`` writes one): its
            words join the vocabulary after the training words, so words never seen in training still
            have an embedding, and the tagger starts every word it holds from its vector. Its words must
            be normalised like the vocabulary (digits → ``0``; lower-cased when ``lowercase``).
        **kwargs: see :class:`SeqDataModule` (batch size, splits, seed...).
    """

    def __init__(
        self,
        dataset: str,
        tokens_column: str = "tokens",
        tags_column: str = "ner_tags",
        tag_scheme: Scheme = "iob2",
        labels: list[str] | None = None,
        conll_files: dict[str, str] | None = None,
        conll_label_column: int = -1,
        conll_scheme: Scheme = "iob1",
        lowercase: bool = True,
        min_freq: int = 1,
        max_word_length: int = 20,
        word_vectors: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, **kwargs)
        if labels is not None and (len(set(labels)) != len(labels) or "O" not in labels):
            raise ValueError(f"labels must be distinct and include 'O', got {labels}")
        if min_freq < 1 or max_word_length < 1:
            raise ValueError(
                f"min_freq and max_word_length must be positive, got {min_freq}, {max_word_length}"
            )
        self.tokens_column = tokens_column
        self.tags_column = tags_column
        self.tag_scheme = tag_scheme
        self.label_names = labels
        self.conll_files = dict(conll_files) if conll_files else None
        self.conll_label_column = conll_label_column
        self.conll_scheme = conll_scheme
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.max_word_length = max_word_length
        self.word_vectors = word_vectors
        self._codec: TaggingCodec | None = None
        self._converted: ResolvedDataset | None = None
        self._tag_index: dict[str, int] | None = None

    # ---- sizes the model links to ------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.prepared["words"])

    @property
    def char_vocab_size(self) -> int:
        return len(self.prepared["chars"])

    @property
    def pad_index(self) -> int:
        return Vocabulary.pad_index

    @property
    def labels(self) -> list[str]:
        return list(self.prepared["labels"])

    @property
    def codec(self) -> TaggingCodec:
        """The codec of the prepared vocabularies (built on first use)."""
        if self._codec is None:
            prepared = self.prepared
            self._codec = TaggingCodec(
                prepared["words"], prepared["chars"], self.lowercase, self.max_word_length
            )
        return self._codec

    def artefacts(self) -> dict[str, Any]:
        """The codec's state (``tagging_codec``) and the tag names (``labels``), as plain data."""
        return {"tagging_codec": self.codec.state_dict(), "labels": self.labels}

    # ---- raw CoNLL files: converted once to Parquet under the cache ----------------------------------
    @property
    def resolved(self) -> ResolvedDataset:
        if self._converted is None:
            base = super().resolved
            self._converted = self._convert_conll(base) if self.conll_files else base
        return self._converted

    def _convert_conll(self, base: ResolvedDataset) -> ResolvedDataset:
        files = {}
        for split, name in (self.conll_files or {}).items():
            path = name if os.path.isabs(name) or base.kind != "local" else os.path.join(base.location, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"conll_files[{split!r}]: no file {path!r}")
            stat = os.stat(path)
            files[split] = (os.path.abspath(path), stat.st_size, int(stat.st_mtime))
        key = json.dumps([files, self.conll_label_column, self.conll_scheme], sort_keys=True)
        target = cache_dir() / "conll" / hashlib.sha1(key.encode()).hexdigest()[:12]
        if not (target / "done.json").exists():
            target.mkdir(parents=True, exist_ok=True)
            for split, (path, _, _) in files.items():
                sentences = list(read_conll(path, self.conll_label_column, self.conll_scheme))
                table = pa.table(
                    {
                        self.tokens_column: [s.tokens for s in sentences],
                        self.tags_column: [s.tags for s in sentences],
                        "document_id": [s.document_id for s in sentences],
                        "line": [s.line for s in sentences],
                    }
                )
                pq.write_table(table, target / f"{split}.parquet")
            _atomic_write_json(target / "done.json", {"files": files})
        return ResolvedDataset(self.dataset, "local", str(target))

    # ---- the prepare step --------------------------------------------------------------------------
    def prepare_settings(self) -> dict[str, Any]:
        return {
            "tokens_column": self.tokens_column,
            "tags_column": self.tags_column,
            "tag_scheme": self.tag_scheme,
            "labels": self.label_names,
            "conll_files": self.conll_files,
            "conll_label_column": self.conll_label_column,
            "conll_scheme": self.conll_scheme,
            "lowercase": self.lowercase,
            "min_freq": self.min_freq,
            "word_vectors": self._vectors_stamp(),
        }

    def _vectors_stamp(self) -> list[Any] | None:
        if self.word_vectors is None:
            return None
        if not os.path.isfile(self.word_vectors):
            raise FileNotFoundError(f"word_vectors: no file {self.word_vectors!r}")
        stat = os.stat(self.word_vectors)
        return [os.path.abspath(self.word_vectors), stat.st_size, int(stat.st_mtime)]

    def encode_settings(self) -> dict[str, Any]:
        return {"max_word_length": self.max_word_length}

    def required_columns(self) -> list[str]:
        return [self.tokens_column, self.tags_column]

    def _row(self, row: dict[str, Any], index: int, source: str) -> tuple[list[str], list[str]]:
        tokens, tags = row.get(self.tokens_column), row.get(self.tags_column)
        if not isinstance(tokens, list) or not tokens:
            raise DataError(
                source, "expected a non-empty list of tokens", row=index, field=self.tokens_column
            )
        if not isinstance(tags, list) or len(tags) != len(tokens):
            got = len(tags) if isinstance(tags, list) else type(tags).__name__
            raise DataError(
                source,
                f"expected {len(tokens)} tags (one per token), got {got}",
                row=index,
                field=self.tags_column,
            )
        return tokens, to_iob2([str(t) for t in tags], self.tag_scheme)

    def build_prepared(self, rows: Iterator[tuple[int, dict[str, Any]]], source: str) -> dict[str, Any]:
        words: Counter[str] = Counter()
        chars: Counter[str] = Counter()
        types: set[str] = set()
        for index, row in rows:
            tokens, tags = self._row(row, index, source)
            words.update(normalise_word(t, self.lowercase) for t in tokens)
            for token in tokens:
                chars.update(token)
            types.update(t[2:] for t in tags if t != "O")
        word_list = sorted((w for w, c in words.items() if c >= self.min_freq), key=lambda w: (-words[w], w))
        char_list = sorted(chars, key=lambda c: (-chars[c], c))
        labels = self.label_names or ["O"] + [f"{p}-{t}" for t in sorted(types) for p in ("B", "I")]
        if self.word_vectors is not None:
            known = {PAD, UNK, *word_list}
            vector_words, _ = read_word_vectors(self.word_vectors, words_only=True)
            word_list += [w for w in vector_words if w not in known]
        return {"words": [PAD, UNK, *word_list], "chars": [PAD, UNK, *char_list], "labels": labels}

    # ---- rows → examples ---------------------------------------------------------------------------
    def encode_row(self, row: dict[str, Any], index: int, source: str) -> dict[str, Any]:
        if self._tag_index is None:
            self._tag_index = {t: i for i, t in enumerate(self.prepared["labels"])}
        tokens, tags = self._row(row, index, source)
        unknown = [t for t in tags if t not in self._tag_index]
        if unknown:
            raise DataError(
                source,
                f"tag {unknown[0]!r} is not in the tag set {list(self._tag_index)}",
                row=index,
                field=self.tags_column,
            )
        example = self.codec.encode(tokens)
        example.update(tags=[self._tag_index[t] for t in tags], index=index)
        return example

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate_tagged(examples, self.pad_index)

    def split_rows(self, split: str) -> list[dict[str, Any]]:
        """The raw rows of one split (tokens and IOB2 tags), for writing predictions next to them."""
        data = load_split(self.resolved, split)
        return [
            {"tokens": r[self.tokens_column], "tags": to_iob2(r[self.tags_column], self.tag_scheme)}
            for r in data
        ]
