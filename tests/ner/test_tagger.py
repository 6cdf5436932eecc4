"""The NER tagger's life on tiny data: fit, checkpoint, tag in a fresh process, CoNLL output, fine-tuning.

Models are built through the CLI's parser, the way users build them, so the checkpoints hold the
hyperparameters that ``load_from_checkpoint`` rebuilds from.
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
from conftest import REAL_DATA_DIR, requires_real_data
from ner_fixtures import make_tiny_ner

from seqtasks.cli import main, run_lightning
from seqtasks.data.conll import read_conll
from seqtasks.tasks import TokenTagger, load_task


class SnapshotAtTrainStart(pl.Callback):
    """The weights as training starts: after ``setup`` (where ``init_from`` applies), before any step."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


@pytest.fixture(autouse=True)
def _cli_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


def tiny_args(root: Path, dataset: Path, max_epochs: int = 8, **model: Any) -> list[str]:
    """A tiny BiLSTM-CRF (word 16, chars 8×8, hidden 16) on ``dataset``; checkpoints under ``root``."""
    config = {
        "seed_everything": 1,
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
                    "init_args": {"dirpath": str(root / "checkpoints"), "monitor": "val/f1", "mode": "max"},
                }
            ],
        },
        "model": {
            "class_path": "seqtasks.tasks.TokenTagger",
            "init_args": {
                "word_dim": 16,
                "char_dim": 8,
                "char_filters": 8,
                "casing_dim": 4,
                "dropout": 0.1,
                "word_dropout": 0.0,
                "lr": 0.02,
                "encoder": {"class_path": "seqtasks.encoders.LSTMEncoder", "init_args": {"hidden_size": 16}},
                **model,
            },
        },
        "data": {
            "class_path": "seqtasks.data.TokenTaggingDataModule",
            "init_args": {"dataset": str(dataset), "batch_size": 8, "pool_batches": 2},
        },
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.in.yaml"
    path.write_text(yaml.safe_dump(config))
    return ["--config", str(path)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One tiny fit shared by the tests below: (best checkpoint, dataset)."""
    root = tmp_path_factory.mktemp("ner")
    dataset = make_tiny_ner(root / "data")
    argv, sys.argv = sys.argv, ["seqtasks"]
    try:
        cli = run_lightning(["fit", *tiny_args(root / "run", dataset), "--test_after_fit", "false"])
    finally:
        sys.argv = argv
        os.environ.pop("PL_GLOBAL_SEED", None)
    best = cli.trainer.checkpoint_callback.best_model_path
    assert best and float(cli.trainer.checkpoint_callback.best_model_score) > 90
    return Path(best), dataset


def test_checkpoint_is_plain_data_and_tags_the_same(trained: tuple[Path, Path]) -> None:
    ckpt, _ = trained
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    artefacts = checkpoint["seqtasks"]["artefacts"]
    assert artefacts["labels"][0] == "O" and "B-PER" in artefacts["labels"]
    assert {"words", "chars", "lowercase"} <= set(artefacts["token_encoder"])
    model = load_task(str(ckpt))
    assert isinstance(model, TokenTagger)
    result = model.tag(["Peter Blackburn visited New York ."])[0]
    assert result["tags"] == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    assert result["entities"] == [("PER", 0, 1, "Peter Blackburn"), ("LOC", 3, 4, "New York")]


def test_tag_command_in_a_fresh_process_without_data(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """`seqtasks tag` needs only the checkpoint: no SEQTASKS_DATA_DIR, a fresh interpreter, an empty cwd."""
    ckpt, _ = trained
    env = {k: v for k, v in os.environ.items() if k != "SEQTASKS_DATA_DIR"}
    env["SEQTASKS_CACHE_DIR"] = str(tmp_path / "empty-cache")
    command = [sys.executable, "-m", "seqtasks.cli", "tag", "--ckpt", str(ckpt), "Dhaval loves Yoda"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["Dhaval\tB-PER", "loves\tO", "Yoda\tB-PER"]
    assert lines[3] == "# entities: PER: Dhaval [0-0]; PER: Yoda [2-2]"


def test_predict_conll_writes_token_gold_predicted(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The output reads back as a 3-column CoNLL file whose gold column is the input's labels."""
    ckpt, _ = trained
    source = tmp_path / "in.conll"
    source.write_text(
        "-DOCSTART- O\n\nAnna I-PER\nKarenina I-PER\nmet O\nParis I-LOC\n\nYoda I-PER\nleft O\n"
    )
    out = tmp_path / "out.conll"
    main(["predict-conll", "--ckpt", str(ckpt), "--input", str(source), "--output", str(out)])
    assert "F1 100.00" in capsys.readouterr().out
    rows = [line.split() for line in out.read_text().splitlines() if line]
    assert rows[0] == ["Anna", "B-PER", "B-PER"] and all(len(r) == 3 for r in rows)
    predicted = list(read_conll(out, label_column=2, scheme="iob2"))
    gold = list(read_conll(out, label_column=1, scheme="iob2"))
    assert [s.tags for s in predicted] == [s.tags for s in gold]


def test_fine_tune_onto_a_tag_set_with_a_new_entity_type(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """init_from onto PER/LOC/ORG: encoder and shared rows (head, CRF) kept, ORG rows new, and ORG learnt."""
    ckpt, _ = trained
    source = torch.load(ckpt, map_location="cpu", weights_only=True)
    old_labels = source["seqtasks"]["artefacts"]["labels"]
    dataset = make_tiny_ner(tmp_path / "data-org", with_org=True)
    args = tiny_args(tmp_path / "run", dataset, max_epochs=6, init_from=str(ckpt))
    cli = run_lightning(args, run=False)
    model = cli.model
    assert "B-ORG" in model.labels and "B-ORG" not in old_labels
    snapshot = SnapshotAtTrainStart()
    cli.trainer.callbacks.append(snapshot)
    cli.trainer.fit(model, datamodule=cli.datamodule)
    state = snapshot.state  # after init_from, before the first step
    old = source["state_dict"]
    for key in [k for k in old if k.startswith("encoder.")]:
        torch.testing.assert_close(state[key], old[key])
    for tag in old_labels:
        new_i, old_i = model.labels.index(tag), old_labels.index(tag)
        torch.testing.assert_close(state["head.weight"][new_i], old["head.weight"][old_i])
        torch.testing.assert_close(state["crf.start"][new_i], old["crf.start"][old_i])
        for other in old_labels:
            torch.testing.assert_close(
                state["crf.transitions"][new_i, model.labels.index(other)],
                old["crf.transitions"][old_i, old_labels.index(other)],
            )
    result = model.tag(["Reuters praised Paris"])[0]
    assert result["tags"] == ["B-ORG", "O", "B-LOC"]


@pytest.mark.realdata
@requires_real_data
def test_span_f1_equals_seqeval_on_a_trained_models_conll_predictions(tmp_path: Path) -> None:
    """Train briefly on a CoNLL-2003 slice, tag 300 dev sentences; SpanF1 equals seqeval (= conlleval)."""
    from seqeval.metrics import classification_report, f1_score

    from seqtasks.metrics import SpanF1

    dataset = Path(REAL_DATA_DIR) / "conll2003"
    args = tiny_args(tmp_path / "run", dataset, max_epochs=1, lr=0.01)
    limits = ["--trainer.limit_train_batches", "60", "--trainer.limit_val_batches", "0"]
    cli = run_lightning(
        ["fit", *args, *limits, "--test_after_fit", "false", "--data.init_args.batch_size", "16"]
    )
    model = cli.model.eval()
    rows = cli.datamodule.split_rows("validation")[:300]
    gold = [r["tags"] for r in rows]
    predicted = model.tag_tokens([r["tokens"] for r in rows])
    metric = SpanF1(model.labels)
    metric.update(predicted, gold)
    ours = metric.compute()
    assert int(metric.pred.sum()) > 50, "the model should predict entities for the comparison to mean much"
    assert float(ours["f1"]) == pytest.approx(100 * f1_score(gold, predicted), abs=1e-4)
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    for kind in metric.types:
        assert float(ours[f"f1/{kind}"]) == pytest.approx(100 * report[kind]["f1-score"], abs=1e-4), kind


def test_step_decay_settings_are_checked() -> None:
    from seqtasks.encoders import LSTMEncoder
    from seqtasks.tasks import TokenTagger

    def make(**kwargs: object) -> TokenTagger:
        return TokenTagger(
            vocab_size=10,
            char_vocab_size=10,
            labels=["O", "B-PER", "I-PER"],
            encoder=lambda width: LSTMEncoder(width, hidden_size=4),
            **kwargs,
        )

    with pytest.raises(ValueError, match="step_decay_start is for adam"):
        make(optimizer="sgd", step_decay_start=3)
    with pytest.raises(ValueError, match=r"step_decay must be in \(0, 1\]"):
        make(step_decay=0.0)
    with pytest.raises(ValueError, match="step_decay_start must be >= 0"):
        make(step_decay_start=-1)
    tagger = make(lr=0.01, step_decay=0.5, step_decay_start=2)
    assert [tagger.learning_rate(e) for e in range(5)] == pytest.approx([0.01, 0.01, 0.005, 0.0025, 0.00125])
