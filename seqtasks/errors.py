"""The base of seqtasks' own error types: what ``seqtasks`` commands report in a line or two, no traceback.

Every error seqtasks raises about the user's input (data, files, checkpoints, settings) derives from
:class:`SeqtasksError`, a ``ValueError``, so existing ``except ValueError`` code keeps catching it. The
command line's handler (:func:`seqtasks.cli.main`) prints ``seqtasks COMMAND: message`` and exits 1 for
these; ``--debug`` or ``SEQTASKS_DEBUG=1`` shows the traceback instead. Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations


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
