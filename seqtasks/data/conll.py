"""Raw CoNLL column files (CoNLL-2000/2003 style) and tag-scheme conversion to IOB2.

A file holds one token per line, columns separated by whitespace, a blank line between sentences and
``-DOCSTART-`` lines between documents. Which column holds the label is a setting (the last one by
default); the label's scheme (IOB1 as in the original CoNLL-2003 files, IOB2, or BIOES) is converted to
IOB2, the one scheme the rest of seqtasks uses. A malformed line stops reading with the file, the line
number and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from seqtasks.data.errors import DataError

Scheme = Literal["iob1", "iob2", "bioes"]

_PREFIXES: dict[str, set[str]] = {"iob1": {"B", "I"}, "iob2": {"B", "I"}, "bioes": {"B", "I", "E", "S"}}


class ConllFormatError(DataError):
    """A malformed line of a CoNLL file; ``line`` is 1-based."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}, line {line}", message)
        self.path = path
        self.line = line


@dataclass
class ConllSentence:
    """One sentence: its tokens, every column (tokens first), IOB2 labels, document index, first line."""

    tokens: list[str]
    columns: list[list[str]]
    tags: list[str]
    document_id: int
    line: int
    extra: dict[str, list[str]] = field(default_factory=dict)


def _split(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind:
        return tag, ""
    return prefix, kind


def check_tag(tag: str, scheme: Scheme) -> str | None:
    """Why ``tag`` is not a tag of ``scheme``, or None when it is one."""
    if tag == "O":
        return None
    prefix, kind = _split(tag)
    if not kind:
        return f"tag {tag!r} is neither O nor PREFIX-TYPE"
    if prefix not in _PREFIXES[scheme]:
        return f"tag {tag!r} has prefix {prefix!r}, not one of {sorted(_PREFIXES[scheme])} ({scheme})"
    return None


def to_iob2(tags: Sequence[str], scheme: Scheme) -> list[str]:
    """Convert a sentence's tags from ``scheme`` to IOB2 (every entity starts with ``B-``).

    IOB1 uses ``B-`` only between two adjacent entities of one type, so an ``I-X`` that does not continue
    an ``X`` entity starts one. BIOES: ``S-`` → ``B-``, ``E-`` → ``I-``. IOB2 input is repaired the same
    way as IOB1 (an ``I-X`` after ``O`` starts an entity, as conlleval reads it).
    """
    if scheme not in _PREFIXES:
        raise ValueError(f"scheme must be one of {sorted(_PREFIXES)}, got {scheme!r}")
    out: list[str] = []
    previous_kind = ""
    for tag in tags:
        prefix, kind = _split(tag)
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


def from_iob2_to_bioes(tags: Sequence[str]) -> list[str]:
    """IOB2 → BIOES (for writing files in that scheme, and for round-trip tests)."""
    out = []
    for i, tag in enumerate(tags):
        prefix, kind = _split(tag)
        if prefix == "O":
            out.append("O")
            continue
        continues = i + 1 < len(tags) and tags[i + 1] == f"I-{kind}"
        if prefix == "B":
            out.append(f"B-{kind}" if continues else f"S-{kind}")
        else:
            out.append(f"I-{kind}" if continues else f"E-{kind}")
    return out


def read_conll(
    path: str | Path,
    label_column: int = -1,
    scheme: Scheme = "iob1",
    convert_columns: Sequence[int] = (),
    separator: str | None = None,
) -> Iterator[ConllSentence]:
    """Sentences of a CoNLL column file, labels converted to IOB2.

    Args:
        path: the file.
        label_column: index of the label column (negative counts from the end).
        scheme: the label column's tag scheme: ``iob1`` (original CoNLL-2003), ``iob2`` or ``bioes``.
        convert_columns: other columns also holding tags of ``scheme`` (e.g. CoNLL-2003's chunk column 2),
            converted to IOB2 in ``ConllSentence.columns``.
        separator: column separator; any whitespace when None.

    Raises:
        ConllFormatError: a line with a different number of columns than the file's first token line, too
            few columns for ``label_column``, or a tag that is not a tag of ``scheme``.
    """
    path = str(path)
    if scheme not in _PREFIXES:
        raise ValueError(f"scheme must be one of {sorted(_PREFIXES)}, got {scheme!r}")
    width: int | None = None
    document = 0
    seen_docstart = False
    rows: list[list[str]] = []
    first_line = 0

    def sentence() -> ConllSentence:
        columns = [list(c) for c in zip(*rows, strict=True)]
        for index in convert_columns:
            columns[index] = to_iob2(columns[index], scheme)
        tags = to_iob2(columns[label_column], scheme)
        return ConllSentence(columns[0], columns, tags, max(document, 0), first_line)

    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                if rows:
                    yield sentence()
                    rows = []
                continue
            parts = line.split(separator) if separator else line.split()
            if parts[0] == "-DOCSTART-":
                if rows:
                    yield sentence()
                    rows = []
                if seen_docstart:
                    document += 1
                seen_docstart = True
                continue
            if width is None:
                width = len(parts)
                if width < 2 or not -width <= label_column < width:
                    raise ConllFormatError(
                        path,
                        number,
                        f"{width} column(s), but label_column={label_column} needs a token column and a "
                        f"label column: {line!r}",
                    )
            if len(parts) != width:
                raise ConllFormatError(
                    path,
                    number,
                    f"expected {width} columns like the first token line, got {len(parts)}: {line!r}",
                )
            for index in (label_column, *convert_columns):
                problem = check_tag(parts[index], scheme)
                if problem:
                    raise ConllFormatError(path, number, f"column {index}: {problem}")
            if not rows:
                first_line = number
            rows.append(parts)
    if rows:
        yield sentence()


def write_conll(path: str | Path, sentences: Sequence[Sequence[Sequence[str]]]) -> None:
    """Write sentences of rows (each row: its columns) space-separated, a blank line after each."""
    with open(path, "w", encoding="utf-8") as handle:
        for rows in sentences:
            for row in rows:
                handle.write(" ".join(row) + "\n")
            handle.write("\n")
