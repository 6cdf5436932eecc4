"""`seqtasks lab` (why not a plain network): known answers and a tiny end-to-end run.

The real run reads CoNLL-2003 and takes minutes; here the tiny NER fixture stands in for it (same layout).
"""

from __future__ import annotations

import argparse
import csv
import json

import pytest
import torch
from fixtures.ner import make_tiny_ner

from seqtasks.analysis import costs
from seqtasks.analysis.plain import (
    Encoded,
    PaddedWidthTagger,
    WindowTagger,
    padded_width_parameters,
    predict,
    recurrent_parameters,
    recurrent_tagger,
    score_by_length,
    split_by_position,
    trainable,
    window_parameters,
)
from seqtasks.analysis.plain_lab import PlainLabSettings
from seqtasks.cli import main

FEATURES = ("features", "embedding", "casing")  # the shared embeddings, left out of every count


@pytest.mark.parametrize("width", [3, 17, 40])
def test_plain_network_parameters_grow_with_width_as_the_closed_form(width: int) -> None:
    model = PaddedWidthTagger(vocab_size=50, num_tags=9, width=width, word_dim=6, casing_dim=2, hidden=11)
    assert trainable(model, FEATURES) == padded_width_parameters(width, 8, 11, 9)
    # with one-hot inputs the first layer is T·V·H: the closed form is the same one with D = V
    one_hot = padded_width_parameters(width, 50, 11, 9)
    assert one_hot - padded_width_parameters(width, 8, 11, 9) == width * (50 - 8) * 11


@pytest.mark.parametrize("window", [0, 1, 3])
def test_window_network_parameters_do_not_depend_on_length(window: int) -> None:
    model = WindowTagger(vocab_size=50, num_tags=5, window=window, word_dim=6, casing_dim=2, hidden=7)
    assert trainable(model, FEATURES) == window_parameters(window, 8, 7, 5)


@pytest.mark.parametrize(
    "cell,layers,bidirectional", [("rnn", 1, False), ("gru", 2, False), ("lstm", 1, True), ("lstm", 3, True)]
)
def test_recurrent_parameters_equal_the_closed_form(cell: str, layers: int, bidirectional: bool) -> None:
    labels = ["O", "B-PER", "I-PER"]
    network = recurrent_tagger(40, labels, cell, hidden=5, num_layers=layers, bidirectional=bidirectional,
                               word_dim=6, casing_dim=2)  # fmt: skip
    assert trainable(network, ("embedding", "casing")) == recurrent_parameters(
        cell, 8, 5, len(labels), layers, bidirectional
    )


def test_one_hot_product_equals_the_embedding_lookup_and_its_gradient() -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, 300, (4, 7))
    weight = torch.nn.Parameter(torch.randn(300, 16))
    upstream = torch.randn(4, 7, 16)
    product = costs.one_hot_layer(ids, weight)
    product.backward(upstream)
    grad_product, weight.grad = weight.grad.clone(), None
    lookup = costs.embedding_layer(ids, weight)
    lookup.backward(upstream)
    torch.testing.assert_close(product, lookup, rtol=0, atol=0)  # picking a row is exact
    torch.testing.assert_close(grad_product, weight.grad, rtol=1e-6, atol=1e-6)
    assert costs.flops("one-hot", 28, 300, 16)["forward"] == 2 * 28 * 300 * 16


def test_the_plain_network_truncates_what_is_longer_than_its_width() -> None:
    """Tokens beyond the width are tagged O (id 0) and counted: here the late entity is lost."""
    torch.manual_seed(0)
    model = PaddedWidthTagger(vocab_size=10, num_tags=3, width=4, word_dim=4, casing_dim=2, hidden=8)
    with torch.no_grad():
        model.out.bias.copy_(torch.tensor([0.0, 9.0, 0.0] * 4))  # tags B-PER (1) wherever it can
    data = Encoded(words=[[2, 3], [2, 3, 4, 5, 6, 7]], casing=[[3, 3], [3] * 6], tags=[[1, 1], [0] * 5 + [1]])
    predicted = predict(model, data, width=4)
    assert predicted[0] == [1, 1] and predicted[1] == [1, 1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="at most 4 tokens"):
        model(torch.ones(1, 5, dtype=torch.long), None, torch.ones(1, 5, dtype=torch.long), torch.tensor([5]))
    rows = {r["bucket"]: r for r in score_by_length(predicted, data, ["O", "B-PER", "I-PER"], width=4)}
    assert rows["all"]["longer_than_width"] == 1 and rows["all"]["tokens_beyond_width"] == 2
    assert rows["all"]["entities_beyond_width"] == 1


