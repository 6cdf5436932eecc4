"""Word vectors trained by seqtasks on unlabeled local text, for the token tagger's word embeddings.

``seqtasks word-vectors`` reads text columns of local datasets (a column of strings is split with the
tagger's tokenizer; a column of token lists is used as it is), normalises words exactly as the tagger's
vocabulary does (digits → ``0``, lower-cased when asked), and trains skip-gram with negative sampling
(:class:`seqtasks.nn.skipgram.SkipGram`): frequent words subsampled, a dynamic window, negatives drawn from
the unigram distribution raised to 3/4, SparseAdam with a linearly decaying rate. The vectors are written
in the GloVe text format (``word v1 … vD`` per line), which :func:`read_word_vectors` reads back and
``TokenTaggingDataModule(word_vectors=...)`` adds to the tagger's vocabulary.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from seqtasks.data.errors import DataError
from seqtasks.nn.skipgram import SkipGram


def read_word_vectors(
    path: str | os.PathLike, words_only: bool = False
) -> tuple[list[str], torch.Tensor | None]:
    """Words and their vectors from a GloVe-style text file (a word2vec ``count dim`` header is skipped).

    Bad input stops with the file and line: a line with no vector, a width that differs from the first
    line's, a value that is not a number, a word listed twice.
    """
    words: list[str] = []
    rows: list[list[float]] = []
    seen: set[str] = set()
    dim = None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec text header
            if len(parts) < 2:
                raise DataError(str(path), f"line {number}: expected 'word v1 ... vD', got {line[:60]!r}")
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
            elif len(values) != dim:
                raise DataError(str(path), f"line {number}: {len(values)} values, the first line had {dim}")
            if word in seen:
                raise DataError(str(path), f"line {number}: the word {word!r} is listed twice")
            seen.add(word)
            words.append(word)
            if not words_only:
                try:
                    rows.append([float(v) for v in values])
                except ValueError as error:
                    raise DataError(str(path), f"line {number}: {error}") from None
    if not words:
        raise DataError(str(path), "no word vectors in the file")
    return words, None if words_only else torch.tensor(rows, dtype=torch.float32)


def write_word_vectors(path: str | os.PathLike, words: list[str], vectors: torch.Tensor) -> None:
    """Write GloVe-style text through a temporary file and a rename: never half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for word, row in zip(words, vectors.tolist(), strict=True):
                handle.write(word + " " + " ".join(f"{v:.5f}" for v in row) + "\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the vectors are an ordinary output file
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def corpus_sentences(
    dataset: str, column: str, splits: list[str], lowercase: bool = True
) -> Iterator[list[str]]:
    """Normalised token lists of one column of a dataset's splits (resolved like recipes' datasets)."""
    import re

    from seqtasks.data.sources import load_split, resolve
    from seqtasks.data.tagging import normalise_word, tokenize

    resolved = resolve(dataset)
    markup = re.compile(r"<br\s*/?>")
    for split in splits:
        data = load_split(resolved, split)
        if column not in data.column_names:
            raise DataError(resolved.describe(split), f"no column {column!r} (columns: {data.column_names})")
        for index, value in enumerate(data[column]):
            if isinstance(value, str):
                tokens = tokenize(markup.sub(" ", value))
            elif isinstance(value, list) and all(isinstance(t, str) for t in value):
                tokens = value
            else:
                raise DataError(
                    resolved.describe(split),
                    f"expected a text or a list of tokens, got {type(value).__name__}",
                    row=index,
                    field=column,
                )
            if tokens:
                yield [normalise_word(t, lowercase) for t in tokens]


def skipgram_pairs(
    ids: np.ndarray, starts: np.ndarray, window: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(centre, context) pairs of a token array cut into sentences at ``starts``, dynamic window.

    Each centre draws its window b in 1..``window`` (word2vec's way of weighting near words more) and
    pairs with every word at most b positions away in the same sentence.
    """
    sentence = np.zeros(len(ids), dtype=np.int64)
    sentence[starts[1:]] = 1
    sentence = np.cumsum(sentence)
    reach = rng.integers(1, window + 1, size=len(ids))
    centers, contexts = [], []
    for offset in range(1, window + 1):
        left, right = np.arange(len(ids) - offset), np.arange(offset, len(ids))
        same = sentence[left] == sentence[right]
        forward = same & (reach[left] >= offset)  # centre left, context right
        backward = same & (reach[right] >= offset)  # centre right, context left
        centers += [ids[left[forward]], ids[right[backward]]]
        contexts += [ids[right[forward]], ids[left[backward]]]
    return np.concatenate(centers), np.concatenate(contexts)


def train_word_vectors(
    sentences: list[list[str]],
    dim: int = 100,
    window: int = 5,
    negatives: int = 5,
    min_count: int = 5,
    epochs: int = 3,
    subsample: float = 1e-4,
    lr: float = 0.003,
    batch_size: int = 4096,
    seed: int = 1,
    log_every: float = 30.0,
) -> tuple[list[str], torch.Tensor]:
    """Skip-gram vectors of every word seen at least ``min_count`` times, most frequent first."""
    counts = Counter(word for sentence in sentences for word in sentence)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if not words:
        raise ValueError(f"no word occurs {min_count} times in the corpus")
    index = {w: i for i, w in enumerate(words)}
    frequency = np.array([counts[w] for w in words], dtype=np.float64)
    kept = [np.array([index[w] for w in s if w in index], dtype=np.int64) for s in sentences]
    kept = [s for s in kept if len(s) > 1]
    ids = np.concatenate(kept)
    starts = np.cumsum([0] + [len(s) for s in kept[:-1]])
    share = frequency / frequency.sum()
    keep_probability = np.minimum(1.0, np.sqrt(subsample / share) + subsample / share)
    noise = torch.tensor(frequency**0.75 / (frequency**0.75).sum(), dtype=torch.float64)

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SkipGram(len(words), dim)
    optimizer = torch.optim.SparseAdam(model.parameters(), lr=lr)
    expected_steps = epochs * math.ceil(
        2 * (window + 1) / 2 * float((keep_probability[ids]).sum()) / batch_size
    )
    step, last_log, started = 0, time.monotonic(), time.monotonic()
    print(f"word vectors: {len(ids):,} tokens, {len(words):,} words (min count {min_count}), dim {dim}")
    for epoch in range(epochs):
        mask = rng.random(len(ids)) < keep_probability[ids]
        positions = np.flatnonzero(mask)
        sentence_of = np.searchsorted(starts, positions, side="right") - 1
        new_starts = np.flatnonzero(np.diff(sentence_of, prepend=-1))
        centers, contexts = skipgram_pairs(ids[positions], new_starts, window, rng)
        order = rng.permutation(len(centers))
        centers, contexts = torch.from_numpy(centers[order]), torch.from_numpy(contexts[order])
        total = 0.0
        for begin in range(0, len(centers), batch_size):
            c, o = centers[begin : begin + batch_size], contexts[begin : begin + batch_size]
            drawn = torch.multinomial(noise, len(c) * negatives, replacement=True).view(len(c), negatives)
            rate = lr * max(1e-4, 1.0 - step / max(expected_steps, 1))
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss = model(c, o, drawn)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(c)
            step += 1
            if time.monotonic() - last_log > log_every:
                last_log = time.monotonic()
                done = begin / len(centers)
                print(f"  epoch {epoch + 1}/{epochs} {done:6.1%}  loss {loss.item():.4f}  lr {rate:.5f}")
        print(
            f"epoch {epoch + 1}/{epochs}: {len(centers):,} pairs, mean loss {total / len(centers):.4f}, "
            f"{time.monotonic() - started:.0f} s"
        )
    return words, model.words.weight.detach().clone()


def nearest(words: list[str], vectors: torch.Tensor, query: str, k: int = 5) -> list[str]:
    """The ``k`` words closest to ``query`` by cosine similarity (a quick look at what was learnt)."""
    if query not in words:
        return []
    unit = torch.nn.functional.normalize(vectors, dim=1)
    scores = unit @ unit[words.index(query)]
    return [words[i] for i in scores.topk(k + 1).indices.tolist()[1:]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="seqtasks word-vectors",
        description="Train skip-gram word vectors on local unlabeled text (GloVe text format out).",
    )
    parser.add_argument(
        "--text",
        action="append",
        required=True,
        metavar="DATASET:COLUMN[:SPLIT,SPLIT]",
        help="a dataset (local folder, or a name under SEQTASKS_DATA_DIR), its text or tokens column and "
        "splits (default train); repeat for more corpora",
    )
    parser.add_argument("--out", required=True, help="the vectors file to write")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cased", action="store_true", help="keep case (the tagger's lowercase: false)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", default="monday,germany,shares,bank", help="words to print neighbours of")
    options = parser.parse_args(argv)
    sentences: list[list[str]] = []
    for spec in options.text:
        dataset, _, rest = spec.partition(":")
        column, _, splits = rest.partition(":")
        if not column:
            parser.error(f"--text {spec!r}: give DATASET:COLUMN")
        before = len(sentences)
        sentences.extend(
            corpus_sentences(dataset, column, splits.split(",") if splits else ["train"], not options.cased)
        )
        print(f"{spec}: {len(sentences) - before:,} texts")
    words, vectors = train_word_vectors(
        sentences,
        dim=options.dim,
        window=options.window,
        negatives=options.negatives,
        min_count=options.min_count,
        epochs=options.epochs,
        seed=options.seed,
    )
    write_word_vectors(options.out, words, vectors)
    print(f"wrote {len(words):,} vectors of {options.dim} to {options.out}")
    for query in filter(None, options.show.split(",")):
        print(f"  {query}: {', '.join(nearest(words, vectors, query)) or '(not in the vocabulary)'}")
