"""Raw CoNLL column files (CoNLL-2000/2003 style) and tag-scheme conversion to IOB2.

A file holds one token per line, columns separated by whitespace, a blank line between sentences and
``-DOCSTART-`` lines between documents. Which column holds the label is a setting (the last one by
default); the label's scheme (IOB1 as in the original CoNLL-2003 files, IOB2, or BIOES) is converted to
IOB2, the one scheme the rest of seqtasks uses (:mod:`seqtasks.tags` holds the schemes). A malformed
line stops reading with the file, the line number and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seqtasks.data.errors import DataError
from seqtasks.tags import SCHEMES, Scheme, check_tag, to_iob2


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


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line without its end)`` of a UTF-8 text file; bytes that are not UTF-8 raise
    :class:`ConllFormatError` naming the line and the byte's offset in the file (not a bare
    ``UnicodeDecodeError``)."""
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ConllFormatError(
                    path,
                    number,
                    f"not UTF-8 text (byte {offset + error.start} of the file: {error.reason})",
                ) from None
            offset += len(raw)
            yield number, line.rstrip("\n").rstrip("\r")


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
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
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

    for number, line in read_lines(path):
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
