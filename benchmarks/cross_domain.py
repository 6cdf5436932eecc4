"""Across review domains: sentiment checkpoints scored on the clothing reviews' test split, and the
lecture's two fan reviews with what each checkpoint answers.

    python benchmarks/cross_domain.py --binary sentiment-imdb=runs/sentiment-imdb/.../best.ckpt \\
        --binary sentiment-imdb-lm=runs/sentiment-imdb-lm/.../best.ckpt \\
        --stars sentiment-stars=runs/sentiment-stars/.../best.ckpt

* ``--binary NAME=CKPT``: a two-class (neg/pos) checkpoint, e.g. trained on IMDB. The clothing reviews' test
  split is made binary: 1–2 stars negative, 4–5 positive; 3-star reviews are left out (counted in the table).
* ``--stars NAME=CKPT``: a five-class star checkpoint (labels ``1``…``5`` or ``★…``), scored on all of the
  test split's ratings.

Accuracy and macro-F1 (torchmetrics) per checkpoint, then each checkpoint's answer to the two fan reviews.
Reviews with an empty text are left out and counted. The data: ``SEQTASKS_DATA_DIR/reviews/womens_clothing``
(or ``--data DIR``), the same Parquet the star recipes read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import torch
import torchmetrics.functional as metrics

from seqtasks.inference.classification import Classifier

FAN_REVIEWS = [
    "Not only the fan was expensive, but it was broken when it arrived.",
    "The fan works like a charm, I wasn't expecting such a good quality at this cheap price",
]
"""The lecture's two product reviews: the first is negative, the second positive."""


def named(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"give NAME=CHECKPOINT, got {value!r}")
    return name, path


def read_test(data: Path) -> tuple[list[str], list[int], int]:
    """The test split's texts and star ratings, without empty texts (their number is returned)."""
    path = data / "test.parquet"
    if not path.is_file():
        sys.exit(f"cross_domain: no {path} (set SEQTASKS_DATA_DIR or --data)")
    table = pq.read_table(path, columns=["text", "stars"])
    texts, stars, empty = [], [], 0
    for text, star in zip(table.column("text").to_pylist(), table.column("stars").to_pylist(), strict=True):
        if not text or not text.strip():
            empty += 1
            continue
        texts.append(text)
        stars.append(int(star))
    return texts, stars, empty


def score(predicted: list[int], truth: list[int], classes: int) -> tuple[float, float]:
    p, t = torch.tensor(predicted), torch.tensor(truth)
    accuracy = metrics.accuracy(p, t, task="multiclass", num_classes=classes, average="micro")
    f1 = metrics.f1_score(p, t, task="multiclass", num_classes=classes, average="macro")
    return 100 * float(accuracy), 100 * float(f1)


def star_index(labels: list[str]) -> dict[int, int]:
    """Star rating → the checkpoint's class index (labels like ``1``…``5`` or ``★☆☆☆☆``)."""
    stars = [label.count("★") or int(label) for label in labels]
    return {s: i for i, s in enumerate(stars)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--binary", type=named, action="append", default=[], metavar="NAME=CKPT")
    parser.add_argument("--stars", type=named, action="append", default=[], metavar="NAME=CKPT")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if not args.binary and not args.stars:
        parser.error("give at least one --binary or --stars checkpoint")
    torch.set_num_threads(args.threads)
    data = args.data or Path(os.environ.get("SEQTASKS_DATA_DIR", "data")) / "reviews" / "womens_clothing"
    texts, stars, empty = read_test(data)

    rows, fans = [], []
    for kind, checkpoints in (("binary", args.binary), ("stars", args.stars)):
        for name, path in checkpoints:
            classifier = Classifier.from_checkpoint(path)
            labels = list(classifier.labels)
            if kind == "binary":
                if labels != ["neg", "pos"]:
                    sys.exit(f"cross_domain: {path}: --binary needs labels [neg, pos], it has {labels}")
                kept = [i for i, s in enumerate(stars) if s != 3]
                truth = [int(stars[i] >= 4) for i in kept]
                subset = [texts[i] for i in kept]
                note = f"{len(subset):,} reviews (1–2★ neg, 4–5★ pos; {len(texts) - len(kept):,} 3★ left out)"
            else:
                index = star_index(labels)
                truth, subset = [index[s] for s in stars], texts
                note = f"{len(subset):,} reviews, 5 classes"
            predicted = [
                labels.index(p.label) for p in classifier.classify(subset, batch_size=args.batch_size)
            ]
            accuracy, f1 = score(predicted, truth, len(labels))
            majority = max(truth.count(c) for c in set(truth)) / len(truth)
            note += f"; the majority class is {100 * majority:.2f} %"
            rows.append((name, kind, note, accuracy, f1))
            for text, prediction in zip(FAN_REVIEWS, classifier.classify(FAN_REVIEWS), strict=True):
                fans.append((name, text, prediction.label, prediction.probability))

    print(f"Clothing reviews, test split ({data}); {empty} empty texts left out.\n")
    print("| checkpoint | scored as | test reviews | accuracy | macro-F1 |")
    print("|---|---|---|---:|---:|")
    for name, kind, note, accuracy, f1 in rows:
        print(f"| `{name}` | {kind} | {note} | {accuracy:.2f} % | {f1:.2f} |")
    print("\n| checkpoint | review | answer (probability) |")
    print("|---|---|---|")
    for name, text, label, probability in fans:
        print(f"| `{name}` | {text} | {label} ({probability:.2f}) |")


if __name__ == "__main__":
    main()
