"""Word vectors trained by seqtasks on unlabeled local text, for the token tagger's word embeddings.

``seqtasks word-vectors`` reads text columns of local datasets (a column of strings is split with the
tagger's tokenizer; a column of token lists is used as it is), normalises words exactly as the tagger's
vocabulary does (digits → ``0``, lower-cased when asked), and trains skip-gram with negative sampling
(:class:`seqtasks.nn.skipgram.SkipGram`): frequent words subsampled, a dynamic window, negatives drawn from
the unigram distribution raised to 3/4, SparseAdam with a linearly decaying rate — or, with the same
settings, gensim's Word2Vec or FastText (:func:`train_gensim_vectors`). The vectors are written
in the GloVe text format (``word v1 … vD`` per line) by :func:`seqtasks.data.vectors.write_word_vectors`;
:func:`~seqtasks.data.vectors.read_word_vectors` reads them back, ``TokenTaggingDataModule(word_vectors=...)``
adds their words to the tagger's vocabulary and ``TokenTagger(word_vectors=...)`` starts its embedding
rows from them. The command's options are in :mod:`seqtasks.commands.word_vectors`.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np
import torch

from seqtasks.data.errors import DataError
from seqtasks.data.sources import load_split, resolve
from seqtasks.data.tagging_codec import normalise_word, tokenize
from seqtasks.data.vectors import read_word_vectors, write_word_vectors
from seqtasks.nn.skipgram import SkipGram

__all__ = [
    "corpus_sentences",
    "nearest",
    "read_word_vectors",
    "skipgram_pairs",
    "train_gensim_vectors",
    "train_word_vectors",
    "write_word_vectors",
]


def corpus_sentences(
    dataset: str, column: str, splits: list[str], lowercase: bool = True
) -> Iterator[list[str]]:
    """Normalised token lists of one column of a dataset's splits (resolved like recipes' datasets)."""
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


def train_gensim_vectors(
    sentences: list[list[str]],
    method: str = "word2vec",
    dim: int = 100,
    window: int = 5,
    negatives: int = 5,
    min_count: int = 5,
    epochs: int = 3,
    subsample: float = 1e-4,
    seed: int = 1,
    workers: int = 2,
) -> tuple[list[str], torch.Tensor]:
    """gensim's skip-gram with negative sampling (``word2vec``) or its FastText (``fasttext``: character
    n-grams of 3–6 as well; gensim is the optional ``vectors`` extra) with the
    settings of :func:`train_word_vectors`: vectors of every word seen ``min_count`` times, most frequent
    first (ties alphabetical). With ``workers`` > 1 gensim's threads make runs differ slightly."""
    try:
        from gensim.models import FastText, Word2Vec
    except ImportError:
        raise SystemExit(
            f"word vectors by {method} need gensim: pip install 'seqtasks[vectors]' (or pip install gensim)"
        ) from None
    if method not in ("word2vec", "fasttext"):
        raise ValueError(f"method must be word2vec or fasttext, got {method!r}")
    settings = {
        "vector_size": dim,
        "window": window,
        "negative": negatives,
        "min_count": min_count,
        "epochs": epochs,
        "sample": subsample if subsample < 1.0 else 0,  # gensim reads sample >= 1 as a word count
        "seed": seed,
        "workers": workers,
        "sg": 1,
    }
    model = FastText(min_n=3, max_n=6, **settings) if method == "fasttext" else Word2Vec(**settings)
    model.build_vocab(sentences)
    if not model.wv.index_to_key:
        raise ValueError(f"no word occurs {min_count} times in the corpus")
    print(
        f"word vectors ({method}, gensim): {model.corpus_total_words:,} tokens, dim {dim}, {workers} workers"
    )
    started = time.monotonic()
    model.train(sentences, total_examples=len(sentences), epochs=epochs)
    print(f"trained in {time.monotonic() - started:.0f} s")
    words = sorted(model.wv.index_to_key, key=lambda w: (-model.wv.get_vecattr(w, "count"), w))
    vectors = torch.from_numpy(np.stack([model.wv[w] for w in words])).float()
    return words, vectors


def nearest(words: list[str], vectors: torch.Tensor, query: str, k: int = 5) -> list[str]:
    """The ``k`` words closest to ``query`` by cosine similarity (a quick look at what was learnt)."""
    if query not in words:
        return []
    unit = torch.nn.functional.normalize(vectors, dim=1)
    scores = unit @ unit[words.index(query)]
    return [words[i] for i in scores.topk(k + 1).indices.tolist()[1:]]
