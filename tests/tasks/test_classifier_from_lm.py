"""LM → classifier fine-tuning (ULMFiT): a word-level language model's checkpoint initialises the
classifier (``init_from`` across tasks, words mapped by their text), discriminative learning rates per
layer, gradual unfreezing, the slanted triangular schedule, and concat pooling."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import yaml
from conftest import FILLER, NEGATIVE, POSITIVE
from fixtures.classification import SnapshotAtTrainStart, build, tiny_config
from fixtures.contextual import write_lm_checkpoint, write_tiny_lm_checkpoint

from seqtasks.checkpoints import CheckpointError
from seqtasks.encoders.base import EncoderOutput
from seqtasks.nn.poolers import ConcatPooler, LastStatePooler, MaxPooler, MeanPooler
from seqtasks.optim import SlantedTriangular


def word_lm_spec(num_layers: int = 2) -> dict[str, Any]:
    """A word LM with the tiny classifier's sizes: embedding 16, unidirectional LSTM 16 × ``num_layers``."""
    encoder = {
        "class_path": "seqtasks.encoders.LSTMEncoder",
        "init_args": {"hidden_size": 16, "num_layers": num_layers, "bidirectional": False},
    }
    return {
        "class_path": "seqtasks.networks.LanguageModelNetwork",
        "init_args": {"encoder": encoder, "embedding_dim": 16, "tie_weights": True},
    }


