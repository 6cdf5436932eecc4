"""Errors that point at the offending file, row and field."""

from __future__ import annotations

from seqtasks.errors import SeqtasksError


class DataError(SeqtasksError):
    """Bad input data: the message names where (file or dataset split), which row and which field."""

    def __init__(self, source: str, message: str, row: int | None = None, field: str | None = None) -> None:
        where = source
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")
        self.source = source
        self.row = row
        self.field = field
