"""Word vectors trained by seqtasks (skip-gram) and their use as the tagger's starting embeddings."""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.ner import SnapshotAtTrainStart, make_tiny_ner, tiny_args

from seqtasks.cli import main
from seqtasks.data.errors import DataError
from seqtasks.data.vectors import read_word_vectors, write_word_vectors
from seqtasks.training import run_lightning
from seqtasks.wordvectors import skipgram_pairs, train_gensim_vectors, train_word_vectors


@pytest.fixture(autouse=True)
def _cli_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


def test_pairs_stay_inside_sentences_and_the_window() -> None:
    ids = np.array([10, 11, 12, 20, 21])  # two sentences: 10 11 12 | 20 21
    centers, contexts = skipgram_pairs(ids, np.array([0, 3]), window=1, rng=np.random.default_rng(0))
    pairs = sorted(zip(centers.tolist(), contexts.tolist(), strict=True))
    assert pairs == [(10, 11), (11, 10), (11, 12), (12, 11), (20, 21), (21, 20)]
    centers, contexts = skipgram_pairs(ids, np.array([0, 3]), window=5, rng=np.random.default_rng(0))
    assert {(c // 10, o // 10) for c, o in zip(centers, contexts, strict=True)} == {(1, 1), (2, 2)}


@pytest.mark.parametrize("method", ["skipgram", "word2vec", "fasttext"])
def test_words_sharing_contexts_end_up_neighbours(method: str) -> None:
    """Two topics, each with its own context words; a topic's members never meet each other, only the
    same contexts. Skip-gram (seqtasks' own, gensim's, gensim's FastText) must still place every member
    closer to its own topic's members."""
    rng = random.Random(0)
    topics = [
        (["cat", "dog", "mouse", "horse"], ["fur", "tail", "paws", "barn"]),
        (["car", "bus", "truck", "train"], ["road", "wheels", "engine", "driver"]),
    ]
    sentences = []
    for _ in range(600):
        members, contexts = rng.choice(topics)
        sentences.append([rng.choice(members), *rng.sample(contexts, 3)])
    settings = {
        "dim": 16,
        "window": 3,
        "negatives": 4,
        "min_count": 1,
        "epochs": 10,
        "subsample": 1.0,
        "seed": 1,
    }
    if method == "skipgram":
        words, vectors = train_word_vectors(sentences, lr=0.02, **settings)
    else:  # one worker: gensim is then deterministic
        words, vectors = train_gensim_vectors(sentences, method, workers=1, **settings)
    counts = Counter(w for s in sentences for w in s)
    assert words == sorted(counts, key=lambda w: (-counts[w], w)) and vectors.shape == (len(words), 16)
    unit = torch.nn.functional.normalize(vectors, dim=1)

    def similarity(a: str, b: str) -> float:
        return float(unit[words.index(a)] @ unit[words.index(b)])

    for own, other in ((topics[0][0], topics[1][0]), (topics[1][0], topics[0][0])):
        for word in own:
            closest_own = max(similarity(word, w) for w in own if w != word)
            closest_other = max(similarity(word, w) for w in other)
            assert closest_own > closest_other + 0.2, (word, closest_own, closest_other)


@pytest.mark.parametrize("method", ["word2vec", "fasttext"])
def test_the_command_writes_gensim_vectors_the_tagger_reads(tmp_path: Path, method: str) -> None:
    dataset = make_tiny_ner(tmp_path / "data")
    out = tmp_path / f"{method}.txt"
    main(["word-vectors", "--text", f"{dataset}:tokens", "--out", str(out), "--dim", "12", "--min-count", "1",
          "--method", method, "--workers", "1"])  # fmt: skip
    words, vectors = read_word_vectors(out)
    assert "paris" in words and vectors.shape == (len(words), 12) and torch.isfinite(vectors).all()


def test_vectors_file_round_trip_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    write_word_vectors(path, ["paris", "0000"], torch.tensor([[1.0, -0.5], [0.25, 2.0]]))
    words, vectors = read_word_vectors(path)
    assert words == ["paris", "0000"] and torch.equal(vectors, torch.tensor([[1.0, -0.5], [0.25, 2.0]]))
    (tmp_path / "header.txt").write_text("2 2\nparis 1 2\nrome 3 4\n")
    assert read_word_vectors(tmp_path / "header.txt", words_only=True) == (["paris", "rome"], None)
    for text, message in [
        ("paris 1 2\nrome 3\n", "line 2: 1 values, the first line had 2"),
        ("paris 1 2\nrome 3 x\n", "line 2: could not convert"),
        ("paris 1 2\nparis 3 4\n", "line 2: the word 'paris' is listed twice"),
        ("paris\n", "line 1: expected 'word v1 ... vD'"),
    ]:
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(DataError, match=message) as error:
            read_word_vectors(bad)
        assert str(bad) in str(error.value)


def test_tagger_starts_from_the_vectors_and_knows_words_only_they_hold(tmp_path: Path) -> None:
    dataset = make_tiny_ner(tmp_path / "data")
    vectors_path = tmp_path / "vectors.txt"
    # the command end to end on the tiny data's tokens, then one word the training data never has
    main(["word-vectors", "--text", f"{dataset}:tokens", "--out", str(vectors_path), "--dim", "16"])
    words, vectors = read_word_vectors(vectors_path)
    assert "paris" in words and "zanzibar" not in words and vectors.shape == (len(words), 16)
    with vectors_path.open("a") as handle:
        handle.write("zanzibar " + " ".join(["0.5"] * 16) + "\n")
    args = tiny_args(tmp_path / "run", dataset, max_epochs=1)
    cli = run_lightning(
        ["fit", *args, "--data.init_args.word_vectors", str(vectors_path), "--test_after_fit", "false"]
    )
    os.environ.pop("PL_GLOBAL_SEED", None)
    assert cli.model.hparams.word_vectors == str(vectors_path)  # linked from data.word_vectors
    vocabulary = cli.model.artefacts["tagging_codec"]["words"]
    assert "zanzibar" in vocabulary and "paris" in vocabulary
    assert cli.model.artefacts["word_vectors"] == {"file": "vectors.txt", "words": len(words) + 1}

    snapshot = SnapshotAtTrainStart()
    fresh = run_lightning([*args, "--data.init_args.word_vectors", str(vectors_path)], run=False)
    fresh.trainer.callbacks.append(snapshot)
    fresh.trainer.fit(fresh.model, datamodule=fresh.datamodule)
    _, all_vectors = read_word_vectors(vectors_path)
    scaled = all_vectors / all_vectors.std()
    start = snapshot.state["network.embedding.weight"]
    every = read_word_vectors(vectors_path)[0]
    for word in ("paris", "zanzibar"):
        assert torch.allclose(start[vocabulary.index(word)], scaled[every.index(word)])

    with pytest.raises(ValueError, match="vectors of 16 values, but word_dim is 8"):
        broken = run_lightning(
            [
                *args,
                "--data.init_args.word_vectors",
                str(vectors_path),
                "--model.init_args.network.init_args.word_dim",
                "8",
            ],
            run=False,
        )
        broken.trainer.fit(broken.model, datamodule=broken.datamodule)
