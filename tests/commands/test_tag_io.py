"""``seqtasks tag`` and ``predict-conll`` on files, stdin and JSONL: records with character offsets and
confidences, ids = line numbers, user errors as one-line messages naming the file and line."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from seqtasks.cli import main

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
TAGGER = str(LEGACY / "tagger.ckpt")


def run(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None) -> str:
    if stdin is not None:
        old, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        main(argv)
    finally:
        if stdin is not None:
            sys.stdin = old
    return capsys.readouterr().out


def test_a_file_to_jsonl_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "news.txt"
    source.write_text("Merkel's party met Dhaval.\nPeter Blackburn visited New York\n")
    out = tmp_path / "out.jsonl"
    assert run(["tag", "--ckpt", TAGGER, "--input", str(source), "--format", "jsonl", "--output", str(out)],
               capsys) == ""  # fmt: skip
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [1, 2]
    assert list(records[0]) == ["id", "text", "tokens", "entities"]
    assert [t["text"] for t in records[0]["tokens"]] == ["Merkel", "'s", "party", "met", "Dhaval", "."]
    for record in records:
        text = record["text"]
        assert all(text[t["start"] : t["end"]] == t["text"] for t in record["tokens"])
        assert all(text[e["start"] : e["end"]] == e["text"] for e in record["entities"])
        assert all(0 < t["confidence"] <= 1 for t in record["tokens"])
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in records[1]["entities"]] == [
        ("PER", "Peter Blackburn", 0, 15),
        ("LOC", "New York", 24, 32),
    ]


def test_stdin_text_format_and_jsonl_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(["tag", "--ckpt", TAGGER, "--input", "-"], capsys, stdin="Tokyo\nPeter Blackburn left\n")
    blocks = out.strip("\n").split("\n\n")
    assert len(blocks) == 2 and blocks[0].splitlines()[-1] == "# entities: LOC: Tokyo [0-0]"
    token, tag, confidence = blocks[0].splitlines()[0].split("\t")
    assert (token, tag) == ("Tokyo", "B-LOC") and 0.5 < float(confidence) <= 1
    assert blocks[1].splitlines()[-1] == "# entities: PER: Peter Blackburn [0-1]"
    jsonl = '{"text": "Tokyo", "id": "a"}\n{"text": "Paris"}\n'
    out = run(["tag", "--ckpt", TAGGER, "--input", "-", "--jsonl", "--format", "jsonl", "--batch-size", "1"],
              capsys, stdin=jsonl)  # fmt: skip
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records] == ["a", 2] and records[1]["entities"][0]["text"] == "Paris"


def test_user_errors_name_the_input(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("Tokyo\n\nParis\n")
    bad_json = tmp_path / "in.jsonl"
    bad_json.write_text('{"text": "Tokyo"}\n{"txt": 1}\n')
    blank_json = tmp_path / "blank.jsonl"
    blank_json.write_text('{"text": "Tokyo", "id": "x7"}\n{"text": " ... "}\n{"text": "  ", "id": "x9"}\n')
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases = [
        (source, f"{source}, line 2: no tokens to tag"),
        (bad_json, f"{bad_json}, line 2: expected"),
        (blank_json, f"{blank_json}, id 'x9': no tokens"),
        (empty, f"{empty}: no texts to tag"),
        (tmp_path / "no.txt", "no.txt: no such file"),
    ]
    for path, message in cases:
        with pytest.raises(SystemExit, match=f"seqtasks tag: .*{message}") as error:
            main(["tag", "--ckpt", TAGGER, "--input", str(path)])
        assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "content", ["", "-DOCSTART- -X- O O\n\n-DOCSTART- -X- O O\n"], ids=["empty", "docstart"]
)
def test_predict_conll_refuses_a_file_without_sentences(tmp_path: Path, content: str) -> None:
    source = tmp_path / "in.conll"
    source.write_text(content)
    with pytest.raises(SystemExit, match=rf"seqtasks predict-conll: {source} holds no sentences"):
        main(["predict-conll", "--ckpt", TAGGER, "--input", str(source), "--output", str(tmp_path / "o")])


def test_predict_conll_from_stdin_with_jsonl_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conll = "-DOCSTART- O\n\nPeter B-PER\nBlackburn I-PER\nleft O\n\nParis B-LOC\n"
    out, records = tmp_path / "out.conll", tmp_path / "out.jsonl"
    argv = ["predict-conll", "--ckpt", TAGGER, "--input", "-", "--scheme", "iob2"]
    printed = run([*argv, "--output", str(out), "--jsonl-output", str(records)], capsys, stdin=conll)
    assert printed.strip() == f"{out}: 2 sentences; entity precision 100.00 recall 100.00 F1 100.00"
    assert out.read_text().splitlines()[0].split() == ["Peter", "B-PER", "B-PER"]
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert [(r["id"], r["line"]) for r in lines] == [(1, 3), (2, 7)] and lines[1]["gold"] == ["B-LOC"]
    only = tmp_path / "only.jsonl"
    run([*argv, "--output", str(only), "--format", "jsonl"], capsys, stdin=conll)
    assert only.read_text() == records.read_text()
    with pytest.raises(SystemExit, match=r"seqtasks predict-conll: <stdin>, line 2: expected 2 columns"):
        run(["predict-conll", "--ckpt", TAGGER, "--input", "-", "--output", str(out)], capsys,
            stdin="Paris B-LOC\nYoda\n")  # fmt: skip
