"""The life of a classifier on tiny data, CPU, seconds: fit, checkpoint, load, resume, fine-tune, the CLI.

Models are built the way users build them, through the CLI's parser (``run_lightning(..., run=False)``),
so checkpoints hold the jsonargparse-built hyperparameters that ``load_from_checkpoint`` rebuilds from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import yaml

from seqtasks.cli import main, run_lightning
from seqtasks.tasks import SequenceClassifier, load_task

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
STAR_LABELS = ["1", "2", "3", "4", "5"]
TEXTS = ["a wonderful , moving film", "dull and boring , the worst plot"]
QUIET = [
    "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip


def tiny_config(
    root: Path,
    dataset: Path,
    *,
    labels: list[str] | None = None,
    label_column: str = "label",
    cell: str = "GRUEncoder",
    max_epochs: int = 1,
    dropout: float = 0.3,
    step_decay_start: int | None = None,
) -> list[str]:
    """CLI arguments of a tiny run (embedding 16, hidden 16) whose checkpoints land in ``root``."""
    config = {
        "seed_everything": 42,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": max_epochs,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(root),
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True},
                }
            ],
        },
        "model": {
            "class_path": "seqtasks.tasks.SequenceClassifier",
            "init_args": {
                "embedding_dim": 16,
                "embedding_dropout": dropout,
                "dropout": dropout,
                "lr": 0.01,
                "step_decay_start": step_decay_start,
                "encoder": {
                    "class_path": f"seqtasks.encoders.{cell}",
                    "init_args": {"hidden_size": 16, "bidirectional": True},
                },
            },
        },
        "data": {
            "class_path": "seqtasks.data.TextClassificationDataModule",
            "init_args": {
                "dataset": str(dataset),
                "label_column": label_column,
                "labels": labels or ["neg", "pos"],
                "min_freq": 1,
                "max_length": 32,
                "batch_size": 8,
                "validation_fraction": 0.125,
                "pool_batches": 2,
            },
        },
    }
    if label_column == "stars":
        config["data"]["init_args"]["label_values"] = [1, 2, 3, 4, 5]
    path = root / "config.in.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return ["--config", str(path)]


def build(args: list[str]) -> Any:
    """The CLI's objects (model, datamodule, trainer), not run."""
    return run_lightning(args, run=False)


class StepLosses(pl.Callback):
    """The training loss of every optimizer step, by global step, and the learning rate of each epoch."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}
        self.rates: dict[int, float] = {}

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.losses[trainer.global_step] = float(outputs["loss"])
        self.rates[trainer.current_epoch] = trainer.optimizers[0].param_groups[0]["lr"]


class SnapshotAtTrainStart(pl.Callback):
    """The weights as training starts: after ``setup`` (where ``init_from`` applies), before any step."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def is_plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and is_plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(is_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool | torch.Tensor)


@pytest.fixture(autouse=True)
def _cli_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI must not see pytest's argv; seed_everything's PL_GLOBAL_SEED is undone after each test."""
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


def test_fit_checkpoint_load_gives_the_same_predictions(
    tiny_reviews: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint alone rebuilds the trained model: same probabilities, no data, no config, plain data.

    ``torch.load(weights_only=True)`` must read it (no pickled objects), and it must carry the
    hyperparameters, the vocabulary and the label names. The comparison uses ``classify`` on the in-memory
    model right after ``fit`` (left in training mode by Lightning) with dropout > 0: inference must not
    apply dropout.
    """
    cli = build(tiny_config(tmp_path / "run", tiny_reviews, cell="LSTMEncoder", max_epochs=2))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    model: SequenceClassifier = cli.model
    vocabulary = cli.datamodule.prepared["vocabulary"]
    path = cli.trainer.checkpoint_callback.last_model_path
    expected = model.classify(TEXTS)
    batch = next(iter(cli.datamodule.val_dataloader()))
    model.eval()
    with torch.no_grad():
        expected_logits = model(batch["tokens"], batch["lengths"])

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert is_plain(checkpoint["hyper_parameters"])
    hparams = checkpoint["hyper_parameters"]
    assert hparams["labels"] == ["neg", "pos"] and hparams["vocab_size"] == len(vocabulary)
    assert hparams["embedding_dim"] == 16 and hparams["encoder"]["init_args"]["hidden_size"] == 16
    artefacts = checkpoint["seqtasks"]["artefacts"]
    assert is_plain(artefacts)
    assert artefacts["text_encoder"]["vocabulary"] == vocabulary
    assert artefacts["labels"] == ["neg", "pos"]

    # no data, no prepared vocabulary, no data directory: only the checkpoint
    for name in os.listdir(tiny_reviews):
        os.remove(tiny_reviews / name)
    monkeypatch.setenv("SEQTASKS_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("SEQTASKS_DATA_DIR", raising=False)
    loaded = load_task(path)
    assert isinstance(loaded, SequenceClassifier) and not loaded.training
    assert loaded.encoder.output_size == model.encoder.output_size == 32
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch["tokens"], batch["lengths"]), expected_logits, rtol=0, atol=0)
    got = loaded.classify(TEXTS)
    assert [(label, prob) for label, prob, _ in got] == [(label, prob) for label, prob, _ in expected]
    assert all(label in {"neg", "pos"} and 0.5 <= prob <= 1.0 for label, prob, _ in got)


