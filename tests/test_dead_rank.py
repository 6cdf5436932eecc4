"""A rank killed in the middle of an epoch stops the others with a clear error, in bounded time; then resume.

Two ranks through Lightning's own launcher (``strategy: ddp``, gloo, the NER recipe on tiny data, batches
slowed down by ``tests/scripts/node_record.py`` so the kill lands mid-epoch). ``distributed_timeout`` bounds
how long the survivor may wait on the dead rank in a collective; the run then resumes from its last.ckpt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NER_RECIPE = ROOT / "recipes" / "ner-conll2003.yaml"
BIN = Path(sys.executable).parent
TRAIN_ROWS, BATCH = 96, 4  # 12 batches per rank and epoch
STOP_WITHIN_S = 60  # the survivor must be gone this long after the kill (distributed_timeout: 20)
TIMEOUT_S = 240


def read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@pytest.mark.slow
def test_a_rank_killed_mid_epoch_stops_the_run_with_an_error_naming_last_ckpt_and_the_run_resumes(
    tmp_path: Path,
) -> None:
    """kill -9 of rank 1 in epoch 1: rank 0 raises ``DistributedRunError`` (naming the checkpoint to resume
    from) within ``STOP_WITHIN_S`` instead of waiting forever; ``fit --ckpt_path last.ckpt`` then trains
    epochs 1 and 2 only, every training row once per epoch across the ranks, and ends at the full step count.
    """
    from fixtures.ner import make_tiny_ner

    from seqtasks.wordvectors import write_word_vectors

    data = make_tiny_ner(tmp_path / "ner", sizes=(TRAIN_ROWS, 24, 24))
    vectors = tmp_path / "vectors.txt"
    write_word_vectors(vectors, ["paris", "monday", "zanzibar"], torch.randn(3, 100))
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "SEQTASKS_RECORD_SLEEP": "0.25",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "scripts"), str(ROOT)])}  # fmt: skip
    fit = [str(BIN / "seqtasks"), "fit", "--config", str(NER_RECIPE), "--data.init_args.dataset", str(data),
           "--data.init_args.word_vectors", str(vectors), "--data.init_args.batch_size", str(BATCH),
           "--trainer.logger", "false", "--trainer.default_root_dir", "run", "--trainer.max_epochs", "3",
           "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
           "--distributed_timeout", "20", "--test_after_fit", "false",
           "--trainer.callbacks+=node_record.RecordRanks"]  # fmt: skip
    first = tmp_path / "first"
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(fit, cwd=tmp_path, env={**env, "SEQTASKS_RECORD_DIR": str(first)}, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    killed_at = None
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            rank1 = read(first / "rank1.json")
            if rank1 and len(rank1["train"].get("1", [])) >= 3:  # in the middle of epoch 1
                os.kill(rank1["pid"], signal.SIGKILL)
                killed_at = time.monotonic()
                break
            time.sleep(0.05)
        assert killed_at is not None, "rank 1 never reached epoch 1:\n" + (tmp_path / "first.log").read_text()
        try:
            process.wait(timeout=STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rank 0 still running {STOP_WITHIN_S}s after rank 1 was killed (a hang)")
        stopped_after = time.monotonic() - killed_at
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    output = (tmp_path / "first.log").read_text()
    last = Path("run") / "checkpoints" / "last.ckpt"
    assert process.returncode != 0
    # seqtasks' own error: one line, no traceback
    assert "seqtasks fit: process 0 of 2: a collective operation failed" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert f"resume with `--ckpt_path {last}`" in output, output[-3000:]
    print(f"rank 0 stopped {stopped_after:.1f}s after rank 1 was killed")
    assert torch.load(tmp_path / last, weights_only=True)["epoch"] == 0  # written after epoch 0 only

    second = tmp_path / "second"
    done = subprocess.run(
        [*fit, "--ckpt_path", str(last)], cwd=tmp_path, timeout=TIMEOUT_S, capture_output=True, text=True,
        env={**env, "SEQTASKS_RECORD_DIR": str(second), "SEQTASKS_RECORD_SLEEP": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((second / f"rank{rank}.json").read_text()) for rank in range(2)]
    for epoch in ("1", "2"):
        rows = [[i for batch in r["train"][epoch] for i in batch] for r in ranks]
        assert sorted(rows[0] + rows[1]) == list(range(TRAIN_ROWS)), f"epoch {epoch}: rows lost or repeated"
    assert all(sorted(r["train"]) == ["1", "2"] for r in ranks), "the resume did not start at epoch 1"
    state = torch.load(tmp_path / last, weights_only=True)
    assert state["epoch"] == 2 and state["global_step"] == 3 * TRAIN_ROWS // 2 // BATCH


def test_distributed_timeout_reaches_every_ddp_strategy_and_leaves_one_process_alone() -> None:
    """The recipe setting (seconds) becomes the strategy's collective timeout; "auto" (one process) is kept;
    a timeout of zero or less is refused, naming the setting."""
    from datetime import timedelta

    from lightning.pytorch.strategies import DDPStrategy

    from seqtasks.training import with_timeout

    for name in ("ddp", "ddp_spawn", "ddp_find_unused_parameters_true"):
        strategy = with_timeout(name, 7)
        assert isinstance(strategy, DDPStrategy) and strategy._timeout == timedelta(seconds=7), name
    assert with_timeout("ddp_spawn", 7)._start_method == "spawn"
    assert with_timeout("ddp_find_unused_parameters_true", 7)._ddp_kwargs == {"find_unused_parameters": True}
    own = DDPStrategy(timeout=timedelta(seconds=99))
    assert with_timeout(own, 5) is own and own._timeout == timedelta(seconds=5)
    assert with_timeout("auto", 5) == "auto"
    with pytest.raises(ValueError, match="distributed_timeout must be a positive number of seconds"):
        with_timeout("ddp", 0)
