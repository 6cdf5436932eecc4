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
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from seqtasks.data.columns import int_column, pad_list_column, pad_nested_column
from seqtasks.data.conll import ConllFormatError, read_conll, read_lines
from seqtasks.data.datamodule import SeqDataModule, _atomic_write_json
from seqtasks.data.errors import DataError
from seqtasks.data.sources import ResolvedDataset, cache_dir, load_split
from seqtasks.data.tagging_codec import (  # noqa: F401  (the codec's home; re-exported)
    TaggingCodec,
    collate_tagged,
    normalise_word,
    tokenize,
    tokenize_spans,
)
from seqtasks.data.text import PAD, UNK, Vocabulary
from seqtasks.data.vectors import read_word_vectors
from seqtasks.tags import Scheme, to_iob2


def _read_column_file(
    path: str, label_column: int, scheme: Scheme
) -> Iterator[tuple[list[str], list[str] | None]]:
    """``(tokens, IOB2 tags or None)`` of each sentence of a CoNLL column file; one column: no tags."""
    first = next((line.split() for _, line in read_lines(path) if line.strip()), None)
    if first is not None and len(first) == 1 and first[0] != "-DOCSTART-":
        tokens: list[str] = []
        for _, line in read_lines(path):
            parts = line.split()
            if parts and parts[0] != "-DOCSTART-":
                tokens.append(parts[0])
            elif tokens:
                yield tokens, None
                tokens = []
        if tokens:
            yield tokens, None
        return
    for sentence in read_conll(path, label_column, scheme):
        yield sentence.tokens, sentence.tags


def class_label_names(feature: Any) -> list[str] | None:
    """The tag names of a tags column stored as class ids: a (list of) ``datasets.ClassLabel`` feature's
    names, as the Hub's ``conll2003`` stores ``ner_tags``; None when the feature has no names."""
    inner = getattr(feature, "feature", feature)  # Sequence/List(ClassLabel) → ClassLabel
    names = getattr(inner, "names", None)
    return list(names) if names else None


