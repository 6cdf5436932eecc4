"""One top-level handler for every command (issue 12, item 7).

seqtasks' own errors (data, input, checkpoint; :class:`seqtasks.errors.SeqtasksError`) and a missing file
print ``seqtasks COMMAND: message`` and a hint, no traceback, and exit with status 1 — training commands
(LightningCLI) included. ``--debug`` or ``SEQTASKS_DEBUG=1`` re-raises with the traceback; an unknown error
(a bug) always keeps its traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import seqtasks.cli as cli
from seqtasks.checkpoints import CheckpointError
from seqtasks.data.errors import DataError
from seqtasks.errors import SeqtasksError

ROOT = Path(__file__).resolve().parents[1]


def seqtasks(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if k != "SEQTASKS_DEBUG"},
        "WANDB_MODE": "disabled",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
        **env,
    }
    environment.setdefault("SEQTASKS_DEBUG", "0")
    return subprocess.run(
        [sys.executable, "-m", "seqtasks.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=environment,
    )


def bad_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "bad"
    root.mkdir()
    pq.write_table(
        pa.table({"txt": ["a good film", "a dull film"] * 8, "label": [1, 0] * 8}), root / "train.parquet"
    )
    return root


def fit_args(dataset: Path, tmp_path: Path) -> list[str]:
    return [
        "fit",
        "--config",
        "recipes/sentiment-imdb.yaml",
        "--data.init_args.dataset",
        str(dataset),
        "--trainer.logger",
        "false",
        "--trainer.max_steps",
        "1",
        "--trainer.default_root_dir",
        str(tmp_path / "run"),
    ]


def test_fit_with_bad_data_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    result = seqtasks(*fit_args(bad_dataset(tmp_path), tmp_path), tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith(("seqtasks", "(seqtasks"))]
    assert len(ours) == 2, result.stderr
    assert ours[0].startswith("seqtasks fit: ") and "train.parquet: missing column(s) ['text']" in ours[0]
    assert "--debug" in ours[1]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(how: str, tmp_path: Path) -> None:
    args = fit_args(bad_dataset(tmp_path), tmp_path)
    if how == "flag":
        result = seqtasks(args[0], "--debug", *args[1:], tmp_path=tmp_path)
    else:
        result = seqtasks(*args, tmp_path=tmp_path, SEQTASKS_DEBUG="1")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "seqtasks.data.errors.DataError" in result.stderr


def test_an_inference_command_with_a_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    result = seqtasks("tag", "--ckpt", str(tmp_path / "none.ckpt"), "John lives here", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "none.ckpt" in result.stderr.splitlines()[0]


def raising(error: BaseException):
    def dispatch(*args: object) -> None:
        raise error

    return dispatch


@pytest.mark.parametrize(
    "error",
    [
        DataError("train.parquet", "bad label", row=3, field="label"),
        CheckpointError("x.ckpt: no such checkpoint file"),
        SeqtasksError("contradictory settings"),
        FileNotFoundError(2, "No such file or directory", "recipe.yaml"),
    ],
)
def test_own_errors_are_one_line(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEQTASKS_DEBUG", "0")
    monkeypatch.setattr(cli, "dispatch", raising(error))
    with pytest.raises(SystemExit) as raised:
        cli.main(["validate"])
    assert raised.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"seqtasks validate: {error}" and len(lines) == 2


def test_input_errors_of_the_inference_api_are_ours_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from seqtasks.inference.io import InputError

    monkeypatch.setattr(cli, "dispatch", raising(InputError("in.jsonl, line 2: not JSON")))
    with pytest.raises(SystemExit):
        cli.main(["classify"])
    assert capsys.readouterr().err.startswith("seqtasks classify: in.jsonl, line 2: not JSON\n")


@pytest.mark.parametrize("error", [ZeroDivisionError("division by zero"), ValueError("a bug"), KeyError("k")])
def test_unknown_errors_keep_their_traceback(error: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "dispatch", raising(error))
    with pytest.raises(type(error)):
        cli.main(["fit"])


def test_debug_flag_re_raises_our_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQTASKS_DEBUG", "0")  # restored after the test: main sets it to 1
    seen: list[list[str]] = []

    def dispatch(name: str, argv: list[str], from_command_line: bool = False) -> None:
        seen.append(argv)
        raise DataError("train.parquet", "bad")

    monkeypatch.setattr(cli, "dispatch", dispatch)
    with pytest.raises(DataError):
        cli.main(["fit", "--debug", "--config", "r.yaml"])
    assert seen == [["fit", "--config", "r.yaml"]]  # the flag is not passed on to LightningCLI
    assert os.environ.get("SEQTASKS_DEBUG") == "1"  # the other DDP ranks inherit it
