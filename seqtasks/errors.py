"""The base of seqtasks' own error types: what ``seqtasks`` commands report in a line or two, no traceback.

Every error seqtasks raises about the user's input (data, files, checkpoints, settings) derives from
:class:`SeqtasksError`, a ``ValueError``, so existing ``except ValueError`` code keeps catching it. The
command line's handler (:func:`seqtasks.cli.main`) prints ``seqtasks COMMAND: message`` and exits 1 for
these; ``--debug`` or ``SEQTASKS_DEBUG=1`` shows the traceback instead. Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import sys


class SeqtasksError(ValueError):
    """An error in what the user gave (a file, a row, a setting, a checkpoint), with a message naming it."""


class TruncationWarning(UserWarning):
    """An input longer than the model reads was cut; the message names the inputs and how much was cut.

    The inference APIs warn once per call; the commands print it as ``seqtasks COMMAND: warning: ...`` on
    stderr, and their JSONL records of a cut input carry ``"truncated"``: the number of tokens cut.
    """


def cut_summary(cuts: list[tuple[object, int, int]], unit: str, limit: int, what: str) -> str:
    """The warning text of ``(input, length, cut)`` triples: the inputs, their length and how much was cut."""
    shown = ", ".join(f"input {name} ({length} {unit}, {cut} cut)" for name, length, cut in cuts[:5])
    more = f" and {len(cuts) - 5} more" if len(cuts) > 5 else ""
    inputs, their = ("an input was", "its") if len(cuts) == 1 else (f"{len(cuts)} inputs were", "their")
    return (
        f"{inputs} longer than the {limit} {unit} the model {what}, and cut to {their} first {limit}: "
        f"{shown}{more}"
    )


OWN_ERRORS = (
    ("seqtasks.errors", "SeqtasksError"),
    ("seqtasks.data.errors", "DataError"),
    ("seqtasks.checkpoints", "CheckpointError"),
    ("seqtasks.inference.io", "InputError"),
    ("seqtasks.data.text", "EmptyTextError"),
    ("seqtasks.callbacks", "NonFiniteLossError"),
    ("seqtasks.training", "DistributedRunError"),
)
"""seqtasks' own error types (module, class): reported in a line, without a traceback. An error can only be
of a type whose module is loaded, so the handler imports nothing."""

FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
"""A file the user named that is missing or unreadable: reported in a line too (the message names it)."""


def is_own_error(error: BaseException) -> bool:
    """Whether ``error`` is one of seqtasks' own error types (:data:`OWN_ERRORS`) or a :data:`FILE_ERRORS`."""
    if isinstance(error, FILE_ERRORS):
        return True
    for module_name, class_name in OWN_ERRORS:
        module = sys.modules.get(module_name)
        kind = getattr(module, class_name, None) if module is not None else None
        if isinstance(kind, type) and isinstance(error, kind):
            return True
    return False