class TokenTaggingDataModule(SeqDataModule):
    """Tokens and one tag per token, from Parquet splits or raw CoNLL column files.

    Args:
        dataset: Hub id or local directory (see :class:`SeqDataModule`).
        tokens_column: column holding each row's list of tokens.
        tags_column: column holding each row's list of tags: strings, or class ids with a datasets
            ``ClassLabel`` feature (as the Hub's ``conll2003`` stores ``ner_tags``), read as its names;
            ids without names are refused.
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
        self._class_names: dict[str, list[str] | None] = {}  # source → ClassLabel names of the tags column
        self._conll_sources: dict[str, str] = {}  # converted split's Parquet → the user's CoNLL file

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
        # version 2: a "conll_tags" column keeps the tags as written, for errors in the user's terms
        key = json.dumps([files, self.conll_label_column, self.conll_scheme, 2], sort_keys=True)
        target = cache_dir() / "conll" / hashlib.sha1(key.encode()).hexdigest()[:12]
        self._conll_sources = {
            os.path.abspath(target / f"{split}.parquet"): path for split, (path, _, _) in files.items()
        }
        if not (target / "done.json").exists():
            target.mkdir(parents=True, exist_ok=True)
            for split, (path, _, _) in files.items():
                sentences = list(read_conll(path, self.conll_label_column, self.conll_scheme))
                if not sentences:
                    raise DataError(
                        path, f"split {split!r} holds no rows (no sentences: empty, or only -DOCSTART- lines)"
                    )
                table = pa.table(
                    {
                        self.tokens_column: [s.tokens for s in sentences],
                        self.tags_column: [s.tags for s in sentences],
                        "document_id": [s.document_id for s in sentences],
                        "line": [s.line for s in sentences],
                        "conll_tags": [s.columns[self.conll_label_column] for s in sentences],
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
        return {"max_word_length": self.max_word_length, "keeps_tokens": True}

    def required_columns(self) -> list[str]:
        return [self.tokens_column, self.tags_column]

    def check_columns(self, data: Any, split: str) -> None:
        """The base class's check, and the ClassLabel names of the tags column when it holds class ids."""
        super().check_columns(data, split)
        features = getattr(data, "features", None) or {}
        self._class_names[self.resolved.describe(split)] = class_label_names(features.get(self.tags_column))

    def describe_split(self, split: str) -> str:
        """A converted CoNLL split is named by the user's file, not the cache's Parquet."""
        source = self.resolved.describe(split)
        return self._conll_sources.get(os.path.abspath(source), source)

    def _tag_strings(self, tags: list[Any], index: int, source: str) -> list[str]:
        """Tags as strings: class ids become their ClassLabel names; ids without names are refused."""
        if not any(isinstance(t, int) and not isinstance(t, bool) for t in tags):
            return [str(t) for t in tags]
        names = self._class_names.get(source)
        if names is None:
            raise DataError(
                source,
                "the tags are integers (class ids) but the dataset gives no names for them (no ClassLabel "
                "feature on the column); store the tags as strings, or as a datasets ClassLabel feature",
                row=index,
                field=self.tags_column,
            )
        bad = next((t for t in tags if not isinstance(t, int) or not 0 <= t < len(names)), None)
        if bad is not None:
            raise DataError(
                source,
                f"tag id {bad!r} is not an id of the column's ClassLabel names {names}",
                row=index,
                field=self.tags_column,
            )
        return [names[t] for t in tags]

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
        return tokens, to_iob2(self._tag_strings(tags, index, source), self.tag_scheme)

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
        """The codec's encoding of a row, its tag ids and its raw ``tokens`` (for the predict stage's
        writer). A row without the tags column (a predict file without gold tags, see
        :meth:`read_predict_rows`) has no ``tags``."""
        if self._tag_index is None:
            self._tag_index = {t: i for i, t in enumerate(self.prepared["labels"])}
        if self.tags_column not in row:
            tokens = row.get(self.tokens_column)
            if not isinstance(tokens, list) or not tokens:
                raise DataError(
                    source, "expected a non-empty list of tokens", row=index, field=self.tokens_column
                )
            return {**self.codec.encode(tokens), "tokens": list(tokens), "index": index}
        tokens, tags = self._row(row, index, source)
        unknown = [i for i, t in enumerate(tags) if t not in self._tag_index]
        if unknown:
            position = unknown[0]
            user_file = self._conll_sources.get(os.path.abspath(source))
            if user_file is not None and "line" in row and "conll_tags" in row:
                # a converted CoNLL file: name the user's file, the token's line and the tag as written
                written = row["conll_tags"][position]
                converted = "" if written == tags[position] else f" (read as {tags[position]!r} in IOB2)"
                raise ConllFormatError(
                    user_file,
                    row["line"] + position,
                    f"tag {written!r}{converted} is not in the tag set learned from the training split "
                    f"{list(self._tag_index)}",
                )
            raise DataError(
                source,
                f"tag {tags[position]!r} is not in the tag set {list(self._tag_index)}",
                row=index,
                field=self.tags_column,
            )
        example = self.codec.encode(tokens)
        example.update(tags=[self._tag_index[t] for t in tags], index=index, tokens=list(tokens))
        return example

    def read_predict_rows(self, path: str) -> list[dict[str, Any]]:
        """The sentences of a predict file: ``.txt`` one raw sentence per line, split like CoNLL-2003
        (:func:`tokenize`; a blank line is a row too, refused as an empty sentence naming its row);
        ``.jsonl``/``.json``/``.parquet``/``.csv`` rows with the recipe's columns (tokens and gold tags);
        anything else a CoNLL column file (token first): with two or more columns its label column
        (``conll_label_column``, scheme ``conll_scheme``) is the gold tags, with one column there are none.
        A file without a sentence (empty, ``-DOCSTART-`` only) is refused."""
        if not os.path.isfile(path):
            raise DataError(path, "no such file")
        if path.endswith(".txt"):
            lines = super().read_predict_rows(path)  # one row per line, the line under tokens_column
            return [{self.tokens_column: tokenize(row[self.tokens_column])} for row in lines]
        if path.endswith((".jsonl", ".json", ".parquet", ".csv")):
            return super().read_predict_rows(path)
        rows = [
            {self.tokens_column: tokens}
            if tags is None
            else {self.tokens_column: tokens, self.tags_column: tags}
            for tokens, tags in _read_column_file(path, self.conll_label_column, self.conll_scheme)
        ]
        if not rows:
            raise DataError(path, "holds no sentences (empty, or only -DOCSTART- lines)")
        return rows

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate_tagged(examples, self.pad_index)

    def collate_table(self, table: Any) -> dict[str, torch.Tensor]:
        """:func:`collate_tagged` of a ``pyarrow.Table`` of examples, from its columns."""
        words, lengths = pad_list_column(table.column("words"), self.pad_index)
        batch = {"words": words, "lengths": lengths, "casing": pad_list_column(table.column("casing"))[0]}
        batch["chars"] = pad_nested_column(table.column("chars"), words.size(1), self.pad_index)
        names = table.column_names
        if "tags" in names:
            batch["tags"] = pad_list_column(table.column("tags"))[0]
        if "index" in names:
            batch["indices"] = int_column(table.column("index"))
        if "tokens" in names:  # the raw tokens, for writing predictions (not a tensor)
            batch["tokens"] = table.column("tokens").to_pylist()
        return batch

    def split_rows(self, split: str) -> list[dict[str, Any]]:
        """The raw rows of one split (tokens and IOB2 tags), for writing predictions next to them."""
        data = load_split(self.resolved, split)
        self.check_columns(data, split)
        source = self.resolved.describe(split)
        return [
            {
                "tokens": r[self.tokens_column],
                "tags": to_iob2(self._tag_strings(r[self.tags_column], i, source), self.tag_scheme),
            }
            for i, r in enumerate(data)
        ]
