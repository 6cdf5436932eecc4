"""Tag a CoNLL column file with a tagger checkpoint; write 'token gold predicted' lines, print span F1.

seqtasks predict-conll --ckpt runs/ner-conll2003/.../best.ckpt --input eng.testb --output pred.txt
The output (IOB2) is what conlleval reads; the printed precision/recall/F1 are conlleval's.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a TokenTagger checkpoint (any seqtasks format)")
    parser.add_argument("--input", required=True, help="a CoNLL column file (token first)")
    parser.add_argument("--output", required=True, help="the file to write")
    parser.add_argument("--label-column", type=int, default=-1, help="the gold label column (-1: the last)")
    parser.add_argument("--scheme", default="iob1", choices=["iob1", "iob2", "bioes"], help="its tag scheme")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass")


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from seqtasks.checkpoints import CheckpointError
    from seqtasks.data.errors import DataError
    from seqtasks.inference.tagging import Tagger, predict_conll

    try:
        tagger = Tagger.from_checkpoint(options.ckpt, batch_size=options.batch_size)
    except CheckpointError as error:  # names the file
        raise SystemExit(f"seqtasks predict-conll: {error}") from None
    except TypeError as error:  # a checkpoint of another task
        raise SystemExit(f"seqtasks predict-conll: {options.ckpt}: {error}") from None
    try:
        scores = predict_conll(tagger, options.input, options.output, options.label_column, options.scheme)
    except FileNotFoundError as error:
        raise SystemExit(f"seqtasks predict-conll: {error.filename}: no such file") from None
    except DataError as error:  # a malformed line: names the file and the line
        raise SystemExit(f"seqtasks predict-conll: {error}") from None
    except ValueError as error:
        raise SystemExit(f"seqtasks predict-conll: {options.input}: {error}") from None
    print(
        f"{options.output}: {scores['sentences']} sentences; entity precision {scores['precision']:.2f} "
        f"recall {scores['recall']:.2f} F1 {scores['f1']:.2f}"
    )