@pytest.mark.parametrize("step_decay_start", [None, 1])
def test_resume_repeats_the_losses_of_an_uninterrupted_run(
    tiny_reviews: Path, tmp_path: Path, step_decay_start: int | None
) -> None:
    """3 epochs in one go == 1 epoch, then ``fit(ckpt_path=last)`` for epochs 2-3: the same step losses.

    With dropout > 0 this holds only because SeqTask re-seeds the RNG from (seed, epoch, rank) at each
    epoch start (Lightning does not restore the RNG state) and the batch order depends only on
    (seed, epoch). It also needs the optimizer state and the step/epoch counters restored by the resume.
    With a step-decay schedule the resumed epochs run at the schedule's rates too.
    """

    def config(root: Path, epochs: int) -> list[str]:
        return tiny_config(root, tiny_reviews, max_epochs=epochs, step_decay_start=step_decay_start)

    full = build(config(tmp_path / "full", 3))
    full_losses = StepLosses()
    full.trainer.callbacks.append(full_losses)
    full.trainer.fit(full.model, datamodule=full.datamodule)

    first = build(config(tmp_path / "split", 1))
    first_losses = StepLosses()
    first.trainer.callbacks.append(first_losses)
    first.trainer.fit(first.model, datamodule=first.datamodule)
    last = first.trainer.checkpoint_callback.last_model_path

    rest = build(config(tmp_path / "split", 3))
    rest_losses = StepLosses()
    rest.trainer.callbacks.append(rest_losses)
    rest.trainer.fit(rest.model, datamodule=rest.datamodule, ckpt_path=last)

    steps_per_epoch = len(first_losses.losses)
    assert steps_per_epoch > 1 and min(rest_losses.losses) == steps_per_epoch + 1
    resumed = {**first_losses.losses, **rest_losses.losses}
    assert sorted(resumed) == sorted(full_losses.losses) == list(range(1, 3 * steps_per_epoch + 1))
    for step, loss in full_losses.losses.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-6, abs=1e-7), f"step {step}"
    expected = [0.01, 0.01, 0.01] if step_decay_start is None else [0.01, 0.005, 0.0025]
    assert [full_losses.rates[e] for e in range(3)] == pytest.approx(expected)
    assert [rest_losses.rates[e] for e in (1, 2)] == pytest.approx(expected[1:])
    # and the check can tell: the epochs' losses are not all alike
    assert len({round(v, 6) for v in full_losses.losses.values()}) > steps_per_epoch


