"""The run-safety callbacks: a NaN/inf loss stops the run (or is skipped, counted); a short run ends cleanly.

The NaN tests use a tiny plain LightningModule whose loss is made NaN on chosen batches; the recipe tests
run ``recipes/ner-conll2003.yaml`` itself (so ``recipes/base.yaml``'s callbacks) on a tiny tagging dataset.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seqtasks.callbacks import (
    AtomicCheckpointIO,
    FiniteLoss,
    FlushDenormal,
    NonFiniteLossError,
    flushes_denormals,
)
from seqtasks.checkpoints import load_task
from seqtasks.training import run_lightning

ROOT = Path(__file__).resolve().parents[1]
NER_RECIPE = ROOT / "recipes" / "ner-conll2003.yaml"


class Regression(pl.LightningModule):
    """Linear regression whose loss is NaN on the batches in ``nan_batches`` (or skipped by Lightning)."""

    def __init__(self, nan_batches: set[int], lightning_skips: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(4, 1)
        self.nan_batches = nan_batches
        self.lightning_skips = lightning_skips

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        if batch_idx in self.nan_batches and self.lightning_skips:
            return None  # Lightning's own way to skip a batch: the reference for FiniteLoss(policy="skip")
        loss = nn.functional.mse_loss(self.layer(batch[0]), batch[1])
        return loss * float("nan") if batch_idx in self.nan_batches else loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=0.05, weight_decay=0.01)

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(1)
        inputs = torch.randn(48, 4, generator=generator)
        return DataLoader(TensorDataset(inputs, inputs.sum(1, keepdim=True)), batch_size=8)


def fit(model: pl.LightningModule, tmp_path: Path, *callbacks: pl.Callback, epochs: int = 1) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
    )
    trainer.fit(model)
    return trainer


def test_a_nan_loss_stops_the_run_naming_epoch_step_and_batch_before_the_weights_change(
    tmp_path: Path,
) -> None:
    model = Regression(nan_batches={3})
    weights_at_nan: dict[str, torch.Tensor] = {}

    class Snapshot(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch, index) -> None:
            if index == 3:
                weights_at_nan.update({k: v.clone() for k, v in module.state_dict().items()})

    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 0, global step 3, batch 3\b"):
        fit(model, tmp_path, Snapshot(), FiniteLoss(policy="stop"))
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights_at_nan[name]), f"{name} changed by the NaN batch"


def test_skipped_nan_batches_update_nothing_and_are_counted(tmp_path: Path) -> None:
    """With ``skip`` the weights end exactly where a run that never saw those batches ends."""
    skipping = Regression(nan_batches={1, 4})
    with pytest.warns(UserWarning, match=r"skipped the update of batch 1: training loss nan at epoch 0"):
        trainer = fit(skipping, tmp_path, FiniteLoss(policy="skip"), epochs=2)
    reference = Regression(nan_batches={1, 4}, lightning_skips=True)
    fit(reference, tmp_path, epochs=2)
    for (name, value), expected in zip(
        skipping.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        assert torch.isfinite(value).all() and torch.allclose(value, expected, atol=1e-6), name
    assert float(trainer.callback_metrics["train/skipped_batches"]) == 2.0  # in the last epoch
    finite = next(c for c in trainer.callbacks if isinstance(c, FiniteLoss))
    assert finite.skipped_total == 4 and finite.state_dict() == {"skipped_total": 4}


def test_skipping_gives_up_when_every_batch_is_nan(tmp_path: Path) -> None:
    with (
        pytest.raises(
            NonFiniteLossError, match=r"for 3 batches in a row \(FiniteLoss max_consecutive_skips=2\)"
        ),
        pytest.warns(UserWarning, match="skipped the update"),
    ):
        fit(Regression(nan_batches=set(range(6))), tmp_path, FiniteLoss("skip", max_consecutive_skips=2))


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="policy must be 'stop' or 'skip', not 'ignore'"):
        FiniteLoss(policy="ignore")  # type: ignore[arg-type]


@pytest.fixture
def ner_recipe_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``fit`` of the NER recipe itself on a tiny dataset (3 batches an epoch), run from tmp."""
    from fixtures.ner import make_tiny_ner
    from test_recipes import isolate_cli, recipe_config, vectors_args

    isolate_cli(tmp_path, monkeypatch)
    data = make_tiny_ner(tmp_path / "ner")
    vectors = vectors_args(recipe_config(NER_RECIPE), tmp_path)
    return ["fit", "--config", str(NER_RECIPE), "--data.init_args.dataset", str(data), *vectors,
            "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false"]  # fmt: skip


