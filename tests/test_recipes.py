"""Every recipe in ``recipes/`` parses and instantiates through the CLI (litgpt's test_config_hub pattern).

Each recipe is built with ``run_lightning(["--config", recipe, ...], run=False)`` and only its dataset
swapped for a tiny fixture: a typo in a class path or an argument, a setting the data contradicts, a size
that does not link, fails here rather than minutes into a real run. With ``SEQTASKS_DATA_DIR`` set, the
``realdata`` variant builds each recipe on the data it names.
"""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import requires_real_data, write_split

from seqtasks.data.sources import has_split, resolve
from seqtasks.training import DATA_LINKS, recipe_chain, run_lightning

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "recipes" / "base.yaml"
RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.yaml") if p != BASE)
TEXT_DATA = "seqtasks.data.TextClassificationDataModule"
PIANO_ROLL_DATA = "seqtasks.data.music.PianoRollDataModule"
BACH_DATA = "seqtasks.data.music.BachChoralesDataModule"
MIDI_FOLDER_DATA = "seqtasks.data.midi_folder.MidiFolderDataModule"
TAGGING_DATA = "seqtasks.data.TokenTaggingDataModule"
TRANSLATION_DATA = "seqtasks.data.translation.TranslationDataModule"
LANGUAGE_MODEL_DATA = "seqtasks.data.LanguageModelDataModule"


def isolate_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the CLI from tmp, without pytest's own argv, and leave PL_GLOBAL_SEED as it was."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


def merge(base: Any, override: Any) -> Any:
    """``override`` on top of ``base`` as LightningCLI merges config files (``key+:`` appends to a list)."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    if "class_path" in override and override["class_path"] != base.get("class_path"):
        return override  # another class: jsonargparse drops the base's init_args too
    merged = dict(base)
    for key, value in override.items():
        if key.endswith("+"):
            merged[key[:-1]] = [*merged.get(key[:-1], []), *value]
        else:
            merged[key] = merge(merged.get(key), value)
    return merged


def recipe_config(recipe: Path) -> dict[str, Any]:
    """The recipe with every recipe it builds on (``base:``) merged in, as the CLI reads it."""
    config: dict[str, Any] = {}
    for path in recipe_chain(recipe):
        config = merge(config, yaml.safe_load(Path(path).read_text()))
    config.pop("base", None)
    return config


def assert_given(given: Any, built: Any, where: str) -> None:
    """Every setting the recipe gives is what the model was built with (nested class_path/init_args too)."""
    if isinstance(given, dict) and isinstance(built, dict):
        for key, value in given.items():
            assert key in built, f"{where}.{key}: not in the model's hyperparameters"
            assert_given(value, built[key], f"{where}.{key}")
    else:
        assert given == built, f"{where}: recipe {given!r}, model {built!r}"


def tiny_piano_rolls(root: Path) -> Path:
    """Piano-roll pieces in the layout of SEQTASKS_DATA_DIR/jsb_chorales (id, frames, num_frames)."""
    rng = random.Random(0)
    for split, count in (("train", 8), ("validation", 3), ("test", 3)):
        pieces = []
        for _ in range(count):
            voices = [48, 55, 64, 72]
            frames = []
            for _ in range(rng.randint(4, 10)):
                voices = [v + rng.choice([-2, -1, 0, 1, 2]) for v in voices]
                frames.append(sorted(set(voices)))
            pieces.append(frames)
        columns = {"id": list(range(count)), "frames": pieces, "num_frames": [len(p) for p in pieces]}
        write_split(root, split, columns)
    return root


def tiny_data_args(
    config: dict[str, Any], recipe: str, fixtures: dict[str, Path], tmp_path: Path
) -> list[str]:
    """Arguments that point the recipe's data at a tiny fixture with the columns the recipe reads."""
    data_class = config["data"]["class_path"]
    init = config["data"].get("init_args", {})
    if data_class == TEXT_DATA:
        column = init.get("label_column", "label")
        dataset = {"label": fixtures["tiny_reviews"], "stars": fixtures["tiny_stars"]}.get(column)
        if dataset is None or init.get("text_column", "text") != "text":
            pytest.fail(f"{recipe}: no tiny fixture with columns text/{column}; add one to this test")
        return ["--data.init_args.dataset", str(dataset), "--data.init_args.min_freq", "1"]
    if data_class == PIANO_ROLL_DATA:
        return ["--data.init_args.dataset", str(tiny_piano_rolls(tmp_path / "rolls"))]
    if data_class == BACH_DATA:  # music21's bundled corpus: a few pieces
        return ["--data.init_args.max_pieces", "4", "--data.init_args.validation_fraction", "0.25",
                "--data.init_args.test_fraction", "0.25"]  # fmt: skip
    if data_class == MIDI_FOLDER_DATA:  # a few generated MIDI files (and a broken one, reported)
        from fixtures.music import make_tiny_midi_folder

        return ["--data.init_args.folder", str(make_tiny_midi_folder(tmp_path / "midi"))]
    if data_class == TAGGING_DATA:  # tokens + IOB2 tags, the layout of SEQTASKS_DATA_DIR/conll2003
        from fixtures.ner import make_tiny_ner

        dataset = make_tiny_ner(tmp_path / "ner")
        write_contextual_lms(config)
        return ["--data.init_args.dataset", str(dataset), *vectors_args(config, tmp_path)]
    if data_class == TRANSLATION_DATA:  # en/hi columns, or the Hub's translation dicts (iitb)
        from fixtures.translation import make_tiny_parallel

        layout = "translation" if init.get("streaming") else "columns"
        root = make_tiny_parallel(tmp_path / "mt", layout=layout)
        return ["--data.init_args.dataset", str(root), "--data.init_args.subword_vocab_size", "60",
                "--data.init_args.min_frequency", "1"]  # fmt: skip
    if data_class == LANGUAGE_MODEL_DATA:  # each text source swapped for a tiny one with its column
        from fixtures.language_model import make_tiny_texts, make_tiny_tokens

        texts = []
        for index, spec in enumerate(init["texts"]):
            column = spec.split(":")[1]
            make = make_tiny_tokens if column == "tokens" else make_tiny_texts
            texts.append(f"{make(tmp_path / f'lm{index}')}:{column}")
        return ["--data.init_args.texts", f"[{', '.join(texts)}]", "--data.init_args.min_freq", "1"]
    pytest.fail(f"{recipe}: no tiny data for {data_class}; teach tests/test_recipes.py about it")


