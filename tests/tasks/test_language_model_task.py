"""LanguageModel (the task): truncated BPTT with the state carried between batches and reset per epoch and
per evaluation pass, perplexity / bits-per-character as summed metrics, and a checkpoint that round-trips
through load_task with its vocabulary."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from fixtures.language_model import make_tiny_texts, tiny_network

from seqtasks.checkpoints import load_task, load_trained
from seqtasks.data.language_model import LanguageModelDataModule, StreamCodec
from seqtasks.tasks.language_model import LanguageModel
from seqtasks.training import run_lightning

ROOT = Path(__file__).resolve().parents[2]

NO_DROPOUT = {"embedding_dropout": 0.0, "input_dropout": 0.0, "output_dropout": 0.0}


def make_data(tmp_path: Path, level: str = "word") -> LanguageModelDataModule:
    reviews = make_tiny_texts(tmp_path / "reviews")
    return LanguageModelDataModule(
        [f"{reviews}:text"], level=level, min_freq=1, batch_size=4, bptt=8, validation_fraction=0.2
    )


def make_task(vocab_size: int, **settings) -> LanguageModel:
    network = lambda size: tiny_network(size, hidden=32, **settings)  # noqa: E731
    optimizer = lambda params: torch.optim.Adam(params, lr=0.01)  # noqa: E731
    return LanguageModel(network, vocab_size, optimizer=optimizer)


def trainer(tmp_path: Path, **settings) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **settings,
    )


class StateProbe(pl.Callback):
    """Records, per training batch, whether the task started it with a carried state."""

    def __init__(self) -> None:
        self.carried: list[tuple[int, int, bool]] = []

    def on_train_batch_start(self, trainer, task, batch, batch_idx) -> None:
        self.carried.append((trainer.current_epoch, batch_idx, task._state["train"] is not None))


def test_state_is_carried_between_batches_and_reset_each_epoch(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    task = make_task(data.vocab_size)
    probe = StateProbe()
    trainer(tmp_path, max_epochs=2, callbacks=[probe], enable_checkpointing=False).fit(task, data)
    batches = len(data.windows("train", 4))
    assert len(probe.carried) == 2 * batches
    assert [c for _, i, c in probe.carried if i == 0] == [False, False]  # zeros at each epoch's start
    assert all(c for _, i, c in probe.carried if i > 0)  # then the previous batch's state


def test_evaluation_equals_reading_the_stream_at_once(tmp_path: Path) -> None:
    """val/nll over consecutive windows with the state carried is the NLL of the whole stream in one go."""
    data = make_data(tmp_path)
    data.setup("fit")
    task = make_task(data.vocab_size)
    (metrics,) = trainer(tmp_path).validate(task, data, verbose=False)
    streams = batchify_validation(data)
    task.network.eval()
    with torch.no_grad():
        nll, count, _ = task.network.nll(streams[:, :-1], streams[:, 1:])
    assert metrics["val/nll"] == pytest.approx(float(nll / count), rel=1e-5)
    assert metrics["val/ppl"] == pytest.approx(math.exp(metrics["val/nll"]), rel=1e-5)
    assert "val/bpc" not in metrics  # a word model


def batchify_validation(data: LanguageModelDataModule) -> torch.Tensor:
    from seqtasks.data.language_model import batchify

    return batchify(data.stream("validation"), data.eval_batch_size)


def test_char_level_reports_bits_per_character(tmp_path: Path) -> None:
    data = make_data(tmp_path, level="char")
    task = make_task(data.vocab_size)
    fit = trainer(tmp_path, max_epochs=1, limit_train_batches=3, enable_checkpointing=False)
    fit.fit(task, data)
    metrics = fit.callback_metrics
    assert float(metrics["val/bpc"]) == pytest.approx(float(metrics["val/nll"]) / math.log(2), rel=1e-5)


def test_it_learns(tmp_path: Path) -> None:
    """Four epochs lower the validation perplexity below the untrained model's."""
    torch.manual_seed(0)
    data = make_data(tmp_path)
    task = make_task(data.vocab_size, **NO_DROPOUT)
    data.setup("fit")
    streams = batchify_validation(data)
    with torch.no_grad():
        nll, count, _ = task.network.eval().nll(streams[:, :-1], streams[:, 1:])
    before = math.exp(float(nll / count))
    fit = trainer(tmp_path, max_epochs=4, enable_checkpointing=False)
    fit.fit(task, data)
    after = float(fit.callback_metrics["val/ppl"])
    assert after < 0.92 * before  # random words from 12: the floor is near 12 (memorising is tested apart)