def last_checkpoint(tmp_path: Path) -> dict:
    (path,) = tmp_path.glob("runs/ner-conll2003/**/last.ckpt")
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    return torch.load(path, weights_only=True)


def test_a_smoke_run_of_the_ner_recipe_that_stops_between_validations_ends_with_its_checkpoint(
    ner_recipe_args: list[str], tmp_path: Path
) -> None:
    """``--trainer.max_steps 2``: no validation ever ran; the run ends, tests, and leaves last.ckpt."""
    cli = run_lightning([*ner_recipe_args, "--trainer.max_steps", "2"])
    assert cli.trainer.global_step == 2 and "test/f1" in cli.trainer.callback_metrics
    assert last_checkpoint(tmp_path)["global_step"] == 2


def test_a_run_that_stops_after_a_validation_saves_its_final_state_as_last(
    ner_recipe_args: list[str], tmp_path: Path
) -> None:
    """Validation every 2 steps, max_steps 3: last.ckpt is step 3 (the end), not 2 (the last validation)."""
    cli = run_lightning([*ner_recipe_args, "--trainer.val_check_interval", "2", "--trainer.max_steps", "3"])
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert last_checkpoint(tmp_path)["global_step"] == 3


def test_the_ner_recipe_with_an_absurd_learning_rate_stops_with_a_message(
    ner_recipe_args: list[str], tmp_path: Path
) -> None:
    """lr 1e30: base.yaml's FiniteLoss stops the run at the first NaN loss; no best checkpoint is tested."""
    args = [*ner_recipe_args, "--model.init_args.optimizer.init_args.lr", "1e30", "--trainer.max_epochs", "3"]
    with pytest.raises(
        NonFiniteLossError, match=r"loss is (nan|inf|-inf) at epoch \d, global step \d+, batch \d"
    ):
        run_lightning(args)
    assert not list(tmp_path.glob("runs/ner-conll2003/**/best-*.ckpt"))


@pytest.mark.parametrize("name", ["classifier", "tagger", "translator"])
def test_a_nan_validation_batch_shows_in_the_epoch_mean_and_weights_still_count(name: str) -> None:
    """Validation and test loss means are weighted by the batch's size and do not drop a NaN batch."""
    task = load_task(Path(__file__).parent / "fixtures" / "legacy" / f"{name}.ckpt")
    for metric in (task.val_loss, task.test_loss):
        metric.update(torch.tensor(1.0), weight=3)
        metric.update(torch.tensor(2.0), weight=1)
        assert float(metric.compute()) == pytest.approx(1.25)
        metric.update(torch.tensor(float("nan")), weight=2)
        assert math.isnan(float(metric.compute()))


class _FlushProbe(pl.Callback):
    """Records whether denormals flush to zero during training."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(flushes_denormals())


def test_denormals_flush_to_zero_during_the_fit_only(tmp_path: Path) -> None:
    """Adam's decaying moments of unused embedding rows reach the denormal range, where CPU arithmetic is
    ~10x slower; FlushDenormal flushes them while the fit runs and gives the old setting back after."""
    torch.set_flush_denormal(False)
    assert not flushes_denormals()
    probe = _FlushProbe()
    fit(Regression(set()), tmp_path, FlushDenormal(), probe)
    assert probe.seen and all(probe.seen)
    assert not flushes_denormals()
    probe = _FlushProbe()
    fit(Regression(set()), tmp_path, FlushDenormal(enabled=False), probe)
    assert probe.seen and not any(probe.seen)


def test_every_recipe_flushes_denormals() -> None:
    """base.yaml names FlushDenormal, so a recipe built on it (all of them) trains with it."""
    import yaml

    callbacks = yaml.safe_load((ROOT / "recipes" / "base.yaml").read_text())["trainer"]["callbacks"]
    assert "seqtasks.callbacks.FlushDenormal" in [c["class_path"] for c in callbacks]
