"""Tag the tokens of texts (NER) with a tagger checkpoint: a token/tag line per token, then the entities.

seqtasks tag --ckpt runs/ner-conll2003/.../best.ckpt "Dhaval loves baby yoda"
Each text is split like CoNLL (words, numbers, punctuation); a text with no token is refused, naming its
number. The checkpoint alone is enough (no data, no config).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a TokenTagger checkpoint (any seqtasks format)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass")
    parser.add_argument("texts", nargs="+", help="texts to tag (tokenised like CoNLL: words, punctuation)")


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from seqtasks.checkpoints import CheckpointError
    from seqtasks.inference.tagging import Tagger

    try:
        tagger = Tagger.from_checkpoint(options.ckpt, batch_size=options.batch_size)
    except CheckpointError as error:  # names the file
        raise SystemExit(f"seqtasks tag: {error}") from None
    except TypeError as error:  # a checkpoint of another task
        raise SystemExit(f"seqtasks tag: {options.ckpt}: {error}") from None
    try:
        results = tagger.tag(options.texts)
    except ValueError as error:  # a text with no token
        raise SystemExit(f"seqtasks tag: {error}") from None
    for number, result in enumerate(results):
        if number:
            print()
        for token, tag in zip(result["tokens"], result["tags"], strict=True):
            print(f"{token}\t{tag}")
        spans = "; ".join(f"{kind}: {text} [{a}-{b}]" for kind, a, b, text in result["entities"])
        print(f"# entities: {spans or '(none)'}")
