"""Two "nodes" of one process each, launched by torchrun with a localhost rendezvous, train a real recipe.

``seqtasks fit`` runs under Lightning's own ``TorchElasticEnvironment`` (no launcher of ours): two
``torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d`` processes on 127.0.0.1, gloo, the NER recipe
on a tiny dataset. What each rank trained on and saved is written by ``tests/scripts/node_record.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NER_RECIPE = ROOT / "recipes" / "ner-conll2003.yaml"
BIN = Path(sys.executable).parent
TIMEOUT_S = 300
TRAIN_ROWS, TEST_ROWS = 96, 25  # 25: one rank's test share is padded with a repeated row
EPOCHS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def printed_test_f1(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("[test] ")]
    return re.search(r"test/f1=(\S+)", line).group(1)


@pytest.mark.slow
def test_two_nodes_through_torchrun_train_each_row_once_write_once_and_score_like_one_process(
    tmp_path: Path,
) -> None:
    """Per epoch the two ranks train on disjoint halves covering every training row once (Lightning's
    distributed sampler under the recipe's bucketing sampler); only global rank 0 writes checkpoint files;
    the test F1 after fit (torchmetrics state synced over both ranks) equals a one-process test of the same
    best checkpoint. A second copy of the data per rank, a rank that writes checkpoints too, or metrics
    averaged per rank fail here; so does a hang (killed at the timeout)."""
    from fixtures.ner import make_tiny_ner

    from seqtasks.wordvectors import write_word_vectors

    data = make_tiny_ner(tmp_path / "ner", sizes=(TRAIN_ROWS, 24, TEST_ROWS))
    vectors = tmp_path / "vectors.txt"
    write_word_vectors(vectors, ["paris", "monday", "zanzibar"], torch.randn(3, 100))
    record = tmp_path / "record"
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "SEQTASKS_RECORD_DIR": str(record),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "scripts"), str(ROOT)])}  # fmt: skip
    common = ["--config", str(NER_RECIPE), "--data.init_args.dataset", str(data),
              "--data.init_args.word_vectors", str(vectors), "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--trainer.accelerator", "cpu"]  # fmt: skip
    fit = ["fit", *common, "--trainer.logger.init_args.save_dir", "runs", "--trainer.max_epochs", str(EPOCHS),
           "--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp",
           "--trainer.callbacks+=node_record.RecordRanks"]  # fmt: skip
    port = free_port()
    nodes = []
    for node in range(2):
        command = [str(BIN / "torchrun"), "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1",
                   "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "test",
                   str(BIN / "seqtasks"), *fit]  # fmt: skip
        log = open(tmp_path / f"node{node}.log", "w")  # noqa: SIM115 - closed in finally
        nodes.append((subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True), log))  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for process, _ in nodes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for process, log in nodes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
    outputs = [(tmp_path / f"node{node}.log").read_text() for node in range(2)]
    codes = [process.returncode for process, _ in nodes]
    logs = "\n".join(output[-3000:] for output in outputs)
    assert codes == [0, 0], f"exit codes {codes} (negative: killed at the {TIMEOUT_S}s timeout):\n{logs}"

    ranks = [json.loads((record / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    assert {r["node_rank"] for r in ranks} == {0, 1}, "the two processes did not run as two nodes"
    assert {r["environment"] for r in ranks} == {"TorchElasticEnvironment"}
    for epoch in map(str, range(EPOCHS)):
        rows = [[i for batch in r["train"][epoch] for i in batch] for r in ranks]
        assert len(ranks[0]["train"][epoch]) == len(ranks[1]["train"][epoch]), f"epoch {epoch}: batch counts"
        assert all(len(share) == len(set(share)) for share in rows), f"epoch {epoch}: a row twice on a rank"
        assert not set(rows[0]) & set(rows[1]), f"epoch {epoch}: both ranks trained on the same rows"
        assert sorted(rows[0] + rows[1]) == list(range(TRAIN_ROWS)), f"epoch {epoch}: rows lost or repeated"

    (checkpoints,) = (tmp_path / "runs" / "seqtasks").glob("*/checkpoints")
    assert ranks[1]["saved"] == [], "rank 1 wrote checkpoint files too"
    written = {Path(path).name for path in ranks[0]["saved"]}
    files = {p.name for p in checkpoints.iterdir()}
    assert "last.ckpt" in files and files <= written, f"on disk {files}, written by rank 0 {written}"
    (best,) = checkpoints.glob("best-*.ckpt")
    generators = torch.load(checkpoints / "last.ckpt", weights_only=True)["callbacks"]["RandomState"]["ranks"]
    assert len(generators) == 2, "the checkpoint lacks a rank's random state"
    assert not torch.equal(generators[0]["torch"], generators[1]["torch"]), "rank 1's state is rank 0's"

    rank0 = outputs[0] if "[test] " in outputs[0] else outputs[1]
    test = ["test", *common, "--trainer.logger", "false", "--trainer.devices", "1", "--ckpt_path", str(best)]
    quiet = {**env, "WANDB_MODE": "disabled"}
    alone = subprocess.run(
        [str(BIN / "seqtasks"), *test], cwd=tmp_path, env=quiet, capture_output=True, text=True, timeout=120
    )
    assert alone.returncode == 0, alone.stderr[-3000:]
    two_ranks, one = printed_test_f1(rank0), printed_test_f1(alone.stdout + alone.stderr)
    assert two_ranks == one, f"test F1 over 2 ranks {two_ranks}, in one process {one}"