# the LM knows some of the reviews' words (in another order than the classifier's vocabulary) and some
# words the reviews never use; a few review words it does not know
LM_WORDS = ["zebra", *reversed(FILLER[: len(FILLER) // 2]), POSITIVE[0], NEGATIVE[0], "quasar"]


def lm_classifier_args(tmp_path: Path, dataset: Path, **model: Any) -> list[str]:
    return tiny_config(
        tmp_path / "classifier",
        dataset,
        cell="LSTMEncoder",
        bidirectional=False,
        num_layers=2,
        max_epochs=model.pop("max_epochs", 1),
        model=model,
    )


def test_a_word_lm_initialises_the_embedding_by_word_and_the_encoder(
    tiny_reviews: Path, tmp_path: Path
) -> None:
    lm_path = write_lm_checkpoint(tmp_path / "lm.ckpt", LM_WORDS, "word", word_lm_spec(), lowercase=True)
    lm = torch.load(lm_path, weights_only=True)
    cli = build(lm_classifier_args(tmp_path, tiny_reviews, init_from=str(lm_path)))
    snapshot = SnapshotAtTrainStart()
    cli.trainer.callbacks.append(snapshot)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    start = snapshot.state

    encoder_keys = [k for k in lm["state_dict"] if k.startswith("network.encoder.")]
    assert len(encoder_keys) == 8  # two layers × (w_ih, w_hh, b_ih, b_hh)
    for key in encoder_keys:
        assert torch.equal(start[key], lm["state_dict"][key]), key

    lm_words = lm["seqtasks"]["artefacts"]["codec"]["vocabulary"]
    lm_index = {w: i for i, w in enumerate(lm_words)}
    words = cli.datamodule.prepared["vocabulary"]
    shared = [w for w in words if w in lm_index and w not in ("<pad>", "<unk>")]
    assert len(shared) >= len(FILLER) // 2 + 2
    assert any(lm_index[w] != words.index(w) for w in shared), "same indices: the by-word map goes untested"
    lm_embedding = lm["state_dict"]["network.embedding.weight"]
    for i, word in enumerate(words):
        if word in lm_index:
            assert torch.equal(start["network.embedding.weight"][i], lm_embedding[lm_index[word]]), word
        else:  # a word the LM never saw keeps its fresh row: no LM row was copied there
            assert not any(torch.equal(start["network.embedding.weight"][i], row) for row in lm_embedding)
    assert start["network.head.weight"].shape[0] == 2  # the classifier's own head, not the LM's output layer
    assert cli.trainer.global_step > 0


@pytest.mark.parametrize(("level", "reverse"), [("char", False), ("word", True)])
def test_a_char_or_backward_lm_is_refused_by_name(
    tiny_reviews: Path, tmp_path: Path, level: str, reverse: bool
) -> None:
    if level == "char":
        lm_path = write_tiny_lm_checkpoint(tmp_path / "lm.ckpt")
    else:
        lm_path = write_lm_checkpoint(tmp_path / "lm.ckpt", LM_WORDS, "word", word_lm_spec(), reverse=True)
    cli = build(lm_classifier_args(tmp_path, tiny_reviews, init_from=str(lm_path)))
    with pytest.raises(CheckpointError, match=rf"{level}-level.*cannot initialise a word classifier"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def test_an_lm_of_other_sizes_is_refused_when_nothing_fits(tiny_reviews: Path, tmp_path: Path) -> None:
    spec = word_lm_spec()
    spec["init_args"]["embedding_dim"] = 24
    spec["init_args"]["encoder"]["init_args"]["hidden_size"] = 24
    lm_path = write_lm_checkpoint(tmp_path / "lm.ckpt", LM_WORDS, "word", spec, lowercase=True)
    cli = build(lm_classifier_args(tmp_path, tiny_reviews, init_from=str(lm_path)))
    with pytest.raises(CheckpointError, match=r"none of its .* tensors fits this SequenceClassifier"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def test_discriminative_rates_one_group_per_layer_top_first(tiny_reviews: Path, tmp_path: Path) -> None:
    cli = build(lm_classifier_args(tmp_path, tiny_reviews, layer_lr_decay=2.0))
    optimizer = cli.model.configure_optimizers()
    groups = cli.model.network.layer_groups()
    assert len(groups) == 4  # embedding, encoder layer 0, encoder layer 1, pooler + head
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.005, 0.0025, 0.00125])
    top_first = groups[::-1]
    for group, params in zip(optimizer.param_groups, top_first, strict=True):
        assert [id(p) for p in group["params"]] == [id(p) for p in params]
    every = [id(p) for g in groups for p in g]
    assert sorted(every) == sorted(id(p) for p in cli.model.network.parameters())  # each once, none left out
    names = {id(p): n for n, p in cli.model.network.named_parameters()}
    assert all(names[id(p)].endswith("_l1") for p in top_first[1])
    assert all(names[id(p)].endswith("_l0") for p in top_first[2])
    # one rate: the single group every other task gets
    plain = build(lm_classifier_args(tmp_path / "plain", tiny_reviews)).model.configure_optimizers()
    assert len(plain.param_groups) == 1 and plain.param_groups[0]["lr"] == 0.01


class RecordTrainable(pl.Callback):
    """Per epoch: which layer groups train (top first), and the weights at its start and end."""

    def __init__(self) -> None:
        self.trainable: list[list[bool]] = []
        self.starts: list[dict[str, torch.Tensor]] = []
        self.ends: list[dict[str, torch.Tensor]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, idx: int) -> None:
        if idx == 0:
            groups = pl_module.network.layer_groups()[::-1]
            self.trainable.append([all(p.requires_grad for p in g) for g in groups])
            self.starts.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.ends.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def test_gradual_unfreezing_trains_one_more_group_from_the_top_each_epoch(
    tiny_reviews: Path, tmp_path: Path
) -> None:
    cli = build(lm_classifier_args(tmp_path, tiny_reviews, gradual_unfreezing=True, max_epochs=5))
    record = RecordTrainable()
    cli.trainer.callbacks.append(record)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert record.trainable == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, True],
        [True, True, True, True],
    ]
    first_start, first_end = record.starts[0], record.ends[0]
    assert torch.equal(first_start["network.embedding.weight"], first_end["network.embedding.weight"])
    assert torch.equal(
        first_start["network.encoder.rnn.weight_hh_l1"], first_end["network.encoder.rnn.weight_hh_l1"]
    )
    assert not torch.equal(first_start["network.head.weight"], first_end["network.head.weight"])
    second_start, second_end = record.starts[1], record.ends[1]
    assert not torch.equal(
        second_start["network.encoder.rnn.weight_hh_l1"], second_end["network.encoder.rnn.weight_hh_l1"]
    )
    assert torch.equal(
        second_start["network.encoder.rnn.weight_hh_l0"], second_end["network.encoder.rnn.weight_hh_l0"]
    )
    assert not torch.equal(
        record.starts[3]["network.embedding.weight"], record.ends[3]["network.embedding.weight"]
    )
    assert all(p.requires_grad for p in cli.model.parameters())  # handed back fully trainable


def test_slanted_triangular_climbs_to_the_rate_then_falls_back() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = SlantedTriangular(optimizer, total_steps=100, cut_fraction=0.1, ratio=32.0)
    factors = [schedule.multiplier(t) for t in range(101)]
    assert factors[0] == pytest.approx(1 / 32) and optimizer.param_groups[0]["lr"] == pytest.approx(1 / 32)
    assert factors[10] == pytest.approx(1.0) and max(factors) == factors[10]
    assert factors[100] == pytest.approx(1 / 32)
    assert all(a < b for a, b in itertools.pairwise(factors[:11]))  # climbs over the first 10 %
    assert all(a > b for a, b in itertools.pairwise(factors[10:]))  # then falls over the rest
    assert factors[55] == pytest.approx((1 + 0.5 * 31) / 32)
    unset = SlantedTriangular(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    with pytest.raises(ValueError, match="total_steps is unset"):
        unset.multiplier(1)
    with pytest.raises(ValueError, match="cut_fraction"):
        SlantedTriangular(optimizer, cut_fraction=1.0)


class StepRates(pl.Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, idx: int) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_slanted_triangular_steps_every_batch_over_the_trainers_length(
    tiny_reviews: Path, tmp_path: Path
) -> None:
    schedule = {
        "class_path": "seqtasks.optim.SlantedTriangular",
        "init_args": {"cut_fraction": 0.25, "ratio": 8},
    }
    cli = build(lm_classifier_args(tmp_path, tiny_reviews, lr_scheduler=schedule, max_epochs=2))
    rates = StepRates()
    cli.trainer.callbacks.append(rates)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    total = cli.trainer.global_step
    assert len(rates.rates) == total and total >= 8
    scheduler = cli.trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.total_steps == total  # the trainer's estimate, filled in by the task
    expected = [0.01 * scheduler.multiplier(t) for t in range(total)]
    assert rates.rates == pytest.approx(expected)
    assert rates.rates[0] == pytest.approx(0.01 / 8) and max(rates.rates) == pytest.approx(0.01)


def test_concat_pooler_is_last_max_and_mean_side_by_side() -> None:
    torch.manual_seed(0)
    outputs = torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 2, 3])
    mask = torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)
    outputs = outputs * mask.unsqueeze(-1)
    final = torch.stack([outputs[i, n - 1] for i, n in enumerate(lengths.tolist())]).unsqueeze(0)
    encoded = EncoderOutput(outputs=outputs, final_hidden=final, state=(final,))
    pooler = ConcatPooler(4)
    assert pooler.output_size == 12
    pooled = pooler(encoded, mask)
    parts = [p(4)(encoded, mask) for p in (LastStatePooler, MaxPooler, MeanPooler)]
    assert torch.equal(pooled, torch.cat(parts, dim=-1))
    assert torch.equal(pooled[1, 8:], outputs[1, :2].mean(dim=0))


