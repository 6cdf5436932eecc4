"""``seqtasks fit --ckpt_path last.ckpt`` continues the run the checkpoint came from, as one run would.

The NER recipe itself (W&B logger offline, base.yaml's callbacks) is fitted on a tiny dataset for two
epochs, then resumed for a third: the resumed run writes into the same checkpoints directory under the same
W&B run id, keeps "best" truthful (the best epoch's score and path survive the resume), and ends with the
very same weights as an uninterrupted three-epoch run. Each fit is a ``seqtasks fit`` subprocess: W&B and
Lightning keep per-process state. ``RandomState`` itself is tested on a plain module with dropout (a
``SeqTask`` reseeds torch at each epoch's first batch, which hides a lost torch state at an epoch's end).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seqtasks.callbacks import BestAndLastCheckpoint, RandomState

ROOT = Path(__file__).resolve().parents[1]
NER_RECIPE = ROOT / "recipes" / "ner-conll2003.yaml"
TIMEOUT_S = 120


class NoUpdates(pl.Callback):
    """Drop every gradient before the optimizer step: the weights stay, so validation repeats its score."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: Any, optimizer: Any) -> None:
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                parameter.grad = None


@pytest.fixture
def fit(tmp_path: Path):
    """``seqtasks fit`` of the NER recipe on tiny data, run from ``tmp_path``; returns the checkpoints."""
    from fixtures.ner import make_tiny_ner

    from seqtasks.wordvectors import write_word_vectors

    data = make_tiny_ner(tmp_path / "ner")
    vectors = tmp_path / "vectors.txt"
    write_word_vectors(vectors, ["paris", "monday", "zanzibar"], torch.randn(3, 100))
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
    }

    def run(root: str, epochs: int, *extra: str) -> str:
        command = [str(Path(sys.executable).parent / "seqtasks"), "fit", "--config", str(NER_RECIPE),
                   "--data.init_args.dataset", str(data), "--data.init_args.word_vectors", str(vectors),
                   "--trainer.logger.init_args.save_dir", root, "--trainer.max_epochs", str(epochs),
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                   "--test_after_fit", "false", *extra]  # fmt: skip
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout + done.stderr

    return run


def checkpoints(tmp_path: Path, root: str) -> Path:
    (directory,) = (tmp_path / root / "seqtasks").iterdir()  # one run: <save_dir>/<project>/<run id>
    return directory / "checkpoints"


def best_of(last: Path) -> tuple[float, str]:
    state = torch.load(last, weights_only=True)
    (key,) = [k for k in state["callbacks"] if k.startswith("BestAndLastCheckpoint")]
    callback = state["callbacks"][key]
    return float(callback["best_model_score"]), callback["best_model_path"]


def offline_runs(tmp_path: Path) -> list[str]:
    """The run ids of W&B's offline run folders (``offline-run-<time>-<id>``), in the order they began."""
    return [p.name.rsplit("-", 1)[-1] for p in sorted((tmp_path / "runs" / "wandb").glob("offline-run-*"))]


