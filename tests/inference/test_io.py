"""The shared input/output helpers of the inference commands: ids are line numbers (or JSONL ids), a bad
line names its file and line, TSV fields never shift, outputs appear whole or not at all."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from seqtasks.inference.io import (
    Input,
    InputError,
    escape_field,
    length_sorted_batches,
    open_output,
    read_inputs,
    unescape_field,
    write_records,
)


def test_texts_file_and_stdin_get_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_inputs(["a", "b"]) == [Input(1, "a"), Input(2, "b")]
    path = tmp_path / "in.txt"
    path.write_text("first\n\nthird\n", encoding="utf-8")
    assert read_inputs(path=str(path)) == [Input(1, "first"), Input(2, ""), Input(3, "third")]
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\ny\n"))
    assert read_inputs(path="-") == [Input(1, "x"), Input(2, "y")]
    with pytest.raises(InputError, match="either texts or --input"):
        read_inputs(["a"], str(path))


def test_jsonl_inputs_keep_their_ids_and_bad_lines_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a", "id": "r7"}\n\n{"text": "b"}\n', encoding="utf-8")
    assert read_inputs(path=str(path)) == [Input("r7", "a"), Input(3, "b")]
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": "s"}\n'))
    assert read_inputs(path="-", jsonl=True) == [Input(1, "s")]
    path.write_text('{"text": "a"}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"in.jsonl, line 2: expected an object with a string 'text'"):
        read_inputs(path=str(path))
    path.write_text('{"text": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"in.jsonl, line 2: not JSON"):
        read_inputs(path=str(path))
    with pytest.raises(InputError, match=r"cannot read .*missing\.txt: no such file"):
        read_inputs(path=str(tmp_path / "missing.txt"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_inputs(path=str(tmp_path / "latin1.txt"))


@pytest.mark.parametrize("text", ["plain", "a\tb", "two\nlines", "back\\slash\\t", "\r\n\t\\", ""])
def test_escaped_fields_hold_one_column_and_round_trip(text: str) -> None:
    field = escape_field(text)
    assert "\t" not in field and "\n" not in field and "\r" not in field
    assert unescape_field(field) == text


def test_write_records_jsonl_and_text() -> None:
    records = [{"id": 1, "label": "पॉज़िटिव"}, {"id": 2, "label": "neg"}]
    out = io.StringIO()
    write_records(out, records)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == records
    assert "पॉज़िटिव" in out.getvalue()  # kept readable, not \u-escaped
    out = io.StringIO()
    write_records(out, records, "text", lambda r: f"{r['id']}\t{r['label']}")
    assert out.getvalue() == "1\tपॉज़िटिव\n2\tneg\n"
    with pytest.raises(ValueError, match="text_line"):
        write_records(out, records, "text")
    with pytest.raises(ValueError, match="format"):
        write_records(out, records, "tsv")


def test_open_output_writes_whole_files_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.txt"
    with open_output(str(path)) as handle:
        handle.write("done\n")
    assert path.read_text() == "done\n"
    with pytest.raises(RuntimeError), open_output(str(path)) as handle:
        handle.write("half")
        raise RuntimeError
    assert path.read_text() == "done\n"  # the old file stays; no partial file is left
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_length_sorted_batches_cover_every_input_once_longest_first() -> None:
    lengths = [3, 9, 1, 9, 5, 2, 7]
    batches = length_sorted_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)
    assert batches[0][:2] == [1, 3]  # equal lengths keep input order
    with pytest.raises(ValueError):
        length_sorted_batches(lengths, 0)


def test_lines_split_at_newlines_only(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes("one\r\ntwo \u2028 still two\x0c\rand two\nthree".encode())
    assert [i.text for i in read_inputs(path=str(path))] == [
        "one",
        "two \u2028 still two\x0c\rand two",
        "three",
    ]