@pytest.mark.parametrize("name", ["sentiment-imdb-lm", "sentiment-stars-lm"])
def test_the_recipe_fine_tunes_from_the_lm_recipes_checkpoint(
    name: str, tiny_reviews: Path, tiny_stars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sentiment-imdb-lm`` and ``sentiment-stars-lm`` start from a checkpoint of ``lm-imdb-word``'s network
    (its sizes read from that recipe, weights random here) at the path they name: the recipes agree, every
    encoder tensor and the shared words load, and the ULMFiT settings run a whole fit (all its epochs on
    tiny data)."""
    from seqtasks.training import run_lightning

    root = Path(__file__).resolve().parents[2]
    lm_recipe = yaml.safe_load((root / "recipes" / "lm-imdb-word.yaml").read_text())
    recipe = yaml.safe_load((root / "recipes" / f"{name}.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    lm_path = write_lm_checkpoint(
        Path(recipe["model"]["init_args"]["init_from"]),
        LM_WORDS,
        "word",
        lm_recipe["model"]["init_args"]["network"],
        lowercase=lm_recipe["data"]["init_args"]["lowercase"],
    )
    lm = torch.load(lm_path, weights_only=True)["state_dict"]
    dataset = tiny_stars if "stars" in name else tiny_reviews
    args = ["--config", str(root / "recipes" / f"{name}.yaml"), "--data.init_args.dataset", str(dataset)]
    cli = run_lightning([*args, "--data.init_args.min_freq", "1"], run=False)
    snapshot = SnapshotAtTrainStart()
    cli.trainer.callbacks.append(snapshot)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    encoder_keys = [k for k in lm if k.startswith("network.encoder.")]
    assert len(encoder_keys) == 8
    assert all(torch.equal(snapshot.state[k], lm[k]) for k in encoder_keys)
    words = cli.datamodule.prepared["vocabulary"]
    row = snapshot.state["network.embedding.weight"][words.index("film")]
    lm_row = lm["network.embedding.weight"][["<pad>", "<unk>", "<eos>", *LM_WORDS].index("film")]
    assert torch.equal(row, lm_row)
    assert cli.trainer.current_epoch == cli.trainer.max_epochs >= 5  # every group unfrozen, then more
    assert cli.trainer.lr_scheduler_configs[0].scheduler.total_steps == cli.trainer.global_step
