"""The options every inference command shares: inputs from arguments, a file or stdin; output; batching."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator


def add_io_arguments(parser: argparse.ArgumentParser, what: str, formats: str, batch: str) -> None:
    """``texts`` / ``--input`` / ``--jsonl`` / ``--output`` / ``--format`` / ``--batch-size`` / ``--quiet`` /
    ``--torch-threads``; ``what`` names the inputs, ``formats`` explains the two output formats and
    ``batch`` what one batch holds."""
    parser.add_argument(
        "--input", help=f"a file of {what}, one per line ('-': stdin); .jsonl: {{'text', 'id'}}"
    )
    parser.add_argument(
        "--jsonl", action="store_true", help="read --input as JSONL whatever its name (e.g. stdin)"
    )
    parser.add_argument("--output", help="where to write the results; stdout when not given")
    parser.add_argument("--format", choices=("text", "jsonl"), default="text", help=formats)
    parser.add_argument("--batch-size", type=int, default=64, help=f"{batch} per forward pass")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on a file input")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (0: torch's default); one thread runs these small recurrent networks "
        "fastest on a shared CPU (see seqtasks.inference.io.set_threads)",
    )
    parser.add_argument("texts", nargs="*", help=f"{what} (or --input)")


def check_io_arguments(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Texts or ``--input``, not both, and a positive batch size (argparse's own usage errors)."""
    if bool(options.input) == bool(options.texts):
        parser.error("give either texts or --input FILE (or --input - for stdin)")
    if options.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if options.torch_threads < 0:
        parser.error("--torch-threads must be at least 0")


@contextlib.contextmanager
def warnings_as_lines(command: str, source: str | None = None) -> Iterator[None]:
    """Print the inference APIs' :class:`~seqtasks.errors.TruncationWarning` as ``seqtasks COMMAND:
    warning: [SOURCE: ]message`` on stderr (no file and line of ours); other warnings as usual."""
    from seqtasks.errors import TruncationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncationWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, TruncationWarning):
                    where = f"{source}: " if source else ""
                    print(f"seqtasks {command}: warning: {where}{warning.message}", file=sys.stderr)
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
