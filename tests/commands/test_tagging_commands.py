"""``seqtasks tag``, ``predict-conll`` and ``word-vectors``: every option in --help with its default, no heavy
import before a command runs, user errors as one-line messages, output formats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqtasks.cli import main

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


@pytest.mark.parametrize(
    ("command", "options", "default"),
    [
        ("tag", "--ckpt --input --jsonl --output --format --batch-size --quiet", "(default: 64)"),
        ("predict-conll",
         "--ckpt --input --output --label-column --scheme --batch-size --format --jsonl-output --quiet",
         "(default: iob1)"),
        ("word-vectors", "--text --out --dim --window --negatives --min-count --epochs --cased --seed --show",
         "(default: 100)"),
    ],
)  # fmt: skip
def test_help_lists_every_option_with_its_default(command: str, options: str, default: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "seqtasks.cli", command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    for option in options.split():
        assert option in out.stdout, option
    assert default in out.stdout
    module = command.replace("-", "_")
    code = (
        f"import sys, seqtasks.commands.{module}; print(sorted({{'torch', 'lightning'}} & set(sys.modules)))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]", imported.stderr


def test_tag_prints_tokens_tags_and_entities(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        ["tag", "--ckpt", str(LEGACY / "tagger.ckpt"), "Peter Blackburn visited New York on Monday.", "Tokyo"]
    )
    lines = capsys.readouterr().out.splitlines()
    columns = [line.split("\t") for line in lines]
    assert [c[:2] for c in columns[:2]] == [["Peter", "B-PER"], ["Blackburn", "I-PER"]]
    assert all(0.0 < float(c[2]) <= 1.0 for c in columns[:8])  # the confidence column
    assert lines[8] == "# entities: PER: Peter Blackburn [0-1]; LOC: New York [3-4]"
    assert lines[9] == "" and columns[10][:2] == ["Tokyo", "B-LOC"]
    assert lines[11:] == ["# entities: LOC: Tokyo [0-0]"]


def test_user_errors_are_one_line_messages(tmp_path: Path) -> None:
    tagger = str(LEGACY / "tagger.ckpt")
    cases = [
        (["tag", "--ckpt", str(tmp_path / "missing.ckpt"), "x"], "missing.ckpt: no such checkpoint file"),
        (["tag", "--ckpt", str(LEGACY / "classifier.ckpt"), "x"], "does not tag tokens"),
        (["tag", "--ckpt", tagger, "Paris", " "], "seqtasks tag: text 2: no tokens to tag"),
        (["predict-conll", "--ckpt", tagger, "--input", str(tmp_path / "no.conll"), "--output", "o"],
         "no.conll: no such file"),
    ]  # fmt: skip
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris B-LOC\nYoda\n")
    cases.append(
        (["predict-conll", "--ckpt", tagger, "--input", str(bad), "--output", str(tmp_path / "o")], "line 2")
    )
    for argv, message in cases:
        with pytest.raises(SystemExit, match=message) as error:
            main(argv)
        assert str(error.value).startswith(f"seqtasks {argv[0]}: ")


def test_predict_conll_scores_and_writes_iob2_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = torch.load(LEGACY / "expected.pt", weights_only=True)["tagger"]
    source = tmp_path / "in.conll"
    gold = expected["tags"]
    source.write_text(
        "\n".join("\n".join(f"{t} {g}" for t, g in zip(s, tags, strict=True)) + "\n" for s, tags in
                  zip(expected["sentences"], gold, strict=True))
    )  # fmt: skip
    out = tmp_path / "out.conll"
    ckpt = str(LEGACY / "tagger.ckpt")
    main(["predict-conll", "--ckpt", ckpt, "--input", str(source), "--output", str(out), "--scheme", "iob2"])
    assert capsys.readouterr().out.strip() == (
        f"{out}: 5 sentences; entity precision 100.00 recall 100.00 F1 100.00"
    )
    rows = [line.split() for line in out.read_text().splitlines() if line]
    assert rows[0] == ["Peter", "B-PER", "B-PER"] and len(rows) == sum(len(s) for s in expected["sentences"])