def test_fine_tune_maps_words_keeps_encoder_and_replaces_the_head(
    tiny_reviews: Path, tiny_stars: Path, tmp_path: Path
) -> None:
    """``init_from``: a 5-class star model starts from a binary sentiment model's weights.

    The encoder starts equal to the pretrained one; each word both vocabularies share gets its pretrained
    embedding row although its index differs; the head is new (5 outputs); then training moves the weights.
    """
    pretrained = build(tiny_config(tmp_path / "binary", tiny_reviews))
    pretrained.trainer.fit(pretrained.model, datamodule=pretrained.datamodule)
    source_path = pretrained.trainer.checkpoint_callback.last_model_path
    source = torch.load(source_path, map_location="cpu", weights_only=True)
    old_words = source["seqtasks"]["artefacts"]["text_encoder"]["vocabulary"]

    args = tiny_config(tmp_path / "stars", tiny_stars, labels=STAR_LABELS, label_column="stars")
    tuned = build([*args, "--model.init_args.init_from", source_path])
    snapshot = SnapshotAtTrainStart()
    tuned.trainer.callbacks.append(snapshot)
    tuned.trainer.fit(tuned.model, datamodule=tuned.datamodule)
    start = snapshot.state

    encoder_keys = [k for k in source["state_dict"] if k.startswith("encoder.")]
    assert encoder_keys
    for key in encoder_keys:
        torch.testing.assert_close(start[key], source["state_dict"][key], rtol=0, atol=0, msg=key)

    new_words = tuned.datamodule.prepared["vocabulary"]
    old_index = {w: i for i, w in enumerate(old_words)}
    shared = [w for w in new_words if w in old_index]
    moved = [w for i, w in enumerate(new_words) if w in old_index and old_index[w] != i]
    assert moved, "the vocabularies index alike: the by-word copy would go untested"
    assert "okay" in new_words and "okay" not in old_index  # a word only the star data has
    for i, word in enumerate(new_words):
        if word in old_index:
            assert torch.equal(
                start["embedding.weight"][i], source["state_dict"]["embedding.weight"][old_index[word]]
            )
    assert len(shared) > 10

    assert start["head.weight"].shape[0] == 5 and tuned.model.labels == STAR_LABELS
    assert source["state_dict"]["head.weight"].shape[0] == 2
    end = tuned.model.state_dict()
    assert tuned.trainer.global_step > 0
    assert not torch.equal(end["head.weight"], start["head.weight"])
    assert not torch.equal(end[encoder_keys[0]], start[encoder_keys[0]])


def test_fine_tune_same_size_new_label_names_gets_a_fresh_head(tiny_reviews: Path, tmp_path: Path) -> None:
    """Two classes named differently are a different label set: the head is not copied, the rest is."""
    pretrained = build(tiny_config(tmp_path / "binary", tiny_reviews))
    pretrained.trainer.fit(pretrained.model, datamodule=pretrained.datamodule)
    source_path = pretrained.trainer.checkpoint_callback.last_model_path
    source = torch.load(source_path, map_location="cpu", weights_only=True)["state_dict"]

    def start_of(labels: list[str]) -> dict[str, torch.Tensor]:
        args = tiny_config(tmp_path / "-".join(labels), tiny_reviews, labels=labels)
        cli = build([*args, "--model.init_args.init_from", source_path, "--trainer.max_steps", "1"])
        snapshot = SnapshotAtTrainStart()
        cli.trainer.callbacks.append(snapshot)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        return snapshot.state

    same, renamed = start_of(["neg", "pos"]), start_of(["bad", "good"])
    assert torch.equal(same["head.weight"], source["head.weight"])
    assert not torch.equal(renamed["head.weight"], source["head.weight"])
    assert torch.equal(renamed["embedding.weight"], source["embedding.weight"])


def seqtasks_command() -> list[str]:
    script = Path(sys.executable).with_name("seqtasks")
    return [str(script)] if script.exists() else [sys.executable, "-m", "seqtasks.cli"]


