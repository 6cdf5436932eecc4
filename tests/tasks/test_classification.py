"""The life of a classifier on tiny data, CPU, seconds: fit, checkpoint, load, resume, fine-tune, the CLI;
and the classifier checkpoints of before the redesign (tests/fixtures/legacy), which must still load and
predict bit for bit what they predicted then.

Models are built the way users build them, through the CLI's parser (``run_lightning(..., run=False)``),
so checkpoints hold the jsonargparse-built hyperparameters that ``load_from_checkpoint`` rebuilds from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import yaml
from fixtures.classification import TEXTS, SnapshotAtTrainStart, StepLosses, build, is_plain, tiny_config
from torch.utils.data import DataLoader

from seqtasks.checkpoints import load_task, load_trained
from seqtasks.cli import main
from seqtasks.inference.classification import Classifier, prediction_record
from seqtasks.tasks import SequenceClassifier

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
STAR_LABELS = ["1", "2", "3", "4", "5"]
LEGACY = ROOT / "tests" / "fixtures" / "legacy"
QUIET = [
    "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip


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
    hyperparameters, the vocabulary and the label names. The comparison uses the Classifier of the in-memory
    model right after ``fit`` (left in training mode by Lightning) with dropout > 0: inference must not
    apply dropout.
    """
    cli = build(tiny_config(tmp_path / "run", tiny_reviews, cell="LSTMEncoder", max_epochs=2))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    model: SequenceClassifier = cli.model
    vocabulary = cli.datamodule.prepared["vocabulary"]
    path = cli.trainer.checkpoint_callback.last_model_path
    expected = Classifier.from_task(model).classify(TEXTS)
    assert model.training  # the predictor left the model's mode as it found it
    batch = next(iter(cli.datamodule.val_dataloader()))
    model.eval()
    with torch.no_grad():
        expected_logits = model.network(batch["tokens"], batch["lengths"])

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert is_plain(checkpoint["hyper_parameters"])
    hparams = checkpoint["hyper_parameters"]
    assert hparams["labels"] == ["neg", "pos"] and hparams["vocab_size"] == len(vocabulary)
    network = hparams["network"]["init_args"]
    assert network["embedding_dim"] == 16 and network["encoder"]["init_args"]["hidden_size"] == 16
    assert hparams["optimizer"] == {
        "class_path": "torch.optim.AdamW",
        "init_args": hparams["optimizer"]["init_args"],
    }
    assert checkpoint["seqtasks"]["format"] == 2
    artefacts = checkpoint["seqtasks"]["artefacts"]
    assert is_plain(artefacts)
    assert artefacts["text_codec"]["vocabulary"] == vocabulary
    assert artefacts["labels"] == ["neg", "pos"]

    # no data, no prepared vocabulary, no data directory: only the checkpoint
    for name in os.listdir(tiny_reviews):
        os.remove(tiny_reviews / name)
    monkeypatch.setenv("SEQTASKS_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("SEQTASKS_DATA_DIR", raising=False)
    loaded = load_task(path)
    assert isinstance(loaded, SequenceClassifier) and not loaded.training
    assert loaded.network.encoder.output_size == model.network.encoder.output_size == 32
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.network(batch["tokens"], batch["lengths"]), expected_logits, rtol=0, atol=0
        )
    got = Classifier.from_checkpoint(path).classify(TEXTS)
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
    old_words = source["seqtasks"]["artefacts"]["text_codec"]["vocabulary"]

    args = tiny_config(tmp_path / "stars", tiny_stars, labels=STAR_LABELS, label_column="stars")
    tuned = build([*args, "--model.init_args.init_from", source_path])
    snapshot = SnapshotAtTrainStart()
    tuned.trainer.callbacks.append(snapshot)
    tuned.trainer.fit(tuned.model, datamodule=tuned.datamodule)
    start = snapshot.state

    encoder_keys = [k for k in source["state_dict"] if k.startswith("network.encoder.")]
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
                start["network.embedding.weight"][i],
                source["state_dict"]["network.embedding.weight"][old_index[word]],
            )
    assert len(shared) > 10

    assert start["network.head.weight"].shape[0] == 5 and tuned.model.labels == STAR_LABELS
    assert source["state_dict"]["network.head.weight"].shape[0] == 2
    end = tuned.model.state_dict()
    assert tuned.trainer.global_step > 0
    assert not torch.equal(end["network.head.weight"], start["network.head.weight"])
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
    assert torch.equal(same["network.head.weight"], source["network.head.weight"])
    assert not torch.equal(renamed["network.head.weight"], source["network.head.weight"])
    assert torch.equal(renamed["network.embedding.weight"], source["network.embedding.weight"])


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
               "--model.init_args.network.init_args.embedding_dim", "16",
               "--model.init_args.network.init_args.encoder.init_args.hidden_size", "16"]  # fmt: skip
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
    expected = Classifier.from_checkpoint(best[0]).classify(TEXTS)
    for (label, prob, _), (want_label, want_prob, _) in zip(lines, expected, strict=True):
        assert label == want_label and label in {"neg", "pos"}
        assert float(prob) == pytest.approx(want_prob, abs=1e-4) and 0.5 <= float(prob) <= 1.0

    # the predictor builds the network from the checkpoint alone, without the LightningModule: the same
    # weights and outputs as through load_task, and a fresh process never imports Lightning
    trained, task = load_trained(best[0]), load_task(best[0])
    assert trained.task_name == "seqtasks.tasks.classification.SequenceClassifier"
    assert trained.labels == task.labels and trained.artefacts == task.artefacts
    own, full = trained.network.state_dict(), task.network.state_dict()
    assert own.keys() == full.keys() and all(torch.equal(own[k], full[k]) for k in own)
    tokens, lengths = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]]), torch.tensor([3, 2])
    assert torch.equal(trained.network(tokens, lengths), task.network.eval()(tokens, lengths))
    code = (
        "import sys; from seqtasks.inference.classification import Classifier\n"
        f"Classifier.from_checkpoint({best[0]!r}).classify(['a fine film'])\n"
        "heavy = [m for m in ('lightning', 'datasets', 'torchmetrics') if m in sys.modules]\n"
        "sys.exit(f'imported {heavy}' if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_fine_tune_recipe_through_the_cli(
    tiny_reviews: Path, tiny_stars: Path, tmp_path: Path, monkeypatch
) -> None:
    """``seqtasks fit --config recipes/sentiment-stars-finetune.yaml --model.init_args.init_from CKPT``.

    Pretrains with the IMDB recipe and fine-tunes with the fine-tune recipe (both shrunk alike), with a
    learning rate of 0 so that the fine-tuned checkpoint still holds exactly what ``init_from`` loaded: the
    pretrained encoder, the shared words' embeddings, a fresh 5-way head.
    """
    monkeypatch.chdir(tmp_path)
    shrink = ["--model.init_args.network.init_args.embedding_dim", "16",
              "--model.init_args.network.init_args.encoder.init_args.hidden_size", "16",
              "--data.init_args.min_freq", "1", "--trainer.max_epochs", "1", "--test_after_fit", "false",
              *QUIET]  # fmt: skip
    main(["fit", "--config", str(RECIPES / "sentiment-imdb.yaml"), *shrink,
          "--trainer.default_root_dir", str(tmp_path / "imdb"),
          "--data.init_args.dataset", str(tiny_reviews)])  # fmt: skip
    source_path = tmp_path / "imdb" / "checkpoints" / "last.ckpt"
    source = torch.load(source_path, map_location="cpu", weights_only=True)

    main(["fit", "--config", str(RECIPES / "sentiment-stars-finetune.yaml"), *shrink,
          "--trainer.default_root_dir", str(tmp_path / "stars"), "--data.init_args.dataset", str(tiny_stars),
          "--model.init_args.init_from", str(source_path),
          "--model.init_args.optimizer.init_args.lr", "0.0"])  # fmt: skip
    tuned = torch.load(
        tmp_path / "stars" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    assert tuned["global_step"] > 0
    assert tuned["hyper_parameters"]["init_from"] == str(source_path)
    state, old = tuned["state_dict"], source["state_dict"]
    assert tuned["hyper_parameters"]["optimizer"]["init_args"]["lr"] == 0.0
    for key in (k for k in old if k.startswith("network.encoder.")):
        assert torch.equal(state[key], old[key]), key
    assert state["network.head.weight"].shape[0] == 5 and old["network.head.weight"].shape[0] == 2
    old_index = {w: i for i, w in enumerate(source["seqtasks"]["artefacts"]["text_codec"]["vocabulary"])}
    new_words = tuned["seqtasks"]["artefacts"]["text_codec"]["vocabulary"]
    shared = [(i, old_index[w]) for i, w in enumerate(new_words) if w in old_index]
    assert len(shared) > 10
    for new, before in shared:
        assert torch.equal(state["network.embedding.weight"][new], old["network.embedding.weight"][before])


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


def test_predict_stage_gives_what_the_inference_api_gives(tiny_reviews: Path, tmp_path: Path) -> None:
    """``trainer.predict`` and ``Classifier.predict_batch`` share the decoding: the same predictions, as the
    records ``classify --format jsonl`` writes (id: row number from 1)."""
    cli = build(tiny_config(tmp_path / "run", tiny_reviews))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    batch = next(iter(cli.datamodule.val_dataloader()))
    predicted = cli.trainer.predict(cli.model, dataloaders=DataLoader([batch], batch_size=None))[0]
    classifier = Classifier.from_task(cli.model)
    found = classifier.predict_batch(batch["tokens"], batch["lengths"])
    ids = (batch["indices"] + 1).tolist()
    expected = [prediction_record(i, p, classifier.labels) for i, p in zip(ids, found, strict=True)]
    assert predicted == expected and len(predicted) == batch["labels"].size(0)
    assert all(
        r["label"] in {"neg", "pos"} and r["probability"] == max(r["probabilities"].values())
        for r in predicted
    )


def test_legacy_checkpoint_loads_and_predicts_as_recorded() -> None:
    """A classifier checkpoint of before the redesign (format 1) loads with weights_only, is upgraded to the
    network layout, and gives exactly the labels and probabilities that the old code recorded, and its
    logits to float rounding (another CPU differs in their last bits)."""
    expected = torch.load(LEGACY / "expected.pt", weights_only=True)["classifier"]
    task = load_task(LEGACY / "classifier.ckpt")
    assert isinstance(task, SequenceClassifier) and not task.training
    assert task.labels == ["neg", "pos"] and "text_codec" in task.artefacts
    got = Classifier.from_task(task).classify(expected["texts"])
    assert [p.label for p in got] == expected["labels"]
    assert torch.equal(
        torch.tensor([p.probability for p in got], dtype=torch.float64), expected["label_probs"]
    )
    assert torch.equal(torch.tensor([p.probabilities for p in got], dtype=torch.float64), expected["probs"])
    with torch.no_grad():
        logits = task.network(expected["tokens"], expected["lengths"])
    torch.testing.assert_close(logits, expected["logits"], rtol=1e-5, atol=1e-5)
    # the last text has no known word: all <unk>, still classified (only an empty text is refused)
    tokens, lengths = Classifier.from_task(task).encode(expected["texts"][-1:])
    assert tokens.tolist() == [[1, 1]] and lengths.tolist() == [2]


def test_fine_tune_from_a_legacy_checkpoint(tiny_stars: Path, tmp_path: Path) -> None:
    """``init_from`` an old-layout checkpoint: its encoder and shared words' embeddings are loaded."""
    source = load_task(LEGACY / "classifier.ckpt").state_dict()
    args = tiny_config(
        tmp_path / "stars", tiny_stars, labels=STAR_LABELS, label_column="stars", cell="LSTMEncoder"
    )
    tuned = build(
        [*args, "--model.init_args.init_from", str(LEGACY / "classifier.ckpt"), "--trainer.max_steps", "1"]
    )
    snapshot = SnapshotAtTrainStart()
    tuned.trainer.callbacks.append(snapshot)
    tuned.trainer.fit(tuned.model, datamodule=tuned.datamodule)
    encoder_keys = [k for k in source if k.startswith("network.encoder.")]
    assert encoder_keys
    for key in encoder_keys:
        assert torch.equal(snapshot.state[key], source[key]), key
    assert snapshot.state["network.head.weight"].shape[0] == 5


def test_an_empty_text_is_refused_at_inference_naming_its_number(capsys: pytest.CaptureFixture) -> None:
    """The codec's one decision: an empty text is an error, at inference as in training (test_data)."""
    from seqtasks.data.text import EmptyTextError

    classifier = Classifier.from_checkpoint(LEGACY / "classifier.ckpt", batch_size=2)
    with pytest.raises(EmptyTextError, match="input 3: empty text"):
        classifier.classify(["a good film", "bad", "  "])
    with pytest.raises(SystemExit, match="seqtasks classify: input 2: empty text"):
        main(["classify", "--ckpt", str(LEGACY / "classifier.ckpt"), "a good film", "<br />"])
    # batching does not change the answers
    texts = ["a good film", "bad", "the worst plot", "wonderful"]
    assert classifier.classify(texts) == Classifier.from_checkpoint(LEGACY / "classifier.ckpt").classify(
        texts
    )
    main(["classify", "--ckpt", str(LEGACY / "classifier.ckpt"), "a good film"])
    label, probability, text = capsys.readouterr().out.strip().split("\t")
    assert label in {"neg", "pos"} and 0.5 <= float(probability) <= 1 and text == "a good film"


def test_the_classifier_refuses_a_task_of_another_kind() -> None:
    with pytest.raises(TypeError, match="not a classifier"):
        Classifier.from_task(SimpleNamespace(network=torch.nn.Linear(2, 2), artefacts={}, labels=[]))
