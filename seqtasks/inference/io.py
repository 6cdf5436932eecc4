"""Inputs and outputs of the inference commands: texts from arguments, a file or stdin; text or JSONL out.

Every input gets an id: its line number (from 1) in a file or on stdin, its position among the command-line
texts, or the ``id`` field of a JSONL object. Records (one JSON object per input, ``{"id": ..., ...}``) are
what ``--format jsonl`` writes and what the server answers, so a script can read either the same way.

A JSONL input is one object per line with a ``text`` field (and optionally ``id``); a line that is not such
an object stops the command with the file and line. Blank lines of a text file are inputs like any other
(and are refused as empty texts by the codec, with their line number), so ids always match line numbers.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, NamedTuple, TypeVar

from seqtasks.errors import SeqtasksError

T = TypeVar("T")

FORMATS = ("text", "jsonl")


class Input(NamedTuple):
    """One input of a command: its id (line number or the JSONL ``id``) and its text."""

    id: Any
    text: str


class InputError(SeqtasksError):
    """A bad input file or line; the message names the file and line."""


def read_inputs(
    texts: Sequence[str] = (), path: str | None = None, jsonl: bool | None = None, field: str = "text"
) -> list[Input]:
    """The inputs of a command: ``texts`` (ids 1…n), or the lines of ``path`` (``-``: stdin).

    ``jsonl`` None decides by the file name (``.jsonl``/``.ndjson``); stdin is plain text unless ``jsonl``.
    """
    if path is None:
        return [Input(number, text) for number, text in enumerate(texts, 1)]
    if texts:
        raise InputError("give either texts or --input, not both")
    name = "<stdin>" if path == "-" else path
    if jsonl is None:
        jsonl = path != "-" and path.endswith((".jsonl", ".ndjson"))
    try:
        if path == "-":
            lines = split_lines(sys.stdin.read())
        else:
            with open(path, encoding="utf-8", newline="") as handle:
                lines = split_lines(handle.read())
    except FileNotFoundError:
        raise InputError(f"cannot read {name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"cannot read {name}: it is a directory") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{name}: not UTF-8 text (byte {error.start}: {error.reason})") from None
    if not jsonl:
        return [Input(number, line) for number, line in enumerate(lines, 1)]
    inputs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{name}, line {number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise InputError(f"{name}, line {number}: expected an object with a string {field!r} field")
        inputs.append(Input(record.get("id", number), record[field]))
    return inputs


def split_lines(text: str) -> list[str]:
    """The lines of a file: split at ``\\n`` only (a ``\\r\\n`` ending counts as one), never at the other
    characters ``str.splitlines`` breaks at (``\\r``, form feed, U+2028...), which occur inside texts."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


@contextmanager
def open_output(path: str | None) -> Iterator[IO[str]]:
    """``path`` for writing (through a temporary file, renamed when complete), or stdout when None/``-``."""
    if path in (None, "-"):
        yield sys.stdout
        sys.stdout.flush()
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            yield handle
    except BaseException:
        os.unlink(partial)
        raise
    os.replace(partial, path)  # nothing half-written under the final name


def write_record(handle: IO[str], record: dict[str, Any]) -> None:
    """One JSONL line (UTF-8 kept readable: Devanagari stays Devanagari)."""
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_records(
    handle: IO[str],
    records: Iterable[dict[str, Any]],
    fmt: str = "jsonl",
    text_line: Callable[[dict[str, Any]], str] | None = None,
) -> None:
    """``records`` as JSONL (``fmt`` ``jsonl``) or as text lines, ``text_line(record)`` each (no newline).

    The text form is the command's own (each command knows its columns); escape free text in it with
    :func:`escape_field` so a tab or newline inside a text never shifts a column or adds a line.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "text" and text_line is None:
        raise ValueError("the text format needs text_line(record) -> str")
    for record in records:
        if fmt == "jsonl":
            write_record(handle, record)
        else:
            handle.write(text_line(record) + "\n")


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def escape_field(text: str) -> str:
    """``text`` for one TSV column: backslash, tab, newline and carriage return written as ``\\\\``, ``\\t``,
    ``\\n``, ``\\r`` (reversible with :func:`unescape_field`)."""
    return text.translate(_ESCAPES)


_UNESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def unescape_field(field: str) -> str:
    """The text :func:`escape_field` wrote."""
    return _UNESCAPE.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(0)), field)


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in torch (0 keeps torch's default).

    Measured on the 2-core CPU with other jobs running: the IMDB BiLSTM on a batch of 64 reviews of 400
    tokens took 0.21 s with one thread and 0.9-6 s with two (the threads wait on each other when the cores
    are busy); so the commands default to one thread.
    """
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)


def progress(
    iterable: Iterable[T], total: int | None = None, enabled: bool = True, unit: str = "it"
) -> Iterable[T]:
    """A tqdm bar on stderr when ``enabled`` (inputs from a file), else the iterable itself."""
    if not enabled:
        return iterable
    from tqdm import tqdm  # tqdm comes with datasets; imported only when a bar is drawn

    return tqdm(iterable, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Input positions in batches of ``batch_size``, longest first, so each batch pads little.

    Callers run the batches and put each result back at its position: the output keeps the input order.
    Sorting is stable, so equal lengths keep their input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of ``size``."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]