def vectors_args(config: dict[str, Any], tmp_path: Path) -> list[str]:
    """A recipe's ``word_vectors`` file is made by ``make vectors`` (minutes): here a few words stand in."""
    if not config["data"].get("init_args", {}).get("word_vectors"):
        return []
    from seqtasks.wordvectors import write_word_vectors

    path = tmp_path / "vectors.txt"
    dim = config["model"]["init_args"]["network"]["init_args"]["word_dim"]
    write_word_vectors(path, ["paris", "monday", "zanzibar"], torch.randn(3, dim))
    return ["--data.init_args.word_vectors", str(path)]


def write_contextual_lms(config: dict[str, Any]) -> None:
    """A recipe's contextual-embedding LMs are trained by ``make train-recipe`` (hours): tiny random ones
    stand in, at the relative paths the recipe names (the CLI runs in tmp)."""
    network = config["model"]["init_args"].get("network", {}).get("init_args", {})
    contextual = (network.get("contextual") or {}).get("init_args", {})
    if not contextual:
        return
    from fixtures.contextual import write_tiny_lm_checkpoint

    for key, reverse in (("forward_lm", False), ("backward_lm", True)):
        path = Path(contextual[key])
        assert not path.is_absolute(), f"{key}: a recipe names a path relative to the project, not {path}"
        write_tiny_lm_checkpoint(path, reverse=reverse)


def check_built(cli: Any, config: dict[str, Any], recipe: Path) -> None:
    """The objects are the recipe's classes, with the recipe's settings, and the data-linked sizes agree."""
    for key, built in (("model", cli.model), ("data", cli.datamodule)):
        module, _, name = config[key]["class_path"].rpartition(".")
        assert isinstance(built, getattr(importlib.import_module(module), name)), f"{recipe.name}: {key}"
    for name, value in config["model"].get("init_args", {}).items():
        assert_given(value, cli.model.hparams[name], f"{recipe.name}: model.{name}")
    for name in DATA_LINKS:
        if name in cli.model.hparams and hasattr(cli.datamodule, name):
            assert cli.model.hparams[name] == getattr(cli.datamodule, name), f"{recipe.name}: linked {name}"
    assert cli.trainer.max_epochs == config["trainer"]["max_epochs"]
    check_optimizer(cli.model, config, recipe)


