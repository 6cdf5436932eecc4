"""Word-vector files in the GloVe text format (``word v1 … vD`` per line): reading and writing them.

The tagging DataModule reads a file's words into its vocabulary, the tagger starts its embedding rows from
its vectors, and ``seqtasks word-vectors`` (:mod:`seqtasks.wordvectors`) writes one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from seqtasks.data.errors import DataError


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
