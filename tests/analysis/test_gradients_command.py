"""`seqtasks gradients` end to end on a tiny budget: it trains through the library and writes its artefacts.

The real run takes minutes; this one seconds, on the built-in filler text (no data directory, no network).
"""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest

from seqtasks.analysis.lab import LabSettings, at_chance, chance_distance
from seqtasks.cli import main

TINY = [
    "--hidden",
    "8",
    "--embedding-dim",
    "8",
    "--epochs",
    "1",
    "--train-size",
    "64",
    "--validation-size",
    "16",
]
TINY += ["--test-size", "32", "--batch-size", "16", "--probe-rows", "8"]


def _csv(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_gradients_command_writes_results_gradients_and_figures(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SEQTASKS_DATA_DIR", raising=False)
    out = tmp_path / "lab"
    args = ["gradients", "--encoders", "rnn,lstm", "--distances", "5,7", "--gate-bias", "torch,2"]
    main([*args, "--out", str(out), *TINY])

    results = _csv(out / "results.csv")
    models = ["rnn", "lstm", "lstm-b2"]  # the LSTM once at torch's init, once with forget-gate bias 2
    assert [(r["model"], int(r["distance"])) for r in results] == [(m, d) for d in (5, 7) for m in models]
    for row in results:
        assert 0.0 <= float(row["test_acc"]) <= 1.0
        assert float(row["decay_per_step_init"]) > 0  # a finite fitted decay at init and after training
        assert float(row["decay_per_step_trained"]) > 0
    init = {(r["model"], r["distance"]): float(r["decay_per_step_init"]) for r in results}
    assert init[("lstm-b2", "7")] > init[("lstm", "7")]  # the gate bias is applied before the probe
    gradients = _csv(out / "gradients.csv")
    # one row per model, distance, stage (init/trained) and step back (0..distance)
    assert len(gradients) == 3 * 2 * ((5 + 1) + (7 + 1))
    assert {r["stage"] for r in gradients} == {"init", "trained"}
    assert all(float(r["hidden_norm"]) > 0 and float(r["input_norm"]) > 0 for r in gradients)
    steps = _csv(out / "steps.csv")
    assert len(steps) == 6 * 4  # 64 rows / batch 16, per run
    for name in ("accuracy.png", "gradients.png", "summary.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert not (out / "exploding.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert "built-in" in summary["filler_source"] and summary["wall_seconds"] > 0
    assert "| LSTM, gate bias 2 |" in (out / "summary.md").read_text()
    assert (out / "logs" / "tense-rnn-d5" / "metrics.csv").exists()  # the Lightning run's own log


def test_explode_switch_trains_without_and_with_clipping(tmp_path) -> None:
    out = tmp_path / "explode"
    args = ["gradients", "--task", "adding", "--encoders", "rnn", "--distances", "6", "--explode-scale", "5"]
    main([*args, "--clip", "0.5", "--wandb", "--out", str(out), *TINY])  # W&B is disabled in tests
    results = _csv(out / "results.csv")
    assert [r["clip"] for r in results] == ["", "0.5"] and {r["explode_scale"] for r in results} == {"5.0"}
    steps = _csv(out / "steps.csv")
    assert {r["clip"] for r in steps} == {"", "0.5"}
    assert (out / "exploding.png").read_bytes()[:4] == b"\x89PNG"
    # scaled recurrent weights make the gradient grow, not shrink, with distance at init
    assert float(results[0]["decay_per_step_init"]) > 1.0


def test_settings_are_validated_with_the_flag_named() -> None:
    with pytest.raises(ValueError, match="--encoders"):
        LabSettings(encoders=["transformer"])
    with pytest.raises(ValueError, match="--distances"):
        LabSettings(task="tense", distances=[3, 10])
    with pytest.raises(SystemExit):
        main(["gradients", "--clip", "-1"])


def test_the_command_defaults_are_the_settings_defaults() -> None:
    """``seqtasks gradients`` writes its defaults out (its --help imports nothing heavy): they must agree."""
    import argparse

    from seqtasks.analysis.settings import LabSettings
    from seqtasks.commands import gradients

    parser = argparse.ArgumentParser()
    gradients.add_arguments(parser)
    options = vars(parser.parse_args([]))
    defaults = LabSettings()
    for name, value in vars(defaults).items():
        if name == "encoders":
            assert options[name].split(",") == value
        elif name == "distances":
            assert [int(d) for d in options[name].split(",")] == value
        elif name == "gate_biases":
            assert options["gate_bias"] == "torch" and value == [None]
        else:
            assert options[name] == value, name


def test_build_model_takes_the_optimizer_as_a_constructor_argument() -> None:
    """``--optimizer sgd`` gives plain SGD through SequenceClassifier's ``optimizer`` (no subclass)."""
    import torch

    from seqtasks.analysis.lab import lab_optimizer
    from seqtasks.analysis.settings import LabSettings

    parameters = [torch.nn.Parameter(torch.zeros(1))]
    sgd = lab_optimizer(LabSettings(optimizer="sgd", lr=0.1))(parameters)
    adamw = lab_optimizer(LabSettings(lr=0.01))(parameters)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["lr"] == 0.1 and sgd.defaults["weight_decay"] == 0
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["weight_decay"] == 0.0


def test_chance_band_and_the_distance_where_a_model_stays_at_chance() -> None:
    assert at_chance(0.53, 0.5, 1000) and not at_chance(0.56, 0.5, 1000)
    runs = [
        SimpleNamespace(variant="rnn", clip=1.0, distance=d, test_acc=acc)
        for d, acc in ((5, 1.0), (10, 0.51), (20, 0.9), (50, 0.5), (100, 0.52))
    ]
    assert chance_distance(runs, "rnn", 0.5, 1000, clip=1.0) == 50  # 10 was at chance, but 20 was not
    assert chance_distance(runs[:1], "rnn", 0.5, 1000, clip=1.0) is None
