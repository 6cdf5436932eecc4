"""Long-range dependency tasks with a controllable distance, written as ordinary parquet datasets.

Each builder writes ``train/validation/test.parquet`` (columns ``text`` and ``label``) into a directory
under ``SEQTASKS_CACHE_DIR`` and returns it, so the tasks train through the library's own machinery —
:class:`~seqtasks.data.classification.TextClassificationDataModule` feeding a
:class:`~seqtasks.tasks.classification.SequenceClassifier` in a Lightning Trainer — with no training loop
of their own.

In both tasks **distance** is the number of steps from the token that decides the label to the last
token: the deciding token sits at index ``T - 1 - distance`` of a ``T``-token text. A unidirectional
encoder read through :class:`~seqtasks.nn.poolers.LastStatePooler` classifies from its state after the last
token, so it must carry that token's information across exactly ``distance`` recurrent steps, and a
gradient probe with its loss at the last position meets the deciding token at step ``distance``.
(A bidirectional encoder or a max/mean pooler would see the deciding token directly: that is cheating.)

**Tense agreement** ("Today I *need* to take a loan" / "Yesterday I *had* to take a loan")::

    today , <distance - 4 tokens of real English> , i ___        → need
    yesterday , <distance - 4 tokens of real English> , i ___    → had

The cue is one word in both classes, so the two classes have the same length and differ only in the cue.
The filler is a window of consecutive tokens from real sentences: CoNLL-2003 (Reuters news) when
``SEQTASKS_DATA_DIR`` holds it (train/validation/test filler from the matching CoNLL split), else a small
built-in public-domain English text. Cue words are removed from the filler, so it carries no tense cue.
Labels are balanced in every split; chance is 50 %.

**Adding problem** (Hochreiter & Schmidhuber 1997), tokenised: ``T = distance + 1`` values, each one of
``levels`` quantised levels, written ``v<k>`` (unmarked) or ``m<k>`` (marked). The first value is marked,
and one more, uniformly placed in the second half; the label is the sum of the two marked levels (one of
``2 * levels - 1`` classes). Quantising keeps what makes the problem hard — the answer needs both marked
values, and a model that forgot the first one and knows only the second is right 1 time in ``levels``,
the same as always answering the most frequent sum — while letting the task reuse the text-classification
data path (vocabulary from the prepare step, bucketing, accuracy as a metric with a known chance level)
instead of a second, real-valued input pipeline. Chance is ``1 / levels``.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from seqtasks.data.sources import DATA_DIR_ENV, cache_dir, resolve, split_files
from seqtasks.data.text import WordTokenizer

SPLITS = ("train", "validation", "test")
TENSE_CUES = {"need": "today", "had": "yesterday"}
"""Label → the one-word time cue that decides it."""
TENSE_LABELS = list(TENSE_CUES)
BLANK = "___"
"""The verb to predict; one token for :class:`~seqtasks.data.text.WordTokenizer`."""
MIN_TENSE_DISTANCE = 5
"""``cue , <filler> , i ___``: four fixed steps after the cue, and at least one filler token."""

# Public-domain English (Lincoln 1863; Austen 1813; Dickens 1859), used only when CoNLL-2003 is not found.
BUILTIN_TEXT = """\
Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in
Liberty, and dedicated to the proposition that all men are created equal. Now we are engaged in a great
civil war, testing whether that nation, or any nation so conceived and so dedicated, can long endure. We
are met on a great battle-field of that war. We have come to dedicate a portion of that field, as a final
resting place for those who here gave their lives that that nation might live. It is altogether fitting
and proper that we should do this. But, in a larger sense, we can not dedicate, we can not consecrate, we
can not hallow this ground. The brave men, living and dead, who struggled here, have consecrated it, far
above our poor power to add or detract. The world will little note, nor long remember what we say here,
but it can never forget what they did here.
It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in
want of a wife. However little known the feelings or views of such a man may be on his first entering a
neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is
considered the rightful property of some one or other of their daughters. My dear Mr. Bennet, said his
lady to him one day, have you heard that Netherfield Park is let at last? Mr. Bennet replied that he had
not. But it is, returned she; for Mrs. Long has just been here, and she told me all about it.
It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of
foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it
was the season of Darkness, it was the spring of hope, it was the winter of despair, we had everything
before us, we had nothing before us, we were all going direct to Heaven, we were all going direct the
other way. There were a king with a large jaw and a queen with a plain face, on the throne of England;
there were a king with a large jaw and a queen with a fair face, on the throne of France.
"""


@dataclass(frozen=True)
class LongRangeDataset:
    """A built task: where its parquet files are, its classes, and what chance accuracy is."""

    path: Path
    labels: list[str]
    chance: float
    filler_source: str


class FillerCorpus:
    """Real English tokens, per split, from which filler windows are cut.

    Args:
        sentences: tokenised sentences per split name.
        source: a human description of where they came from.
        exclude: tokens dropped from the filler (the cue words, so the filler carries no label signal).
    """

    def __init__(self, sentences: dict[str, list[list[str]]], source: str, exclude: set[str]) -> None:
        self.source = source
        self._streams: dict[str, tuple[list[str], list[int]]] = {}
        for split, rows in sentences.items():
            stream: list[str] = []
            starts: list[int] = []
            for sentence in rows:
                kept = [token for token in sentence if token not in exclude]
                if kept:
                    starts.append(len(stream))
                    stream.extend(kept)
            if not stream:
                raise ValueError(f"filler corpus {source!r} has no tokens for split {split!r}")
            self._streams[split] = (stream, starts)

    def window(self, split: str, length: int, rng: random.Random) -> list[str]:
        """``length`` consecutive tokens starting at a random sentence start (wrapping around)."""
        stream, starts = self._streams[split if split in self._streams else "train"]
        start = rng.choice(starts)
        return [stream[(start + i) % len(stream)] for i in range(length)]

    @classmethod
    def load(cls, exclude: set[str]) -> FillerCorpus:
        """CoNLL-2003 sentences when ``SEQTASKS_DATA_DIR`` holds them, else the built-in English text."""
        tokenizer = WordTokenizer(lowercase=True, strip_html=True)
        resolved = resolve("conll2003") if os.environ.get(DATA_DIR_ENV) else None
        if resolved is not None and resolved.kind == "local":
            sentences: dict[str, list[list[str]]] = {}
            for split in SPLITS:
                files = split_files(resolved.location, split)
                if not files:
                    continue
                rows = pq.read_table(files[0], columns=["tokens"]).column("tokens").to_pylist()
                sentences[split] = [tokenizer(" ".join(tokens)) for tokens in rows]
            if "train" in sentences:
                return cls(sentences, f"CoNLL-2003 sentences ({resolved.location})", exclude)
        lines = [line for line in BUILTIN_TEXT.replace("\n", " ").split(". ") if line.strip()]
        builtin = [tokenizer(line + " .") for line in lines]
        return cls(
            {"train": builtin}, "built-in public-domain English text (Lincoln, Austen, Dickens)", exclude
        )


def tense_example(cue: str, filler: list[str]) -> str:
    """``<cue> , <filler> , i ___``: the cue sits ``len(filler) + 4`` steps before the last token."""
    return " ".join([cue, ",", *filler, ",", "i", BLANK])


def _balanced_labels(size: int, classes: list[str], rng: random.Random) -> list[str]:
    labels = [classes[i % len(classes)] for i in range(size)]
    rng.shuffle(labels)
    return labels


def _write_dataset(directory: Path, splits: dict[str, dict[str, list]]) -> None:
    """Write all splits into a temporary sibling, then rename: a reader never sees half a dataset."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=directory.name + ".tmp"))
    try:
        for split, columns in splits.items():
            pq.write_table(pa.table(columns), tmp / f"{split}.parquet")
        try:
            os.replace(tmp, directory)
        except OSError:  # another process wrote it first
            if not (directory / "test.parquet").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _sizes(train: int, validation: int, test: int) -> dict[str, int]:
    sizes = {"train": train, "validation": validation, "test": test}
    if any(n < 2 for n in sizes.values()):
        raise ValueError(f"every split needs at least 2 rows, got {sizes}")
    return sizes