def test_position_split_keeps_names_early_in_training_and_late_in_the_test() -> None:
    sentences = [
        (["Yoda", "ran", "far", "away"], ["B-PER", "O", "O", "O"]),
        (["he", "ran", "to", "Paris"], ["O", "O", "O", "B-LOC"]),
        (["nothing", "here"], ["O", "O"]),
        (["Ann", "met", "Bob", "."], ["B-PER", "O", "B-PER", "O"]),
    ]
    early, late = split_by_position(sentences, k=2)
    assert [s[0][0] for s in early] == ["Yoda", "nothing"] and [s[0][0] for s in late] == ["he"]


def test_lab_all_quick_writes_every_output(tmp_path, monkeypatch) -> None:
    make_tiny_ner(tmp_path / "data" / "conll2003")
    monkeypatch.setenv("SEQTASKS_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "lab"
    tiny = ["--width", "6", "--transfer-k", "3", "--ff-hidden", "8", "--rnn-hidden", "4", "--word-dim", "4"]
    tiny += ["--vocabs", "50,200", "--depths", "1,2", "--depth-hidden", "4", "--train-rows", "64"]
    main(["lab", "all", "--quick", "--out", str(out), *tiny])
    names = {"length", "cost", "parameters", "transfer", "depth"}
    for name in names:
        with (out / f"{name}.csv").open() as handle:
            assert list(csv.DictReader(handle)), name
    for name in ("length", "cost", "sharing", "depth"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["wall_seconds"] > 0 and set(summary["part_seconds"]) == {
        "length",
        "cost",
        "sharing",
        "depth",
    }
    depth = summary["results"]["depth"]
    assert [(r["cell"], r["layers"]) for r in depth] == [
        (c, n) for c in ("rnn", "gru", "lstm") for n in (1, 2)
    ]
    assert all(r["encoder_parameters"] == r["encoder_parameters_closed_form"] for r in depth)
    assert all(r["grad_first_layer_init"] > 0 for r in depth)
    length = summary["results"]["length"]
    # tiny sentences have 4-7 tokens: the plain network (width 6) truncates the 7-token ones, the others not
    plain_all = next(r for r in length if r["model"] == "plain" and r["bucket"] == "all")
    assert plain_all["longer_than_width"] > 0
    assert all(r["longer_than_width"] == 0 for r in length if r["model"] != "plain")
    transfer = summary["results"]["transfer"]
    # per model: trained on early names, tested early and late; and the length part's model tested late
    assert [r["trained_on"] for r in transfer[:3]] == [
        "entities only before k=3",
        "entities only before k=3",
        "entities anywhere (reference)",
    ]
    assert len(transfer) == 9 and transfer[2]["test_set"] == transfer[1]["test_set"]
    assert "### Depth" in (out / "summary.md").read_text()


def test_lab_refuses_missing_data_and_bad_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEQTASKS_DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit):  # no conll2003 folder: an own error, exit status 1
        main(["lab", "length", "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="--transfer-k"):
        PlainLabSettings(width=5, transfer_k=5)
    with pytest.raises(SystemExit):
        main(["lab", "depth", "--depths", "0"])


def test_the_command_defaults_are_the_settings_defaults() -> None:
    from seqtasks.commands import lab

    parser = argparse.ArgumentParser()
    lab.add_arguments(parser)
    options = vars(parser.parse_args(["all"]))
    defaults = PlainLabSettings()
    for name, value in vars(defaults).items():
        if name == "parts":
            continue
        given = options[name]
        if name in ("vocabs", "depths"):
            given = [int(x) for x in given.split(",")]
        elif name == "depth_cells":
            given = given.split(",")
        assert given == value, name


def test_lab_gradients_is_the_gradient_lab(tmp_path) -> None:
    out = tmp_path / "g"
    tiny = ["--hidden", "4", "--embedding-dim", "4", "--train-size", "32", "--validation-size", "8"]
    tiny += ["--test-size", "16", "--batch-size", "16", "--probe-rows", "4", "--task", "adding"]
    main(["lab", "gradients", "--encoders", "rnn", "--distances", "5", "--out", str(out), *tiny])
    assert (out / "results.csv").exists() and (out / "summary.png").exists()
