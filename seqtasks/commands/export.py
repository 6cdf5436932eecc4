"""Export a classifier's network, or a tagger's emission network, to ONNX.

seqtasks export --ckpt runs/sentiment-imdb/.../best.ckpt --format onnx --output classifier.onnx

The classifier's graph maps tokens (B, T) and lengths (B,) to logits (B, num_labels); the tagger's maps
words (B, T), chars (B, T, L), casing (B, T) and lengths (B,) to emission scores (B, T, num_tags), with the
CRF's Viterbi decoding left to Python (seqtasks.nn.crf.CRF.decode; its transitions are in the metadata).
Batch and time axes are dynamic. The labels, the input names and the checkpoint's codec state
(vocabularies) are stored in the file's metadata_props as JSON (keys seqtasks.*), so the file stands alone.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a SequenceClassifier or TokenTagger checkpoint")
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format")
    parser.add_argument("--output", help="the file to write; default: the checkpoint's path with .onnx")


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from seqtasks.checkpoints import CheckpointError

    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SystemExit(
            "seqtasks export: ONNX export needs the onnx package: pip install 'seqtasks[export]'"
        ) from None
    from seqtasks.inference.export import export_onnx

    output = options.output or os.path.splitext(options.ckpt)[0] + ".onnx"
    try:
        export_onnx(options.ckpt, output)
    except CheckpointError as error:
        raise SystemExit(f"seqtasks export: {error}") from None
    except OSError as error:
        raise SystemExit(f"seqtasks export: cannot write {output}: {error.strerror}") from None
    print(f"wrote {output} ({os.path.getsize(output) / 1e6:.2f} MB)")
