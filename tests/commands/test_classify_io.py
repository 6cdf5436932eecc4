"""``seqtasks classify`` on files, stdin and JSONL: ids are line numbers or JSONL ids, the TSV columns never
shift, every class probability is in the JSONL, user errors are one-line messages."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqtasks.cli import main
from seqtasks.inference.classification import Classifier
from seqtasks.inference.io import unescape_field

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
CKPT = str(LEGACY / "classifier.ckpt")
TEXTS = ["a wonderful film", "dull\tand\nboring", "great acting and a fine story", "terrible"]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_checkpoint(CKPT)


def test_file_to_jsonl_keeps_order_and_every_probability(tmp_path: Path, classifier: Classifier) -> None:
    source, target = tmp_path / "in.txt", tmp_path / "out.jsonl"
    lines = [t.replace("\n", " ") for t in TEXTS] * 5  # 20 lines, batches of 3
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    main(["classify", "--ckpt", CKPT, "--input", str(source), "--output", str(target),
          "--format", "jsonl", "--batch-size", "3"])  # fmt: skip
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == list(range(1, 21))
    expected = classifier.records(lines)
    for got, want in zip(records, expected, strict=True):
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_text_output_escapes_tabs_and_newlines(capsys: pytest.CaptureFixture, classifier: Classifier) -> None:
    main(["classify", "--ckpt", CKPT, *TEXTS])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(TEXTS)
    for line, text, want in zip(lines, TEXTS, classifier.classify(TEXTS), strict=True):
        label, probability, field = line.split("\t")  # exactly three columns, whatever the text
        assert unescape_field(field) == text
        assert label == want.label and float(probability) == pytest.approx(want.probability, abs=1e-4)


def test_stdin_jsonl_keeps_the_input_ids(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    stdin = '{"id": "r1", "text": "a wonderful film"}\n{"text": "terrible"}\n'
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    main(["classify", "--ckpt", CKPT, "--input", "-", "--jsonl", "--format", "jsonl"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in records] == ["r1", 2]
    monkeypatch.setattr(sys, "stdin", io.StringIO("plain text\n"))
    main(["classify", "--ckpt", CKPT, "--input", "-"])
    assert capsys.readouterr().out.endswith("\tplain text\n")


def test_user_errors_are_one_line_messages(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "oops"}\n', encoding="utf-8")
    with pytest.raises(SystemExit, match=r"seqtasks classify: .*bad.jsonl, line 2: expected an object"):
        main(["classify", "--ckpt", CKPT, "--input", str(bad)])
    blank = tmp_path / "blank.txt"
    blank.write_text("fine\n\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"blank.txt: input 2: empty text"):
        main(["classify", "--ckpt", CKPT, "--input", str(blank)])
    with pytest.raises(SystemExit, match=r"cannot read .*none\.txt"):
        main(["classify", "--ckpt", CKPT, "--input", str(tmp_path / "none.txt")])
    with pytest.raises(SystemExit, match="does not classify"):
        main(["classify", "--ckpt", str(LEGACY / "translator.ckpt"), "text"])
    with pytest.raises(SystemExit):  # argparse: both texts and --input
        main(["classify", "--ckpt", CKPT, "--input", str(blank), "text"])


def test_help_is_quick_and_imports_nothing_heavy() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "seqtasks.cli", "classify", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    for option in ["--input", "--output", "--format", "--batch-size", "--jsonl", "--quiet"]:
        assert option in out.stdout
    code = "import sys, seqtasks.commands.classify; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]"
