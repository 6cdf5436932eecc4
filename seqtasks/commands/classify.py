"""Label texts with a classifier checkpoint: one line per text, label, probability and text, tab-separated.

seqtasks classify --ckpt runs/sentiment-imdb/.../best.ckpt "a wonderful film" "dull and boring"
An empty text is refused, naming its number; the checkpoint alone is enough (no data, no config).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a SequenceClassifier checkpoint (any seqtasks format)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    parser.add_argument("texts", nargs="+", help="texts to classify")


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from seqtasks.checkpoints import CheckpointError
    from seqtasks.data.text import EmptyTextError
    from seqtasks.inference.classification import Classifier

    try:
        classifier = Classifier.from_checkpoint(options.ckpt, batch_size=options.batch_size)
        results = classifier.classify(options.texts)
    except (CheckpointError, EmptyTextError) as error:
        raise SystemExit(f"seqtasks classify: {error}") from None
    for text, (label, probability, _) in zip(options.texts, results, strict=True):
        print(f"{label}\t{probability:.4f}\t{text}")
