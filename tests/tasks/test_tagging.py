"""The tagger's training life on tiny data: fit, checkpoint, tag in a fresh process, CoNLL output,
fine-tuning.

Models are built through the CLI's parser, the way users build them, so the checkpoints hold the
hyperparameters that ``load_from_checkpoint`` rebuilds from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REAL_DATA_DIR, requires_real_data
from fixtures.ner import SnapshotAtTrainStart, make_tiny_ner, tiny_args

from seqtasks.cli import main
from seqtasks.data.conll import read_conll
from seqtasks.inference.tagging import Tagger, entity_tuples
from seqtasks.networks.tagger import TaggerNetwork
from seqtasks.optim import InverseTimeDecay
from seqtasks.tasks import TokenTagger, load_task
from seqtasks.training import run_lightning


@pytest.fixture(autouse=True)
def _cli_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


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
    assert {"words", "chars", "lowercase"} <= set(artefacts["tagging_codec"])
    assert checkpoint["seqtasks"]["format"] == 2
    assert all(key.startswith("network.") for key in checkpoint["state_dict"])
    model = load_task(str(ckpt))
    assert isinstance(model, TokenTagger) and isinstance(model.network, TaggerNetwork)
    result = Tagger.from_task(model).tag(["Peter Blackburn visited New York ."])[0]
    figures = sorted((ckpt.parents[1] / "figures").glob("val_f1_per_type_epoch*.png"))  # one per epoch
    assert len(figures) == 8
    assert [t["tag"] for t in result["tokens"]] == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    assert entity_tuples(result) == [("PER", 0, 1, "Peter Blackburn"), ("LOC", 3, 4, "New York")]
    assert [(e["start"], e["end"]) for e in result["entities"]] == [(0, 15), (24, 32)]


def test_tag_command_in_a_fresh_process_without_data(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """`seqtasks tag` needs only the checkpoint: no SEQTASKS_DATA_DIR, a fresh interpreter, an empty cwd."""
    ckpt, _ = trained
    env = {k: v for k, v in os.environ.items() if k != "SEQTASKS_DATA_DIR"}
    env["SEQTASKS_CACHE_DIR"] = str(tmp_path / "empty-cache")
    command = [sys.executable, "-m", "seqtasks.cli", "tag", "--ckpt", str(ckpt), "Dhaval loves Yoda"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("\t")[:2] for line in lines[:3]] == [
        ["Dhaval", "B-PER"],
        ["loves", "O"],
        ["Yoda", "B-PER"],
    ]
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
    for key in [k for k in old if k.startswith("network.encoder.")]:
        torch.testing.assert_close(state[key], old[key])
    for tag in old_labels:
        new_i, old_i = model.labels.index(tag), old_labels.index(tag)
        torch.testing.assert_close(state["network.head.weight"][new_i], old["network.head.weight"][old_i])
        torch.testing.assert_close(state["network.crf.start"][new_i], old["network.crf.start"][old_i])
        for other in old_labels:
            torch.testing.assert_close(
                state["network.crf.transitions"][new_i, model.labels.index(other)],
                old["network.crf.transitions"][old_i, old_labels.index(other)],
            )
    result = Tagger.from_task(model).tag(["Reuters praised Paris"])[0]
    assert [t["tag"] for t in result["tokens"]] == ["B-ORG", "O", "B-LOC"]


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
    predicted = Tagger.from_task(model).tag_tokens([r["tokens"] for r in rows])
    metric = SpanF1(model.labels)
    metric.update(predicted, gold)
    ours = metric.compute()
    assert int(metric.pred.sum()) > 50, "the model should predict entities for the comparison to mean much"
    assert float(ours["f1"]) == pytest.approx(100 * f1_score(gold, predicted), abs=1e-4)
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    for kind in metric.types:
        assert float(ours[f"f1/{kind}"]) == pytest.approx(100 * report[kind]["f1-score"], abs=1e-4), kind


def test_sgd_with_inverse_time_decay_comes_from_the_recipe_not_the_task() -> None:
    """The old optimizer: sgd / momentum / lr_decay switches are the recipe's optimizer and schedule."""
    from functools import partial

    from seqtasks.encoders import LSTMEncoder

    tagger = TokenTagger(
        network=partial(TaggerNetwork, encoder=lambda width: LSTMEncoder(width, hidden_size=4)),
        vocab_size=10,
        char_vocab_size=10,
        labels=["O", "B-PER", "I-PER"],
        optimizer=partial(torch.optim.SGD, lr=0.1, momentum=0.9),
        lr_scheduler=partial(InverseTimeDecay, decay=0.05),
    )
    config = tagger.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.9
    assert config["lr_scheduler"]["interval"] == "epoch"
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.1 / (1 + 0.05 * epoch) for epoch in range(4)])
    with pytest.raises(ValueError, match="labels must include 'O'"):
        TokenTagger(
            network=tagger.hparams.network, vocab_size=10, char_vocab_size=10, labels=["B-PER", "I-PER"]
        )


def test_predict_stage_writes_conll_columns_of_a_file_and_of_the_test_split(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """`seqtasks predict`: a raw .txt file (CoNLL-tokenised) → `token predicted` lines in file order, equal
    to the Tagger's tags; without predict_file the test split with its gold tags → `token gold predicted`."""
    ckpt, dataset = trained
    texts = ["Peter Blackburn visited New York.", "Dhaval loves Yoda", "Tokyo"]
    source = tmp_path / "news.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "predictions.conll"
    args = ["predict", *tiny_args(tmp_path / "run", dataset), "--ckpt_path", str(ckpt)]
    run_lightning([*args, "--predictions", str(out), "--data.init_args.predict_file", str(source)])
    blocks = [block.splitlines() for block in out.read_text().strip("\n").split("\n\n")]
    expected = Tagger.from_checkpoint(ckpt).tag(texts)
    assert [[line.split() for line in block] for block in blocks] == [
        [[t["text"], t["tag"]] for t in record["tokens"]] for record in expected
    ]
    gold_out = tmp_path / "test.conll"
    run_lightning([*args, "--predictions", str(gold_out)])
    predicted = list(read_conll(gold_out, label_column=2, scheme="iob2"))
    gold = list(read_conll(gold_out, label_column=1, scheme="iob2"))
    assert len(gold) == 24 and all(
        len(line.split()) == 3 for line in gold_out.read_text().splitlines() if line
    )
    assert sum(p.tags == g.tags for p, g in zip(predicted, gold, strict=True)) >= 20  # a trained tagger
    assert not (tmp_path / "run" / "config.yaml").exists()  # predict saves no config
