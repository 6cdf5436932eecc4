"""``seqtasks translate``: every option in --help with its default, user errors as one-line messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqtasks.cli import main

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


def test_help_lists_every_option_with_its_default_quickly() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "seqtasks.cli", "translate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    options = "--ckpt --beam --max-length --length-penalty --batch-size --input --output --reference"
    for option in options.split():
        assert option in out.stdout
    assert "(default: 64)" in out.stdout and "(default: 1.0)" in out.stdout
    code = "import sys, seqtasks.commands.translate; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]", "the command module imports only the standard library"


def test_translates_a_file_with_a_reference(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    expected = torch.load(LEGACY / "expected.pt", weights_only=True)["translator"]
    source, target = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("\n".join(expected["texts"]) + "\n", encoding="utf-8")
    main(["translate", "--ckpt", str(LEGACY / "translator.ckpt"), "--beam", "3", "--input", str(source),
          "--output", str(target), "--reference", str(source)])  # fmt: skip
    assert target.read_text(encoding="utf-8").splitlines() == expected["beam3"]
    assert "BLEU" in capsys.readouterr().err
    main(["translate", "--ckpt", str(LEGACY / "translator.ckpt"), *expected["texts"][:2]])
    assert capsys.readouterr().out.splitlines() == expected["greedy"][:2]


def test_user_errors_are_one_line_messages(tmp_path: Path) -> None:
    ckpt = str(LEGACY / "translator.ckpt")
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main(["translate", "--ckpt", str(tmp_path / "missing.ckpt"), "a red cat"])
    blank = tmp_path / "blank.txt"
    blank.write_text("a red cat\n\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"blank.txt line 2 is empty"):
        main(["translate", "--ckpt", ckpt, "--input", str(blank)])
    with pytest.raises(SystemExit, match="cannot read"):
        main(["translate", "--ckpt", ckpt, "--input", str(tmp_path / "none.txt")])
    with pytest.raises(SystemExit):  # argparse: neither texts nor --input
        main(["translate", "--ckpt", ckpt])