def build_tense_dataset(
    distance: int,
    train_size: int = 2000,
    validation_size: int = 500,
    test_size: int = 1000,
    seed: int = 0,
    root: Path | None = None,
    corpus: FillerCorpus | None = None,
) -> LongRangeDataset:
    """Write (or reuse) the tense-agreement task at ``distance``; see the module docstring.

    Args:
        distance: steps from the cue to the last token (at least :data:`MIN_TENSE_DISTANCE`).
        train_size: training rows (labels balanced).
        validation_size: validation rows.
        test_size: test rows.
        seed: seed of the labels and filler windows.
        root: parent directory; ``$SEQTASKS_CACHE_DIR/long_range`` when omitted.
        corpus: the filler; :meth:`FillerCorpus.load` when omitted.
    """
    if distance < MIN_TENSE_DISTANCE:
        raise ValueError(f"the tense task needs distance >= {MIN_TENSE_DISTANCE}, got {distance}")
    sizes = _sizes(train_size, validation_size, test_size)
    corpus = corpus or FillerCorpus.load(exclude={*TENSE_CUES.values(), BLANK})
    tag = hashlib.sha1(corpus.source.encode()).hexdigest()[:8]
    name = f"tense-d{distance}-n{train_size}-{validation_size}-{test_size}-s{seed}-{tag}"
    directory = (root or cache_dir() / "long_range") / name
    if not (directory / "test.parquet").exists():
        splits = {}
        for index, (split, size) in enumerate(sizes.items()):
            rng = random.Random(f"tense/{seed}/{distance}/{index}")
            labels = _balanced_labels(size, TENSE_LABELS, rng)
            texts = [
                tense_example(TENSE_CUES[label], corpus.window(split, distance - 4, rng)) for label in labels
            ]
            splits[split] = {"text": texts, "label": labels}
        _write_dataset(directory, splits)
    return LongRangeDataset(directory, list(TENSE_LABELS), 0.5, corpus.source)


