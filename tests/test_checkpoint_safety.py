"""A checkpoint chooses nothing to import: only seqtasks' own task classes (issue 12, item 8).

A crafted checkpoint naming ``this.Zen`` as its task (importing ``this`` prints the Zen of Python) or as a
class in its settings is refused with a :class:`CheckpointError` naming the file and the class, before any
import: nothing is printed and ``this`` never enters ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqtasks.checkpoints import CheckpointError, load_task, load_trained, task_class
from seqtasks.inference.classification import Classifier

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
ZEN = "Beautiful is better than ugly"


def crafted(
    tmp_path: Path,
    source: str = "classifier.ckpt",
    task: str | None = None,
    encoder: str | None = None,
    upgrade: bool = False,
) -> Path:
    checkpoint = torch.load(LEGACY / source, map_location="cpu", weights_only=True)
    if upgrade:  # the current format: load_trained builds the network from hyper_parameters alone
        from seqtasks.checkpoints import upgrade_checkpoint

        upgrade_checkpoint(checkpoint)
    if task is not None:
        checkpoint["seqtasks"]["task"] = task
    if encoder is not None:
        hparams = checkpoint["hyper_parameters"]
        spec = hparams["network"]["init_args"] if "network" in hparams else hparams
        spec["encoder"]["class_path"] = encoder
    path = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.fixture(autouse=True)
def _no_zen() -> None:
    assert "this" not in sys.modules  # else the test could not see an import


@pytest.mark.parametrize("load", [load_task, load_trained, Classifier.from_checkpoint])
def test_a_task_outside_seqtasks_is_refused_before_any_import(
    load, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = crafted(tmp_path, task="this.Zen")
    with pytest.raises(CheckpointError, match=r"crafted\.ckpt: .*'this\.Zen'.*not a seqtasks task"):
        load(path)
    out = capsys.readouterr()
    assert ZEN not in out.out + out.err
    assert "this" not in sys.modules


def test_a_seqtasks_module_that_is_no_task_is_refused_too() -> None:
    with pytest.raises(CheckpointError, match="not a seqtasks task"):
        task_class({"seqtasks": {"task": "seqtasks.cli.main"}})


@pytest.mark.parametrize("upgrade", [False, True])
@pytest.mark.parametrize("load", [load_task, load_trained])
def test_a_setting_naming_a_class_outside_the_trusted_packages_is_refused(
    load, upgrade: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = crafted(tmp_path, encoder="this.Zen", upgrade=upgrade)
    with pytest.raises(CheckpointError, match=r"encoder\.class_path names 'this\.Zen'"):
        load(path)
    assert ZEN not in capsys.readouterr().out
    assert "this" not in sys.modules


def test_every_legacy_checkpoint_still_names_an_allowed_task() -> None:
    for path in sorted(LEGACY.glob("*.ckpt")):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        assert task_class(checkpoint).__module__.startswith("seqtasks.tasks."), path


def test_the_command_prints_one_line_and_nothing_of_the_module(tmp_path: Path) -> None:
    path = crafted(tmp_path, task="this.Zen")
    result = subprocess.run(
        [sys.executable, "-m", "seqtasks.cli", "classify", "--ckpt", str(path), "a film"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert ZEN not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("seqtasks classify: ") and "'this.Zen'" in result.stderr


def test_the_allow_list_names_every_task_of_seqtasks_tasks() -> None:
    import seqtasks.tasks as tasks
    from seqtasks.checkpoints import TASK_CLASSES

    for name in tasks.__all__:
        cls = getattr(tasks, name)
        if isinstance(cls, type) and issubclass(cls, tasks.SeqTask) and cls is not tasks.SeqTask:
            assert f"{cls.__module__}.{cls.__qualname__}" in TASK_CLASSES, name
            assert f"seqtasks.tasks.{name}" in TASK_CLASSES, name
