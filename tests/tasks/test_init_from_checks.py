"""Fine-tuning and resuming never go wrong silently (issue 12, item 4).

``init_from`` a checkpoint of another task, or one of which no tensor fits, is refused with a
:class:`CheckpointError` unless ``init_from_strict`` is false; a resume whose recipe changes a model setting
warns, naming the setting and both values.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from seqtasks.checkpoints import CheckpointError, load_task
from seqtasks.tasks.base import changed_settings
from tests.fixtures.classification import build, tiny_config

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


def fine_tune(tiny_reviews: Path, tmp_path: Path, source: Path) -> object:
    args = tiny_config(tmp_path / "run", tiny_reviews)
    return build([*args, "--model.init_args.init_from", str(source)])


def test_init_from_a_checkpoint_of_another_task_is_refused(tiny_reviews: Path, tmp_path: Path) -> None:
    cli = fine_tune(tiny_reviews, tmp_path, LEGACY / "tagger.ckpt")
    with pytest.raises(
        CheckpointError,
        match=r"tagger\.ckpt: a TokenTagger checkpoint cannot initialise a "
        r"SequenceClassifier.*init_from_strict: false",
    ):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def nothing_fits(tmp_path: Path) -> Path:
    checkpoint = torch.load(LEGACY / "classifier.ckpt", map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = {f"old.{k}": v for k, v in checkpoint["state_dict"].items()}
    path = tmp_path / "nothing_fits.ckpt"
    torch.save(checkpoint, path)
    return path


def test_init_from_a_checkpoint_of_which_nothing_fits_is_refused(tiny_reviews: Path, tmp_path: Path) -> None:
    cli = fine_tune(tiny_reviews, tmp_path, nothing_fits(tmp_path))
    with pytest.raises(CheckpointError, match=r"none of its \d+ tensors fits this SequenceClassifier"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def test_init_from_strict_false_loads_whatever_fits(tiny_reviews: Path, tmp_path: Path) -> None:
    cli = build(tiny_config(tmp_path / "run", tiny_reviews))
    cli.datamodule.setup("fit")
    before = {k: v.clone() for k, v in cli.model.state_dict().items()}
    cli.model.init_from_strict = False
    cli.model.load_pretrained(str(nothing_fits(tmp_path)))  # nothing fits: a log line, no error
    cli.model.load_pretrained(str(LEGACY / "tagger.ckpt"))  # another task: whatever fits
    assert before.keys() == cli.model.state_dict().keys()
    with pytest.raises(CheckpointError):
        cli.model.load_pretrained(str(LEGACY / "tagger.ckpt"), strict=True)


def test_init_from_the_same_task_still_loads(tiny_reviews: Path, tmp_path: Path) -> None:
    cli = build(tiny_config(tmp_path / "run", tiny_reviews))
    cli.datamodule.setup("fit")
    cli.model.load_pretrained(str(LEGACY / "classifier.ckpt"))  # words mapped by their text: no error


def test_a_resume_with_a_changed_setting_warns_naming_it(tiny_reviews: Path, tmp_path: Path) -> None:
    first = build(tiny_config(tmp_path / "run", tiny_reviews, max_epochs=1, dropout=0.3))
    first.trainer.fit(first.model, datamodule=first.datamodule)
    last = first.trainer.checkpoint_callback.last_model_path

    rest = build(tiny_config(tmp_path / "run", tiny_reviews, max_epochs=2, dropout=0.9))
    with pytest.warns(UserWarning, match=r"network\.init_args\.dropout: 0\.3 in the checkpoint, 0\.9 now"):
        rest.trainer.fit(rest.model, datamodule=rest.datamodule, ckpt_path=last)
    assert rest.model.network.dropout.p == 0.9  # what the warning says: this run's setting applies


def test_a_resume_with_the_same_settings_does_not_warn(tiny_reviews: Path, tmp_path: Path) -> None:
    first = build(tiny_config(tmp_path / "run", tiny_reviews, max_epochs=1))
    first.trainer.fit(first.model, datamodule=first.datamodule)
    last = first.trainer.checkpoint_callback.last_model_path
    rest = build(tiny_config(tmp_path / "run", tiny_reviews, max_epochs=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rest.trainer.fit(rest.model, datamodule=rest.datamodule, ckpt_path=last)
    assert not [w for w in caught if "other model settings" in str(w.message)]


@pytest.mark.parametrize("name", sorted(p.name for p in LEGACY.glob("*.ckpt")))
def test_loading_a_checkpoint_alone_does_not_warn(name: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_task(LEGACY / name)
    assert not [w for w in caught if "other model settings" in str(w.message)]


def test_changed_settings_names_nested_added_and_removed_settings() -> None:
    saved = {"network": {"init_args": {"dropout": 0.3, "encoder": {"hidden_size": 16}}}, "init_from": "a"}
    current = {"network": {"init_args": {"dropout": 0.3, "encoder": {"hidden_size": 32}, "pool": "max"}}}
    assert changed_settings(saved, current) == [
        ("network.init_args.encoder.hidden_size", 16, 32),
        ("network.init_args.pool", "<unset>", "max"),
    ]


def test_a_task_argument_the_checkpoint_predates_is_no_change_at_its_default() -> None:
    assert changed_settings({"a": 1}, {"a": 1, "predict_beam": 1}, {"predict_beam": 1}) == []
    assert changed_settings({"a": 1}, {"a": 1, "predict_beam": 5}, {"predict_beam": 1}) == [
        ("predict_beam", "<unset>", 5)
    ]