@pytest.mark.slow
def test_a_resumed_fit_continues_the_same_run_keeps_its_best_and_ends_as_one_run_would(
    fit, tmp_path: Path
) -> None:
    fit("runs", 2)
    directory = checkpoints(tmp_path, "runs")
    run_id = directory.parent.name
    best_score, best_path = best_of(directory / "last.ckpt")
    assert (tmp_path / best_path).parent == directory  # relative to the run's working directory
    kept = tmp_path / "after-two-epochs.ckpt"
    shutil.copy(directory / "last.ckpt", kept)

    # a third epoch whose weights do not move: its score ties epoch 1's, so it must not become "best"
    output = fit("runs", 3, "--ckpt_path", str(directory / "last.ckpt"),
                 "--trainer.callbacks+=test_resume_run.NoUpdates")  # fmt: skip
    assert "dirpath has changed" not in output, output[-2000:]
    assert checkpoints(tmp_path, "runs") == directory, "the resumed run wrote into another run directory"
    state = torch.load(directory / "last.ckpt", weights_only=True)
    assert state["epoch"] == 2 and state["seqtasks_run"]["version"] == run_id
    assert best_of(directory / "last.ckpt") == (best_score, best_path), "the restored best was forgotten"
    assert sorted(p.name for p in directory.glob("best-*.ckpt")) == [Path(best_path).name]
    assert f"checkpoint/best: {best_path}" in output
    assert offline_runs(tmp_path) == [run_id, run_id], "the resume started another W&B run"

    # the same resume, training this time, ends where one uninterrupted three-epoch run ends
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    target = resumed / "last.ckpt"
    shutil.copy(kept, target)
    fit("runs", 3, "--ckpt_path", str(target))
    fit("straight", 3)
    after_resume = torch.load(directory / "last.ckpt", weights_only=True)["state_dict"]
    straight = torch.load(checkpoints(tmp_path, "straight") / "last.ckpt", weights_only=True)["state_dict"]
    assert after_resume.keys() == straight.keys()
    for name, value in straight.items():
        assert torch.equal(after_resume[name], value), f"{name}: the resumed run trained differently"


class Noisy(pl.LightningModule):
    """A linear model trained through dropout: its weights depend on every random draw of the run."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 1))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return nn.functional.mse_loss(self.layer(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        inputs = torch.randn(40, 4, generator=torch.Generator().manual_seed(1))
        return DataLoader(TensorDataset(inputs, inputs.sum(1, keepdim=True)), batch_size=4, shuffle=True)


class LastStepSeen(pl.Callback):
    """Before each batch: the global step of the last.ckpt on disk (None when there is none yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.steps: list[int | None] = []

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, batch_idx: int) -> None:
        exists = self.path.exists()
        self.steps.append(torch.load(self.path, weights_only=True)["global_step"] if exists else None)


def noisy_fit(root: Path, epochs: int, *callbacks: pl.Callback, ckpt_path: Path | None = None) -> Noisy:
    pl.seed_everything(3)
    model = Noisy()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=root, num_sanity_val_steps=0,
                         callbacks=[RandomState(), *callbacks])  # fmt: skip
    trainer.fit(model, ckpt_path=ckpt_path)
    return model


def test_last_ckpt_is_written_every_n_training_steps_within_an_epoch(tmp_path: Path) -> None:
    """``save_last_every_n_steps: 3``: in the middle of the 10-step epoch last.ckpt is at step 3, 6, 9."""
    seen = LastStepSeen(tmp_path / "last.ckpt")
    every = BestAndLastCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0, save_last_every_n_steps=3)
    noisy_fit(tmp_path, 1, every, seen)
    assert seen.steps == [None, None, None, 3, 3, 3, 6, 6, 6, 9]
    with pytest.raises(ValueError, match="save_last_every_n_steps must be at least 1"):
        BestAndLastCheckpoint(save_last=True, save_last_every_n_steps=0)


def test_random_state_in_the_checkpoint_makes_a_resumed_run_draw_what_the_uninterrupted_one_draws(
    tmp_path: Path,
) -> None:
    """Resumed at an epoch's end, the dropout masks (and shuffles) of the following epochs are the same as
    in one uninterrupted run: the weights end equal. The states are plain data (``weights_only`` loads)."""
    straight = noisy_fit(tmp_path / "straight", 3)
    saving = BestAndLastCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0)
    noisy_fit(tmp_path / "first", 2, saving)
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["callbacks"]["RandomState"]
    assert state["epoch_end"] and len(state["ranks"]) == 1
    torch.manual_seed(12345)  # whatever this process drew meanwhile, the resumed run draws as before
    random.seed(5)
    resumed = noisy_fit(tmp_path / "resumed", 3, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    for (name, value), expected in zip(
        resumed.state_dict().items(), straight.state_dict().values(), strict=True
    ):
        assert torch.equal(value, expected), name
