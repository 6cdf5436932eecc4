"""Unlabeled text as one token stream for a recurrent language model (truncated BPTT).

The texts come from columns of local datasets, named as ``seqtasks word-vectors --text`` names them:
``DATASET:COLUMN[:SPLIT,SPLIT]`` (resolved like a recipe's dataset, under ``SEQTASKS_DATA_DIR``; the
default split is ``train``). A column of strings is tokenised (words: the classifiers'
:class:`~seqtasks.data.text.WordTokenizer`; characters: the text itself, ``<br />`` removed); a column of
token lists (CoNLL-2003's ``tokens``) is used as it is for words and joined by spaces for characters.

The prepare step reads every text once, holds out ``validation_fraction`` of them (chosen by ``seed``; or
the texts of ``validation_texts``), builds the vocabulary from the training texts (``min_freq``,
``max_size``; ``<pad>`` 0, ``<unk>`` 1, ``<eos>`` 2, the end-of-text token after every text) and saves it
with the id streams under the cache directory, keyed by every setting and the files' sizes and times.

Each stream is cut into ``batch_size`` parallel rows (batchify: the stream's tail that does not fill a row
is dropped) and a batch is the next ``bptt`` columns: ``inputs`` and the ``targets`` one position later,
in order, never shuffled, so the task can carry the hidden state from one batch to the next. Under DDP
the stream is cut into ``batch_size x world`` rows and each rank reads its own ``batch_size`` of them, so
every rank gives the same number of batches and each still reads its rows in order.

Why not :class:`~seqtasks.data.datamodule.SeqDataModule`: its loaders bucket and shuffle independent
examples; a language model's batches are consecutive windows of one stream, and there are no rows to
encode one at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from seqtasks.data.batching import StatefulLoader
from seqtasks.data.errors import DataError
from seqtasks.data.sources import cache_dir, load_split, resolve, split_files
from seqtasks.data.text import PAD, UNK, Vocabulary, WordTokenizer

EOS = "<eos>"
Level = Literal["word", "char"]
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def parse_text_spec(spec: str) -> tuple[str, str, list[str]]:
    """``DATASET:COLUMN[:SPLIT,SPLIT]`` → ``(dataset, column, splits)``; the default split is ``train``."""
    dataset, _, rest = spec.partition(":")
    column, _, splits = rest.partition(":")
    if not dataset or not column:
        raise ValueError(f"text source {spec!r}: give DATASET:COLUMN[:SPLIT,SPLIT]")
    return dataset, column, [s for s in splits.split(",") if s] or ["train"]


class StreamCodec:
    """Text → symbols (words or characters) → ids, the same for training and for a user's text.

    Args:
        level: ``word`` or ``char``.
        lowercase: fold case first.
        vocabulary: the symbols; None until the prepare step builds it.
        reverse: each text's symbols in reverse order (a backward language model reads them so).
    """

    def __init__(
        self, level: Level, lowercase: bool, vocabulary: Vocabulary | None = None, reverse: bool = False
    ) -> None:
        if level not in ("word", "char"):
            raise ValueError(f"level must be word or char, got {level!r}")
        self.level = level
        self.lowercase = lowercase
        self.vocabulary = vocabulary
        self.reverse = reverse
        self.tokenizer = WordTokenizer(lowercase=lowercase, strip_html=True)

    def symbols(self, value: str | list[str]) -> list[str]:
        """The symbols of one text (a string, or a list of tokens), without the end-of-text token."""
        symbols = self._symbols(value)
        return symbols[::-1] if self.reverse else symbols

    def _symbols(self, value: str | list[str]) -> list[str]:
        if isinstance(value, list):
            tokens = [t.lower() for t in value] if self.lowercase else list(value)
            return tokens if self.level == "word" else list(" ".join(tokens))
        if self.level == "word":
            return self.tokenizer(value)
        text = " ".join(_HTML_BREAK.sub(" ", value).split())
        return list(text.lower() if self.lowercase else text)

    def encode(self, value: str | list[str]) -> list[int]:
        """Ids of one text followed by ``<eos>``."""
        assert self.vocabulary is not None, "build the vocabulary first"
        return self.vocabulary.encode([*self.symbols(value), EOS])

    def decode(self, ids: list[int]) -> str:
        assert self.vocabulary is not None, "build the vocabulary first"
        symbols = [self.vocabulary.tokens[i] for i in ids]
        return ("" if self.level == "char" else " ").join(symbols)

    def state_dict(self) -> dict[str, Any]:
        tokens = list(self.vocabulary.tokens) if self.vocabulary is not None else []
        state = {"level": self.level, "lowercase": self.lowercase, "vocabulary": tokens}
        if self.reverse:
            state["reverse"] = True
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StreamCodec:
        vocabulary = Vocabulary(list(state["vocabulary"]))
        return cls(state["level"], state["lowercase"], vocabulary, reverse=bool(state.get("reverse", False)))


def build_vocabulary(texts: list[list[str]], min_freq: int, max_size: int | None) -> Vocabulary:
    """``<pad>``, ``<unk>``, ``<eos>``, then the symbols by frequency (ties alphabetical)."""
    built = Vocabulary.build(texts, min_freq=min_freq, max_size=None if max_size is None else max_size - 1)
    return Vocabulary([PAD, UNK, EOS, *(t for t in built.tokens[2:] if t != EOS)])


def batchify(ids: torch.Tensor, rows: int) -> torch.Tensor:
    """The stream ``(N,)`` as ``rows`` consecutive parallel streams ``(rows, N // rows)``."""
    width = ids.numel() // rows
    if width < 2:
        raise ValueError(f"a stream of {ids.numel()} tokens is too short for {rows} rows of at least 2")
    return ids[: width * rows].view(rows, width)


class StreamWindows(IterableDataset):
    """Consecutive ``bptt`` windows of a batchified stream: ``{"inputs", "targets"}`` each ``(B, <=bptt)``.

    Every position but each row's first is a target exactly once, in order; the last window may be shorter.
    ``skip``: the next iteration starts after that many windows (then it is 0 again) — how a run resumed in
    the middle of an epoch continues (:class:`~seqtasks.data.batching.StatefulLoader` sets it).
    """

    def __init__(self, streams: torch.Tensor, bptt: int) -> None:
        if bptt < 1:
            raise ValueError(f"bptt must be positive, got {bptt}")
        self.streams = streams
        self.bptt = bptt
        self.skip = 0

    def __len__(self) -> int:
        return -(-(self.streams.size(1) - 1) // self.bptt)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        width = self.streams.size(1)
        first, self.skip = self.skip * self.bptt, 0
        for start in range(first, width - 1, self.bptt):
            end = min(start + self.bptt, width - 1)
            yield {
                "inputs": self.streams[:, start:end],
                "targets": self.streams[:, start + 1 : end + 1],
            }


class LanguageModelDataModule(pl.LightningDataModule):
    """Text sources → one id stream → ``bptt`` windows over ``batch_size`` parallel streams.

    Args:
        texts: the training texts, each ``DATASET:COLUMN[:SPLIT,SPLIT]`` (see the module docstring).
        level: ``word`` or ``char``.
        lowercase: fold case.
        min_freq: a symbol enters the vocabulary from this many uses in the training texts.
        max_size: at most this many symbols (specials included); None keeps all.
        batch_size: parallel streams per batch.
        bptt: window length (truncated back-propagation through time).
        eval_batch_size: parallel streams of the validation and test streams; None: ``batch_size``.
        validation_fraction: share of the texts held out for validation (when ``validation_texts`` is None).
        validation_texts: validation texts as sources (a split), instead of a held-out fraction.
        test_texts: test texts as sources; None: no test stage.
        max_texts: read at most this many texts of each source (the first ones); None reads all.
        seed: the held-out texts' draw.
        reverse: each text's symbols in reverse order before the stream is built (the backward language
            model of contextual string embeddings); the held-out draw and the vocabulary are unchanged.
    """

    def __init__(
        self,
        texts: list[str],
        level: Level = "word",
        lowercase: bool = True,
        min_freq: int = 3,
        max_size: int | None = None,
        batch_size: int = 32,
        bptt: int = 70,
        eval_batch_size: int | None = None,
        validation_fraction: float = 0.05,
        validation_texts: list[str] | None = None,
        test_texts: list[str] | None = None,
        max_texts: int | None = None,
        seed: int = 42,
        reverse: bool = False,
    ) -> None:
        super().__init__()
        if not texts:
            raise ValueError("texts: name at least one DATASET:COLUMN[:SPLITS] source")
        for spec in [*texts, *(validation_texts or []), *(test_texts or [])]:
            parse_text_spec(spec)
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        if batch_size < 1 or bptt < 1 or min_freq < 1:
            raise ValueError(
                f"batch_size, bptt and min_freq must be positive, got batch_size={batch_size}, "
                f"bptt={bptt}, min_freq={min_freq}"
            )
        self.texts = list(texts)
        self.level = level
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.max_size = max_size
        self.batch_size = batch_size
        self.bptt = bptt
        self.eval_batch_size = eval_batch_size or batch_size
        self.validation_fraction = validation_fraction
        self.validation_texts = list(validation_texts) if validation_texts else None
        self.test_texts = list(test_texts) if test_texts else None
        self.max_texts = max_texts
        self.seed = seed
        self.reverse = reverse
        self.codec = StreamCodec(level, lowercase, reverse=reverse)
        self._prepared_dir: Path | None = None
        self._streams: dict[str, torch.Tensor] = {}

    # ---- what the model needs to know --------------------------------------------------------------
    @property
    def test_split(self) -> str | None:
        """``test`` when test texts are named (the CLI tests after fit only then)."""
        return "test" if self.test_texts else None

    @property
    def vocabulary(self) -> Vocabulary:
        if self.codec.vocabulary is None:
            tokens = json.loads((self.prepared_dir() / "vocabulary.json").read_text())
            self.codec.vocabulary = Vocabulary(tokens)
        return self.codec.vocabulary

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def artefacts(self) -> dict[str, Any]:
        """The codec (level, case, vocabulary) as plain data, for the checkpoint."""
        self.vocabulary  # noqa: B018
        return {"codec": self.codec.state_dict(), "level": self.level}

    # ---- the prepare step --------------------------------------------------------------------------
    def _sources(self, specs: list[str]) -> list[dict[str, Any]]:
        stamps = []
        for spec in specs:
            dataset, _, splits = parse_text_spec(spec)
            resolved = resolve(dataset)
            files = [f for split in splits for f in split_files(resolved.location, split)]
            stamps.append(
                {
                    "spec": spec,
                    "location": resolved.location,
                    "files": [(f, os.path.getsize(f), os.path.getmtime(f)) for f in files],
                }
            )
        return stamps

    def prepared_dir(self) -> Path:
        """The prepare step's folder (vocabulary and id streams), built on first use when missing."""
        if self._prepared_dir is not None:
            return self._prepared_dir
        settings = {
            "texts": self._sources(self.texts),
            "validation_texts": self._sources(self.validation_texts or []),
            "test_texts": self._sources(self.test_texts or []),
            "level": self.level,
            "lowercase": self.lowercase,
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "validation_fraction": self.validation_fraction,
            "max_texts": self.max_texts,
            "seed": self.seed,
            "version": 1,
        }
        if self.reverse:  # only when set: the forward streams keep their cached folder
            settings["reverse"] = True
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
        path = cache_dir() / "language_model" / digest
        if not (path / "vocabulary.json").exists():
            self._prepare(path)
        self._prepared_dir = path
        return path

    def _read(self, specs: list[str]) -> list[list[str]]:
        texts: list[list[str]] = []
        for spec in specs:
            dataset, column, splits = parse_text_spec(spec)
            resolved = resolve(dataset)
            for split in splits:
                data = load_split(resolved, split)
                if column not in data.column_names:
                    raise DataError(
                        resolved.describe(split), f"no column {column!r} (columns: {data.column_names})"
                    )
                values = data[column] if self.max_texts is None else data[: self.max_texts][column]
                for index, value in enumerate(values):
                    if not isinstance(value, str | list):
                        raise DataError(
                            resolved.describe(split),
                            f"expected a text or a list of tokens, got {type(value).__name__}",
                            row=index,
                            field=column,
                        )
                    symbols = self.codec.symbols(value)
                    if symbols:
                        texts.append(symbols)
        if not texts:
            raise DataError(", ".join(specs), "holds no text")
        return texts

    def _prepare(self, path: Path) -> None:
        train = self._read(self.texts)
        if self.validation_texts:
            validation = self._read(self.validation_texts)
        else:
            order = list(range(len(train)))
            random.Random(self.seed).shuffle(order)
            held = set(order[: round(len(train) * self.validation_fraction)])
            validation = [t for i, t in enumerate(train) if i in held]
            train = [t for i, t in enumerate(train) if i not in held]
        vocabulary = build_vocabulary(train, self.min_freq, self.max_size)
        splits = {"train": train, "validation": validation}
        if self.test_texts:
            splits["test"] = self._read(self.test_texts)
        path.mkdir(parents=True, exist_ok=True)
        for split, texts in splits.items():
            ids = [i for symbols in texts for i in vocabulary.encode([*symbols, EOS])]
            np.save(path / f"{split}.npy", np.asarray(ids, dtype=np.int32))
        tmp = path / "vocabulary.json.tmp"
        tmp.write_text(json.dumps(vocabulary.tokens, ensure_ascii=False))
        os.replace(tmp, path / "vocabulary.json")  # written last: its presence marks a finished prepare

    def prepare_data(self) -> None:
        self.prepared_dir()

    def prepared_path(self) -> Path:
        """Where the prepare step's result lies (``seqtasks prepare`` prints it)."""
        return self.prepared_dir()

    @property
    def prepared(self) -> dict[str, Any]:
        """A summary of the prepare step: the vocabulary and each split's stream length."""
        summary: dict[str, Any] = {"vocabulary": self.vocabulary.tokens}
        for file in sorted(self.prepared_dir().glob("*.npy")):
            summary[f"{file.stem}_tokens"] = int(np.load(file, mmap_mode="r").shape[0])
        return summary

    # ---- streams and loaders -----------------------------------------------------------------------
    def stream(self, split: str) -> torch.Tensor:
        """The whole id stream of ``split`` ``(N,)``."""
        if split not in self._streams:
            file = self.prepared_dir() / f"{split}.npy"
            if not file.exists():
                raise ValueError(f"no {split} texts configured")
            self._streams[split] = torch.from_numpy(np.load(file).astype(np.int64))
        return self._streams[split]

    def setup(self, stage: str | None = None) -> None:
        self.vocabulary  # noqa: B018
        if stage == "fit":
            for split in ("train", "validation"):
                self.stream(split)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def windows(self, split: str, batch_size: int) -> StreamWindows:
        """This rank's ``batch_size`` rows of the split's stream, as consecutive windows."""
        rank, world = self._rank_world()
        streams = batchify(self.stream(split), batch_size * world)
        return StreamWindows(streams[rank * batch_size : (rank + 1) * batch_size], self.bptt)

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        # the training position (windows delivered, RNG states) goes into checkpoints: a mid-epoch resume
        # continues with the next window (the task restores the hidden state it carried into it)
        return StatefulLoader(self.windows(split, batch_size), batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        if self.stream("validation").numel() < 2 * self.eval_batch_size:
            return []
        return self._loader("validation", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        if not self.test_texts:
            raise ValueError("no test_texts configured")
        return self._loader("test", self.eval_batch_size)