def test_the_recipe_fits_and_its_checkpoint_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI, as a user trains: the checkpoint alone (no data, no cache) rebuilds the model with
    its tied weights and its vocabulary, and gives the same logits."""
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    monkeypatch.chdir(tmp_path)
    reviews = make_tiny_texts(tmp_path / "reviews")
    args = [
        "fit", "--config", str(ROOT / "recipes" / "lm-imdb-word.yaml"),
        "--data.init_args.texts", f"[{reviews}:text]", "--data.init_args.min_freq", "1",
        "--data.init_args.batch_size", "4", "--data.init_args.bptt", "8",
        "--data.init_args.validation_fraction", "0.2",
        "--model.init_args.network.init_args.embedding_dim", "16",
        "--model.init_args.network.init_args.encoder.init_args.hidden_size", "24",
        "--trainer.max_epochs", "1", "--trainer.val_check_interval", "1.0",
        "--trainer.limit_val_batches", "1.0", "--trainer.default_root_dir", str(tmp_path / "run"),
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    cli = run_lightning(args)
    task = cli.model
    path = cli.trainer.checkpoint_callback.last_model_path
    vocabulary = cli.datamodule.vocabulary.tokens
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["seqtasks"]["artefacts"]["codec"]["vocabulary"] == vocabulary
    assert checkpoint["seqtasks"]["task"] == "seqtasks.tasks.language_model.LanguageModel"
    monkeypatch.setenv("SEQTASKS_CACHE_DIR", str(tmp_path / "empty-cache"))
    for name in os.listdir(reviews):
        os.remove(reviews / name)
    loaded = load_task(path)
    assert isinstance(loaded, LanguageModel) and not loaded.training
    assert loaded.artefacts["codec"]["vocabulary"] == vocabulary
    assert loaded.network.head.weight is loaded.network.embedding.weight  # still tied after loading
    assert isinstance(loaded.network.projection, torch.nn.Linear)  # 24 → 16 before the tied output
    codec = StreamCodec.from_state(loaded.artefacts["codec"])
    tokens = torch.tensor([codec.encode("the fan works like a charm")])
    task.eval()
    with torch.no_grad():
        expected = task(tokens)[0]
        torch.testing.assert_close(loaded(tokens)[0], expected, rtol=0, atol=0)
        trained = load_trained(path)
        assert trained.artefacts["level"] == "word"
        torch.testing.assert_close(trained.network(tokens)[0], expected, rtol=0, atol=0)


def test_validate_then_fit_on_the_same_task(tmp_path: Path) -> None:
    """A validation before training (the metrics' states then made under inference mode) does not break
    the fit that follows: the summed-state metrics update out of place."""
    data = make_data(tmp_path)
    task = make_task(data.vocab_size)
    before = trainer(tmp_path, enable_checkpointing=False).validate(task, data, verbose=False)[0]["val/nll"]
    fit = trainer(tmp_path, max_epochs=2, enable_checkpointing=False)
    fit.fit(task, data)
    assert fit.callback_metrics["val/nll"] < before


class StepLosses(pl.Callback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, task, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step] = float(outputs["loss"])


def test_a_mid_epoch_resume_continues_the_stream_and_its_state(tmp_path: Path) -> None:
    """Killed after k windows, resumed from that checkpoint: the next window is window k+1 (not the epoch's
    first again), its hidden state the one the run carried (not zeros), dropout draws the same masks —
    the losses equal an uninterrupted run's, step for step."""
    data = make_data(tmp_path)
    batches = len(data.windows("train", 4))
    k = batches // 2
    assert k >= 3
    settings = {"input_dropout": 0.2, "output_dropout": 0.2, "embedding_dropout": 0.1}

    def run(**options) -> StepLosses:
        torch.manual_seed(0)  # the same initial weights each time
        task, losses = make_task(data.vocab_size, **settings), StepLosses()
        callbacks = [losses, *options.pop("callbacks", [])]
        ckpt_path = options.pop("ckpt_path", None)
        fit = trainer(tmp_path, callbacks=callbacks, limit_val_batches=0, **options)
        fit.fit(task, make_data(tmp_path), ckpt_path=ckpt_path)
        return losses

    full = run(max_epochs=1, enable_checkpointing=False)
    every_k = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=k, save_top_k=-1)
    run(max_steps=k, callbacks=[every_k])
    checkpoint = next((tmp_path / "ckpt").glob("*.ckpt"))
    saved = torch.load(checkpoint, weights_only=True)
    assert len(saved["seqtasks"]["carried_state"]) == 2  # an LSTM's (h, c), each (world, layers, B, H)
    resumed = run(max_epochs=1, enable_checkpointing=False, ckpt_path=str(checkpoint))
    assert sorted(resumed.losses) == list(range(k + 1, batches + 1))
    for step in resumed.losses:
        assert resumed.losses[step] == pytest.approx(full.losses[step], abs=1e-6), step
    # and the check can tell: the epoch's first window (what a resume without the position would give)
    assert abs(resumed.losses[k + 1] - full.losses[1]) > 1e-3