def test_recipe_fit_test_after_fit_then_classify_in_a_fresh_process(
    tiny_reviews: Path, tmp_path: Path
) -> None:
    """``seqtasks fit --config recipes/sentiment-imdb.yaml`` runs end to end, then ``seqtasks classify``.

    The fit (a subprocess, the installed command) trains, checkpoints, tests the best checkpoint after
    fit and writes the resolved config. ``classify`` runs in another process with no data directory and an
    empty cache, and prints one line per text: label, probability, text — the same as in this process.
    """
    run = tmp_path / "run"
    command = [*seqtasks_command(), "fit", "--config", str(RECIPES / "sentiment-imdb.yaml"), *QUIET,
               "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(run),
               "--data.init_args.dataset", str(tiny_reviews), "--data.init_args.min_freq", "1",
               "--data.init_args.batch_size", "16",
               "--model.init_args.embedding_dim", "16",
               "--model.init_args.encoder.init_args.hidden_size", "16"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "test/acc" in done.stdout  # test after fit ran and reported
    best = [
        line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("checkpoint/best:")
    ]
    assert len(best) == 1 and Path(best[0]).is_file() and Path(best[0]).parent.parent == run
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["init_args"]["dataset"] == str(
        tiny_reviews
    )
    assert not (tmp_path / "wandb").exists()

    env = {k: v for k, v in env.items() if k != "SEQTASKS_DATA_DIR"}
    env["SEQTASKS_CACHE_DIR"] = str(tmp_path / "empty-cache")
    done = subprocess.run(
        [*seqtasks_command(), "classify", "--ckpt", best[0], *TEXTS],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split("\t") for line in done.stdout.splitlines() if line.strip()]
    assert [text for _, _, text in lines] == TEXTS
    expected = load_task(best[0]).classify(TEXTS)
    for (label, prob, _), (want_label, want_prob, _) in zip(lines, expected, strict=True):
        assert label == want_label and label in {"neg", "pos"}
        assert float(prob) == pytest.approx(want_prob, abs=1e-4) and 0.5 <= float(prob) <= 1.0


def test_fine_tune_recipe_through_the_cli(
    tiny_reviews: Path, tiny_stars: Path, tmp_path: Path, monkeypatch
) -> None:
    """``seqtasks fit --config recipes/sentiment-stars-finetune.yaml --model.init_args.init_from CKPT``.

    Pretrains with the IMDB recipe and fine-tunes with the fine-tune recipe (both shrunk alike), with a
    learning rate of 0 so that the fine-tuned checkpoint still holds exactly what ``init_from`` loaded: the
    pretrained encoder, the shared words' embeddings, a fresh 5-way head.
    """
    monkeypatch.chdir(tmp_path)
    shrink = ["--model.init_args.embedding_dim", "16",
              "--model.init_args.encoder.init_args.hidden_size", "16",
              "--data.init_args.min_freq", "1", "--trainer.max_epochs", "1", "--test_after_fit", "false",
              *QUIET]  # fmt: skip
    main(["fit", "--config", str(RECIPES / "sentiment-imdb.yaml"), *shrink,
          "--trainer.default_root_dir", str(tmp_path / "imdb"),
          "--data.init_args.dataset", str(tiny_reviews)])  # fmt: skip
    source_path = tmp_path / "imdb" / "checkpoints" / "last.ckpt"
    source = torch.load(source_path, map_location="cpu", weights_only=True)

    main(["fit", "--config", str(RECIPES / "sentiment-stars-finetune.yaml"), *shrink,
          "--trainer.default_root_dir", str(tmp_path / "stars"), "--data.init_args.dataset", str(tiny_stars),
          "--model.init_args.init_from", str(source_path), "--model.init_args.lr", "0.0"])  # fmt: skip
    tuned = torch.load(
        tmp_path / "stars" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    assert tuned["global_step"] > 0
    assert tuned["hyper_parameters"]["init_from"] == str(source_path)
    state, old = tuned["state_dict"], source["state_dict"]
    for key in (k for k in old if k.startswith("encoder.")):
        assert torch.equal(state[key], old[key]), key
    assert state["head.weight"].shape[0] == 5 and old["head.weight"].shape[0] == 2
    old_index = {w: i for i, w in enumerate(source["seqtasks"]["artefacts"]["text_encoder"]["vocabulary"])}
    new_words = tuned["seqtasks"]["artefacts"]["text_encoder"]["vocabulary"]
    shared = [(i, old_index[w]) for i, w in enumerate(new_words) if w in old_index]
    assert len(shared) > 10
    for new, before in shared:
        assert torch.equal(state["embedding.weight"][new], old["embedding.weight"][before])


class ConstantMetric(pl.Callback):
    """Logs the same ``flat`` value every validation: the first epoch is the best and stays the best."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        pl_module.log("flat", 1.0)


@pytest.mark.parametrize("best_and_last", [False, True])
def test_last_checkpoint_holds_the_latest_epoch(
    tiny_reviews: Path, tmp_path: Path, best_and_last: bool
) -> None:
    """Lightning's own ModelCheckpoint leaves ``last.ckpt`` at the best epoch once the metric stops
    improving (it writes it only with a top-k save); BestAndLastCheckpoint keeps it at the latest epoch,
    which is what ``fit --ckpt_path last.ckpt`` must resume from."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from seqtasks.callbacks import BestAndLastCheckpoint

    cls = BestAndLastCheckpoint if best_and_last else ModelCheckpoint
    built = build(tiny_config(tmp_path / "run", tiny_reviews, max_epochs=3))
    checkpoint = cls(dirpath=tmp_path / "ckpt", monitor="flat", mode="max", save_last=True, filename="best")
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=3,
        callbacks=[ConstantMetric(), checkpoint],
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(built.model, datamodule=built.datamodule)
    best = torch.load(checkpoint.best_model_path, weights_only=True)
    last = torch.load(checkpoint.last_model_path, weights_only=True)
    assert best["epoch"] == 0
    assert last["epoch"] == (2 if best_and_last else 0)
    assert last["global_step"] == (trainer.global_step if best_and_last else best["global_step"])