def adding_example(values: list[int], second: int) -> str:
    """Tokens ``v<k>``/``m<k>``; the first value and the one at index ``second`` are marked."""
    marked = {0, second}
    return " ".join(f"{'m' if i in marked else 'v'}{v}" for i, v in enumerate(values))


def build_adding_dataset(
    distance: int,
    levels: int = 5,
    train_size: int = 2000,
    validation_size: int = 500,
    test_size: int = 1000,
    seed: int = 0,
    root: Path | None = None,
) -> LongRangeDataset:
    """Write (or reuse) the tokenised adding problem at ``distance``; see the module docstring.

    Args:
        distance: steps from the first marked value to the last token (``T = distance + 1``), at least 2.
        levels: quantisation levels of each value; the label is the sum of two levels.
        train_size: training rows.
        validation_size: validation rows.
        test_size: test rows.
        seed: seed of the values and marker positions.
        root: parent directory; ``$SEQTASKS_CACHE_DIR/long_range`` when omitted.
    """
    if distance < 2:
        raise ValueError(f"the adding problem needs distance >= 2, got {distance}")
    if levels < 2:
        raise ValueError(f"levels must be at least 2, got {levels}")
    sizes = _sizes(train_size, validation_size, test_size)
    labels = [str(total) for total in range(2 * levels - 1)]
    name = f"adding-d{distance}-k{levels}-n{train_size}-{validation_size}-{test_size}-s{seed}"
    directory = (root or cache_dir() / "long_range") / name
    if not (directory / "test.parquet").exists():
        length = distance + 1
        splits = {}
        for index, (split, size) in enumerate(sizes.items()):
            rng = random.Random(f"adding/{seed}/{distance}/{index}")
            texts, sums = [], []
            for _ in range(size):
                values = [rng.randrange(levels) for _ in range(length)]
                second = rng.randrange(max(1, length // 2), length)
                texts.append(adding_example(values, second))
                sums.append(str(values[0] + values[second]))
            splits[split] = {"text": texts, "label": sums}
        _write_dataset(directory, splits)
    return LongRangeDataset(directory, labels, 1.0 / levels, "synthetic (uniform quantised values)")


def build_task_dataset(task: str, distance: int, **kwargs) -> LongRangeDataset:
    """``tense`` or ``adding`` at ``distance``; keyword arguments go to the builder."""
    if task == "tense":
        return build_tense_dataset(distance, **kwargs)
    if task == "adding":
        kwargs.pop("corpus", None)
        return build_adding_dataset(distance, **kwargs)
    raise ValueError(f"task must be 'tense' or 'adding', got {task!r}")
