"""Faults a long run meets: a kill while a checkpoint is being written must never cost the last good one.

Lightning writes a checkpoint through a temporary file in ``TMPDIR`` and moves it onto the target; with
``TMPDIR`` on another filesystem the move is a copy into ``last.ckpt``, so a kill (or a reader) in the middle
finds a torn file. ``seqtasks.callbacks.AtomicCheckpointIO`` (installed by ``seqtasks fit``) writes beside the
target and renames.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqtasks.callbacks import AtomicCheckpointIO, atomic_torch_save

ROOT = Path(__file__).resolve().parents[1]
SAVE_LOOP = ROOT / "tests" / "scripts" / "save_loop.py"
SHM = Path("/dev/shm")


def check_complete(path: Path) -> int | None:
    """The step of the checkpoint at ``path`` (None if there is none yet); fails on a torn or mixed file."""
    try:
        with open(path, "rb") as handle:  # an open handle keeps the file it opened, whatever replaces it
            state = torch.load(handle, weights_only=True)
    except FileNotFoundError:
        return None
    step = int(state["step"])
    assert torch.equal(state["weights"], torch.full((2_000_000,), float(step))), f"step {step}: mixed content"
    return step


@pytest.mark.skipif(not SHM.is_dir() or os.stat(SHM).st_dev == os.stat("/tmp").st_dev, reason="needs a tmpfs")
def test_last_ckpt_survives_repeated_kills_while_saving_with_tmpdir_on_another_filesystem(
    tmp_path: Path,
) -> None:
    """10 SIGKILLs at random moments of a save loop: every last.ckpt ever seen loads; no temp file stays."""
    assert os.stat(SHM).st_dev != os.stat(tmp_path).st_dev
    other_tmp = Path(SHM, f"seqtasks-test-{os.getpid()}")
    other_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(other_tmp), "PYTHONPATH": str(ROOT)}
    rng = random.Random(12)
    observed: list[int] = []
    try:
        for _ in range(10):
            child = subprocess.Popen(
                [sys.executable, str(SAVE_LOOP), str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
            )
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + rng.uniform(0.05, 0.5)
            while time.monotonic() < deadline:  # a reader during the saves sees only complete files
                step = check_complete(tmp_path / "last.ckpt")
                if step is not None:
                    observed.append(step)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            step = check_complete(tmp_path / "last.ckpt")
            if step is not None:
                observed.append(step)
        assert len(observed) > 10 and max(observed) > 1, "the loop wrote too few checkpoints to test anything"
        assert list(other_tmp.iterdir()) == [], "a save went through TMPDIR"
        leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
        assert all(name.startswith(".last.ckpt.") and name.endswith(".tmp") for name in leftovers), leftovers
        assert len(leftovers) <= 1, f"temporary files of killed saves pile up: {leftovers}"
    finally:
        for leftover in other_tmp.iterdir():
            leftover.unlink()
        other_tmp.rmdir()


def test_an_atomic_save_writes_beside_the_target_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)
    AtomicCheckpointIO().save_checkpoint({"step": 2}, f"file://{target}")
    assert torch.load(target, weights_only=True) == {"step": 2}
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_temporary_file_of_a_killed_save_is_removed_by_the_next_save_but_not_a_live_ones(
    tmp_path: Path,
) -> None:
    import socket

    host = socket.gethostname().replace(".", "_")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".last.ckpt.{host}.{dead.pid}.abcd.tmp"
    live = tmp_path / f".last.ckpt.{host}.{os.getppid()}.abcd.tmp"
    other = tmp_path / ".best.ckpt.x.1.abcd.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    atomic_torch_save({"step": 3}, tmp_path / "last.ckpt")
    assert not stale.exists() and live.exists() and other.exists()


def test_a_failed_save_keeps_the_previous_checkpoint_and_removes_its_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, target)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for an unpicklable object
        atomic_torch_save({"step": 2, "bad": lambda: None}, target)
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
