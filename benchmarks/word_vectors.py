"""Word vectors three ways on the NER recipes' corpus: seqtasks' own skip-gram, gensim's Word2Vec (skip-gram)
and gensim's FastText, with the same settings as ``make vectors`` — time, and quality on standard sets.

    python benchmarks/word_vectors.py [--epochs 1] [--threads 1] [--methods skipgram,word2vec,fasttext]

The corpus is the one ``make vectors`` reads: CoNLL-2003's train tokens and IMDB's train and test reviews
(SEQTASKS_DATA_DIR), normalised as the tagger's vocabulary (lower-cased, digits → 0). For each method:
wall time (one run each: seqtasks' own takes minutes); Spearman ρ on WordSim-353 and accuracy on the Google
analogy questions (both shipped inside gensim's package; analogies over the 30,000 most frequent words,
each question scored only when all four words have vectors, the share asked is shown); and how many
CoNLL-2003 dev and test tokens (excluded from the corpus) have a vector — a written vectors file holds only
words of the corpus, so FastText's subword vectors for unseen words would need its model, not the file.
Needs gensim (the ``vectors`` extra).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from seqtasks.wordvectors import corpus_sentences, train_gensim_vectors, train_word_vectors

CORPUS = [("conll2003", "tokens", ["train"]), ("imdb", "text", ["train", "test"])]


def keyed(words: list[str], vectors: torch.Tensor):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.size(1))
    kv.add_vectors(words, vectors.numpy().astype(np.float32))
    return kv


def evaluate(words: list[str], vectors: torch.Tensor, eval_tokens: list[str]) -> dict[str, float]:
    from gensim.test.utils import datapath

    kv = keyed(words, vectors)
    _, spearman, oov = kv.evaluate_word_pairs(datapath("wordsim353.tsv"), case_insensitive=True)
    analogy, sections = kv.evaluate_word_analogies(
        datapath("questions-words.txt"), restrict_vocab=30000, case_insensitive=True
    )
    total = next(s for s in sections if s["section"] == "Total accuracy")
    asked = len(total["correct"]) + len(total["incorrect"])
    known = set(words)
    return {
        "wordsim_spearman": float(spearman.statistic if hasattr(spearman, "statistic") else spearman[0]),
        "wordsim_oov": float(oov),
        "analogy": 100 * float(analogy),
        "analogy_asked": asked,
        "coverage": 100 * sum(t in known for t in eval_tokens) / len(eval_tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", default="skipgram,word2vec,fasttext")
    parser.add_argument("--epochs", type=int, default=1, help="passes (make vectors: 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads / gensim workers")
    parser.add_argument("--dim", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    sentences = [s for dataset, column, splits in CORPUS for s in corpus_sentences(dataset, column, splits)]
    tokens = sum(len(s) for s in sentences)
    print(f"corpus: {len(sentences):,} texts, {tokens:,} tokens, read in {time.monotonic() - started:.0f} s")
    eval_tokens = [t for s in corpus_sentences("conll2003", "tokens", ["validation", "test"]) for t in s]
    settings = {
        "dim": args.dim,
        "window": 5,
        "negatives": 5,
        "min_count": 5,
        "epochs": args.epochs,
        "seed": 1,
    }
    rows = []
    for method in args.methods.split(","):
        started = time.monotonic()
        if method == "skipgram":
            words, vectors = train_word_vectors(sentences, **settings)
        else:
            words, vectors = train_gensim_vectors(sentences, method, workers=args.threads, **settings)
        seconds = time.monotonic() - started
        scores = evaluate(words, vectors, eval_tokens)
        rows.append((method, seconds, len(words), scores))
        print(f"{method}: {seconds:.0f} s, {len(words):,} words, {scores}", flush=True)
    base = next((s for m, s, _, _ in rows if m == "skipgram"), None)
    print(
        f"\n{tokens:,} tokens, dim {args.dim}, window 5, 5 negatives, min count 5, {args.epochs} epoch(s), "
        f"{args.threads} thread(s)/worker(s), torch {torch.__version__}, {os.cpu_count()} CPUs\n"
    )
    print(
        "| method | wall | speed vs seqtasks' skip-gram | words | WordSim-353 ρ | analogies (asked) "
        "| CoNLL dev+test tokens with a vector |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for method, seconds, count, s in rows:
        ratio = f"{base / seconds:.1f}×" if base else "—"
        print(
            f"| {method} | {seconds / 60:.1f} min | {ratio} | {count:,} | {s['wordsim_spearman']:.3f} | "
            f"{s['analogy']:.1f} % ({s['analogy_asked']:,}) | {s['coverage']:.2f} % |"
        )


if __name__ == "__main__":
    main()