def check_optimizer(model: Any, config: dict[str, Any], recipe: Path) -> None:
    """The optimizer the task builds has exactly the recipe's rate and weight decay.

    jsonargparse fills an unstated ``weight_decay`` of some optimizers with another class's default (0.01
    for SGD, on this stack), so every recipe states it; this catches a recipe that does not.
    """
    given = config["model"]["init_args"].get("optimizer")
    assert given, f"{recipe.name}: name the optimizer (and its weight_decay) in the recipe"
    configured = model.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    group = optimizer.param_groups[0]
    assert type(optimizer).__name__ == given["class_path"].rpartition(".")[2], recipe.name
    if "momentum" in given.get("init_args", {}):
        assert group["momentum"] == given["init_args"]["momentum"], f"{recipe.name}: momentum"
    assert "weight_decay" in given.get("init_args", {}), f"{recipe.name}: state the optimizer's weight_decay"
    assert group["weight_decay"] == given["init_args"]["weight_decay"], f"{recipe.name}: weight_decay"
    assert group.get("initial_lr", group["lr"]) == given["init_args"]["lr"], f"{recipe.name}: lr"


def test_every_recipe_builds_on_the_shared_base() -> None:
    """The trainer/logger/callback block lives once, in recipes/base.yaml, under every recipe."""
    for recipe in RECIPES:
        assert Path(recipe_chain(recipe)[0]) == BASE, f"{recipe.name} does not build on base.yaml"
        own_logger = (yaml.safe_load(recipe.read_text()).get("trainer") or {}).get("logger") or {}
        assert "class_path" not in own_logger, f"{recipe.name} repeats the logger class of base.yaml"


def test_every_recipe_is_covered() -> None:
    """The parametrised tests below see every YAML file in recipes/ (and there are some)."""
    assert len(RECIPES) >= 3
    assert {p.name for p in RECIPES} | {BASE.name} == {
        p.name for p in (ROOT / "recipes").iterdir() if p.suffix == ".yaml"
    }


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_says_how_to_run_itself(recipe: Path) -> None:
    """Its leading comment names the command that runs this very recipe (not a copied neighbour's)."""
    header = []
    for line in recipe.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert "Run:" in text, f"{recipe.name}: the first comment should say how to run it"
    assert f"recipes/{recipe.name}" in text or f"RECIPE={recipe.stem}" in text, recipe.name


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_instantiates_on_tiny_data(
    recipe: Path, tiny_reviews: Path, tiny_stars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI parses the recipe and builds trainer, model and data, the dataset swapped for a tiny one.

    The recipe's logger stays (W&B is disabled by conftest; relative save dirs land in tmp).
    """
    isolate_cli(tmp_path, monkeypatch)
    config = recipe_config(recipe)
    fixtures = {"tiny_reviews": tiny_reviews, "tiny_stars": tiny_stars}
    args = ["--config", str(recipe), "--trainer.default_root_dir", str(tmp_path / "run")]
    cli = run_lightning([*args, *tiny_data_args(config, recipe.name, fixtures, tmp_path)], run=False)
    check_built(cli, config, recipe)


@pytest.mark.realdata
@requires_real_data
@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_instantiates_on_its_real_data(
    recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SEQTASKS_DATA_DIR set, each recipe builds on the data it names: columns, labels, sizes agree."""
    config = recipe_config(recipe)
    dataset = config["data"].get("init_args", {}).get("dataset")
    if dataset is None or resolve(dataset).kind != "local":
        pytest.skip(f"{recipe.name} does not read its data from SEQTASKS_DATA_DIR")
    train_split = config["data"].get("init_args", {}).get("train_split", "train")
    if not has_split(resolve(dataset), train_split):  # en_hi/iitb holds only dev/test: trains from the Hub
        pytest.skip(f"{recipe.name}: SEQTASKS_DATA_DIR holds no {train_split!r} split of {dataset}")
    isolate_cli(tmp_path, monkeypatch)
    write_contextual_lms(config)
    args = ["--config", str(recipe), "--trainer.default_root_dir", str(tmp_path / "run")]
    cli = run_lightning([*args, *vectors_args(config, tmp_path)], run=False)
    check_built(cli, config, recipe)
    if "labels" in config["data"].get("init_args", {}):
        assert cli.datamodule.labels == config["data"]["init_args"]["labels"]
