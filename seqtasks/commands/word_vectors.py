"""Train skip-gram word vectors on local unlabeled text and write them in the GloVe text format
(seqtasks' own skip-gram, or gensim's Word2Vec / FastText with ``--method``).

seqtasks word-vectors --text conll2003:tokens --text imdb:text:train,unsupervised --out runs/vectors/v.txt
Words are normalised as the tagger's vocabulary (digits → 0, lower-cased unless --cased); the tagging
recipes read the file through data.word_vectors.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--text",
        action="append",
        required=True,
        metavar="DATASET:COLUMN[:SPLIT,SPLIT]",
        help="a dataset (local folder, or a name under SEQTASKS_DATA_DIR), its text or tokens column and "
        "splits (default train); repeat for more corpora",
    )
    parser.add_argument("--out", required=True, help="the vectors file to write")
    parser.add_argument("--dim", type=int, default=100, help="the vectors' width")
    parser.add_argument("--window", type=int, default=5, help="the widest context window (drawn per word)")
    parser.add_argument("--negatives", type=int, default=5, help="negative samples per pair")
    parser.add_argument(
        "--min-count", type=int, default=5, help="a word gets a vector from this many uses on"
    )
    parser.add_argument("--epochs", type=int, default=3, help="passes over the corpus")
    parser.add_argument("--cased", action="store_true", help="keep case (the tagger's lowercase: false)")
    parser.add_argument("--seed", type=int, default=1, help="seed of subsampling, windows and negatives")
    parser.add_argument(
        "--method",
        choices=["skipgram", "word2vec", "fasttext"],
        default="skipgram",
        help="skipgram: seqtasks' own skip-gram; word2vec / fasttext: gensim's (pip install gensim)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gensim's threads (word2vec, fasttext)")
    parser.add_argument("--show", default="monday,germany,shares,bank", help="words to print neighbours of")


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from seqtasks.data.errors import DataError
    from seqtasks.wordvectors import (
        corpus_sentences,
        nearest,
        train_gensim_vectors,
        train_word_vectors,
        write_word_vectors,
    )

    sentences: list[list[str]] = []
    for spec in options.text:
        dataset, _, rest = spec.partition(":")
        column, _, splits = rest.partition(":")
        if not column:
            parser.error(f"--text {spec!r}: give DATASET:COLUMN")
        before = len(sentences)
        try:
            sentences.extend(
                corpus_sentences(
                    dataset, column, splits.split(",") if splits else ["train"], not options.cased
                )
            )
        except (DataError, FileNotFoundError) as error:
            raise SystemExit(f"seqtasks word-vectors: --text {spec}: {error}") from None
        print(f"{spec}: {len(sentences) - before:,} texts")
    settings = {
        "dim": options.dim,
        "window": options.window,
        "negatives": options.negatives,
        "min_count": options.min_count,
        "epochs": options.epochs,
        "seed": options.seed,
    }
    try:
        if options.method == "skipgram":
            words, vectors = train_word_vectors(sentences, **settings)
        else:
            words, vectors = train_gensim_vectors(
                sentences, options.method, workers=options.workers, **settings
            )
    except ValueError as error:  # no word frequent enough
        raise SystemExit(f"seqtasks word-vectors: {error}") from None
    write_word_vectors(options.out, words, vectors)
    print(f"wrote {len(words):,} vectors of {options.dim} to {options.out}")
    for query in filter(None, options.show.split(",")):
        print(f"  {query}: {', '.join(nearest(words, vectors, query)) or '(not in the vocabulary)'}")
