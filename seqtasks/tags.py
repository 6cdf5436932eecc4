"""Tag schemes of span labelling (IOB1, IOB2, BIOES): the one place that splits tags and reads spans.

A tag is ``O`` or ``PREFIX-TYPE`` (``B-PER``, ``I-LOC``, ``E-ORG``, ``S-MISC``). seqtasks trains on IOB2
(every span starts with ``B-``); the CoNLL reader converts IOB1 and BIOES files to it with :func:`to_iob2`,
the span metric reads spans with :func:`spans`, and the CRF forbids the transitions IOB2 never contains
with :func:`iob2_transitions`. Pure Python (no torch), so every one of them can use it.

Spans are read exactly as the official ``conlleval`` script reads them (and seqeval in its default mode):
an ``I-X`` after ``O`` or after a span of another type starts a span, and an ``E-``/``S-`` tag ends one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Scheme = Literal["iob1", "iob2", "bioes"]
"""The tag schemes the reader accepts."""

SCHEMES: dict[str, frozenset[str]] = {
    "iob1": frozenset({"B", "I"}),
    "iob2": frozenset({"B", "I"}),
    "bioes": frozenset({"B", "I", "E", "S"}),
}
"""Each scheme's span prefixes (``O`` is in every scheme)."""

Span = tuple[str, int, int]
"""``(type, first token, last token)``, both ends inclusive."""


def split_tag(tag: str) -> tuple[str, str]:
    """``B-PER`` → ``("B", "PER")``; ``O`` → ``("O", "")``; a tag with no ``-TYPE`` → ``(tag, "")``."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind:
        return tag, ""
    return prefix, kind


def check_tag(tag: str, scheme: Scheme) -> str | None:
    """Why ``tag`` is not a tag of ``scheme``, or None when it is one."""
    _check_scheme(scheme)
    if tag == "O":
        return None
    prefix, kind = split_tag(tag)
    if not kind:
        return f"tag {tag!r} is neither O nor PREFIX-TYPE"
    if prefix not in SCHEMES[scheme]:
        return f"tag {tag!r} has prefix {prefix!r}, not one of {sorted(SCHEMES[scheme])} ({scheme})"
    return None


def to_iob2(tags: Sequence[str], scheme: Scheme) -> list[str]:
    """Convert a sentence's tags from ``scheme`` to IOB2 (every span starts with ``B-``).

    IOB1 uses ``B-`` only between two adjacent spans of one type, so an ``I-X`` that does not continue
    an ``X`` span starts one. BIOES: ``S-`` → ``B-``, ``E-`` → ``I-``. IOB2 input is repaired the same
    way as IOB1 (an ``I-X`` after ``O`` starts a span, as conlleval reads it).
    """
    _check_scheme(scheme)
    out: list[str] = []
    previous_kind = ""
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "O":
            out.append("O")
            previous_kind = ""
            continue
        if scheme == "bioes":
            prefix = {"S": "B", "E": "I"}.get(prefix, prefix)
        if prefix == "I" and previous_kind != kind:
            prefix = "B"
        out.append(f"{prefix}-{kind}")
        previous_kind = kind
    return out


def iob2_to_bioes(tags: Sequence[str]) -> list[str]:
    """IOB2 → BIOES (for writing files in that scheme, and for round-trip tests)."""
    out = []
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == "O":
            out.append("O")
            continue
        continues = i + 1 < len(tags) and tags[i + 1] == f"I-{kind}"
        if prefix == "B":
            out.append(f"B-{kind}" if continues else f"S-{kind}")
        else:
            out.append(f"I-{kind}" if continues else f"E-{kind}")
    return out


def _outside(prefix: str) -> bool:
    return prefix in ("O", ".")  # conlleval also reads "." as outside


def _ends(prev: str, prefix: str, prev_kind: str, kind: str) -> bool:
    """conlleval's ``endOfChunk``: does the span that ``prev`` belongs to end before this tag?"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return not _outside(prev) and prev_kind != kind


def _starts(prev: str, prefix: str, prev_kind: str, kind: str) -> bool:
    """conlleval's ``startOfChunk``: does a span start at this tag?"""
    if prefix in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and prefix in ("E", "I"):
        return True
    return not _outside(prefix) and prev_kind != kind


def spans(tags: Sequence[str]) -> list[Span]:
    """``(type, first, last)`` of every span in one sentence's tags (any scheme), in order, as conlleval.

    >>> spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    [('PER', 0, 1), ('LOC', 3, 3), ('LOC', 4, 4)]
    """
    found: list[Span] = []
    prev, prev_kind, begin = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, kind = split_tag(tag)
        if _ends(prev, prefix, prev_kind, kind) and prev_kind:
            found.append((prev_kind, begin, i - 1))
        if _starts(prev, prefix, prev_kind, kind):
            begin = i
        prev, prev_kind = prefix, kind
    return found


def span_types(labels: Sequence[str]) -> list[str]:
    """The span types a tag set names, sorted: ``["O", "B-PER", "I-PER", "B-LOC"]`` → ``["LOC", "PER"]``."""
    return sorted({kind for kind in (split_tag(t)[1] for t in labels) if kind})


def iob2_transitions(labels: Sequence[str]) -> tuple[list[list[bool]], list[bool]]:
    """Allowed ``[from][to]`` transitions and allowed first tags of IOB2 sequences over ``labels``.

    ``I-X`` may only follow ``B-X`` or ``I-X`` and never starts a sentence; everything else is allowed.
    """
    parts = [split_tag(tag) for tag in labels]
    size = len(labels)
    allowed = [[True] * size for _ in range(size)]
    start = [True] * size
    for j, (prefix_to, kind_to) in enumerate(parts):
        if prefix_to == "I":
            start[j] = False
            for i, (prefix_from, kind_from) in enumerate(parts):
                allowed[i][j] = prefix_from in ("B", "I") and kind_from == kind_to
    return allowed, start


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
