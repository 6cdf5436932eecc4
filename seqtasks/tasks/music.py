"""One-to-many: training autoregressive recurrent models of polyphonic music.

* :class:`PianoRollComposer` trains a :class:`~seqtasks.networks.music.PianoRollNetwork` (the polyphonic
  benchmark's model, Boulanger-Lewandowski et al. 2012). Loss and test NLL are the Bernoulli NLL summed
  over keys, per time step; every frame of a piece is predicted, so every test time step counts once.
* :class:`EventComposer` trains an :class:`~seqtasks.networks.music.EventNetwork` over event tokens
  (:mod:`seqtasks.music.events`); it also reports perplexity.
* :class:`MusicSample` samples a piece at the end of fit through the inference API
  (:class:`seqtasks.inference.music.Composer`), writes its MIDI file and PNG, and logs its piano roll; each
  validation end also logs the piano roll of a short sample (``val/sample``).

Their checkpoints carry everything generation needs (the event vocabulary, the time grid) as plain data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from seqtasks.checkpoints import legacy_network, legacy_optimizer
from seqtasks.data.batching import real_rows
from seqtasks.inference.music import Composer
from seqtasks.inference.writers import MidiWriter
from seqtasks.music.metrics import FrameAccuracy, NLLPerStep
from seqtasks.music.pianoroll import NUM_KEYS
from seqtasks.music.plot import piano_roll_figure
from seqtasks.networks.music import EventNetwork, PianoRollNetwork
from seqtasks.nn.sampling import check_sampling
from seqtasks.plots import log_figure
from seqtasks.tasks.base import SeqTask


def _upgrade(checkpoint: dict[str, Any], cls: type, network: str, keys: list[str]) -> None:
    hparams = checkpoint["hyper_parameters"]
    legacy_optimizer(hparams)
    legacy_network(checkpoint, f"seqtasks.networks.music.{network}", keys)
    if "_class_path" in hparams:  # jsonargparse's record of the class: the renamed one now
        hparams["_class_path"] = f"{cls.__module__}.{cls.__qualname__}"


class GeneratesForPredict:
    """The music predict stage of both composers: the predict loader yields seeds, each becomes a piece.

    ``seqtasks predict --config RECIPE --ckpt_path CKPT --predictions FOLDER`` writes
    ``FOLDER/sample-<seed>.mid`` and its ``.png`` for each seed (the music datamodules' ``predict_samples``
    and ``predict_seed`` choose how many and from which seed; ``predict_steps`` their length).
    """

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[tuple[int, list]]:
        """``[(seed, notes), ...]``: one piece per seed of the batch, sampled by the inference API."""
        composer = Composer(self)
        steps = batch.get("steps")
        steps = None if steps is None or int(steps) <= 0 else int(steps)
        return [(int(seed), composer.generate(steps, seed=int(seed))) for seed in batch["seeds"].tolist()]

    def prediction_writer(self, path: str) -> MidiWriter:
        """Writes the pieces of :meth:`predict_step` into the folder ``path``."""
        return MidiWriter(path, Composer(self).steps_per_quarter)


def log_validation_sample(task: SeqTask, steps: int) -> None:
    """A short sample (seed 0) at each validation end, logged as the figure ``val/sample``: cheap, and it
    shows the model's music developing over the epochs. Its own generator leaves the global RNG alone."""
    trainer = task.trainer
    if trainer.sanity_checking or trainer.global_rank != 0 or not task.artefacts:
        return
    composer = Composer(task)
    notes = composer.generate(steps, seed=0)
    title = f"epoch {trainer.current_epoch}: {steps} steps, seed 0"
    log_figure(task, "val/sample", piano_roll_figure(notes, composer.steps_per_quarter, title))


class PianoRollComposer(GeneratesForPredict, SeqTask):
    """Train a piano-roll network: each 88-key frame predicted from the frames before it.

    Args:
        network: the network, built with the number of keys (88).
        optimizer: see :class:`~seqtasks.tasks.base.SeqTask`.
        lr_scheduler: see :class:`~seqtasks.tasks.base.SeqTask`; a ``ReduceLROnPlateau`` follows ``val/nll``.
        init_from: checkpoint to fine-tune from (weights only).
        init_from_strict: refuse an ``init_from`` checkpoint of another task or one nothing loads from
            (set false to allow it).
    """

    monitor = "val/nll"

    def __init__(
        self,
        network: Callable[[int], PianoRollNetwork],
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: str | None = None,
        init_from_strict: bool = True,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, init_from, init_from_strict)
        self.save_hyperparameters()
        self.network = self.build_network(network, NUM_KEYS)
        self.train_nll, self.val_nll, self.test_nll = NLLPerStep(), NLLPerStep(), NLLPerStep()
        self.val_acc, self.test_acc = FrameAccuracy(), FrameAccuracy()

    def forward(self, rolls: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(B, T, 88)``: position t predicts frame t from frames ``0 … t-1``."""
        return self.network(rolls, lengths)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        nll_sum, frames, _, _ = self.network.nll(batch["rolls"], batch["lengths"])
        loss = nll_sum / frames
        self.train_nll.update(nll_sum, frames)
        if self.logs_epoch_metrics():
            self.log("train/nll", self.train_nll, on_step=False, on_epoch=True, prog_bar=True)
        if self.logs_this_step(batch_idx):
            self.log("train/nll_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str, nll: NLLPerStep, acc: FrameAccuracy) -> None:
        rows = real_rows(batch)  # under DDP, rows repeated to keep the ranks in step do not count
        if rows is not None:
            nll_sum, frames, logits, mask = self.network.nll(rows["rolls"], rows["lengths"])
            nll.update(nll_sum, frames)
            acc.update(logits.sigmoid(), rows["rolls"], mask)
        size = batch["rolls"].size(0)
        self.log(f"{stage}/nll", nll, on_epoch=True, prog_bar=True, batch_size=size)
        self.log(f"{stage}/acc", acc, on_epoch=True, prog_bar=True, batch_size=size)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_nll, self.val_acc)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_nll, self.test_acc)

    def on_validation_epoch_end(self) -> None:
        log_validation_sample(self, steps=32)

    @classmethod
    def upgrade_legacy(cls, checkpoint: dict[str, Any]) -> None:
        """Format 1 (``PianoRollModel``): the layers and their settings move to the network."""
        _upgrade(checkpoint, cls, "PianoRollNetwork", ["encoder", "input_dim", "input_dropout", "dropout"])


class EventComposer(GeneratesForPredict, SeqTask):
    """Train an event language model: next-token NLL over note-on / note-off / time-shift tokens.

    Args:
        network: the network, built with ``vocab_size`` and ``pad_index``.
        vocab_size: number of event tokens (linked from the datamodule).
        pad_index: padding token id (linked from the datamodule).
        optimizer: see :class:`~seqtasks.tasks.base.SeqTask`.
        lr_scheduler: see :class:`~seqtasks.tasks.base.SeqTask`; a ``ReduceLROnPlateau`` follows ``val/nll``.
        init_from: checkpoint to fine-tune from (weights only).
        init_from_strict: refuse an ``init_from`` checkpoint of another task or one nothing loads from
            (set false to allow it).
    """

    monitor = "val/nll"

    def __init__(
        self,
        network: Callable[[int, int], EventNetwork],
        vocab_size: int,
        pad_index: int = 0,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: str | None = None,
        init_from_strict: bool = True,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, init_from, init_from_strict)
        self.save_hyperparameters()
        self.network = self.build_network(network, vocab_size, pad_index)
        self.train_nll, self.val_nll, self.test_nll = NLLPerStep(), NLLPerStep(), NLLPerStep()

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Next-token logits ``(B, T, vocab_size)``."""
        return self.network(inputs, lengths)

    def _nll(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return self.network.nll(batch["inputs"], batch["lengths"], batch["targets"])

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        nll_sum, tokens = self._nll(batch)
        loss = nll_sum / tokens
        self.train_nll.update(nll_sum, tokens)
        if self.logs_epoch_metrics():
            self.log("train/nll", self.train_nll, on_step=False, on_epoch=True, prog_bar=True)
        if self.logs_this_step(batch_idx):
            self.log("train/nll_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _evaluate(self, batch: dict[str, Tensor], nll: NLLPerStep) -> None:
        rows = real_rows(batch)  # under DDP, rows repeated to keep the ranks in step do not count
        if rows is not None:
            nll.update(*self._nll(rows))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_nll)
        self.log("val/nll", self.val_nll, on_epoch=True, prog_bar=True, batch_size=batch["inputs"].size(0))

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_nll)
        self.log("test/nll", self.test_nll, on_epoch=True, batch_size=batch["inputs"].size(0))

    def on_validation_epoch_end(self) -> None:
        if self.val_nll.update_count:
            self.log("val/ppl", math.exp(float(self.val_nll.compute())))
        log_validation_sample(self, steps=128)

    def on_test_epoch_end(self) -> None:
        if self.test_nll.update_count:
            self.log("test/ppl", math.exp(float(self.test_nll.compute())))

    @classmethod
    def upgrade_legacy(cls, checkpoint: dict[str, Any]) -> None:
        """Format 1 (``EventLanguageModel``): the layers and their settings move to the network."""
        _upgrade(
            checkpoint, cls, "EventNetwork", ["encoder", "embedding_dim", "embedding_dropout", "dropout"]
        )


class MusicSample(pl.Callback):
    """At the end of fit, sample a piece from the best checkpoint and write ``samples/sample.mid``, ``.png``
    and ``.wav``.

    The files go into the run directory (beside ``checkpoints/``) and their paths are printed; the piano
    roll is also logged as the figure ``sample/piano_roll`` (to W&B, or as a PNG beside the logs), and the
    audio as ``sample/audio`` (W&B) — the media of the run.

    Args:
        steps: new steps (event tokens or frames) at most; the model's default when None.
        temperature: sampling temperature.
        top_k: sample among the k most probable tokens (keys for a piano roll).
        top_p: nucleus sampling threshold (event models only).
        seed: sampling seed.
        min_steps: an event model may not end the piece before this many new tokens.
        name: file name without extension.
        audio: also write (and log) the WAV rendering (pretty_midi's sine synthesizer).
        sample_rate: its sample rate in Hz.
    """

    def __init__(
        self,
        steps: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 1,
        min_steps: int = 0,
        name: str = "sample",
        audio: bool = True,
        sample_rate: int = 16000,
    ) -> None:
        check_sampling(temperature, top_k, top_p)
        if sample_rate < 1000:
            raise ValueError(f"sample_rate must be at least 1000 Hz, got {sample_rate}")
        self.audio = audio
        self.sample_rate = sample_rate
        self.wav_path: str | None = None
        self.steps = steps
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed
        self.min_steps = min_steps
        self.name = name
        self.paths: tuple[str, str] | None = None

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.interrupted:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
        composer = Composer.from_checkpoint(best) if best and os.path.exists(best) else Composer(pl_module)
        if best:
            folder = os.path.join(os.path.dirname(os.path.dirname(best)), "samples")
        else:
            folder = os.path.join(trainer.log_dir or trainer.default_root_dir, "samples")
        settings = {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}
        notes = composer.generate(self.steps, **settings, seed=self.seed, min_steps=self.min_steps)
        title = composer.title(self.seed, self.temperature)
        self.paths = composer.save(os.path.join(folder, f"{self.name}.mid"), notes, title=title)
        print(f"sample/midi: {self.paths[0]} ({len(notes)} notes)\nsample/png: {self.paths[1]}", flush=True)
        log_figure(
            pl_module, "sample/piano_roll", piano_roll_figure(notes, composer.steps_per_quarter, title)
        )
        if self.audio:
            self.wav_path = os.path.join(folder, f"{self.name}.wav")
            composer.render_wav(notes, self.wav_path, sample_rate=self.sample_rate)
            print(f"sample/wav: {self.wav_path}", flush=True)
            log_audio(trainer, "sample/audio", self.wav_path, self.sample_rate, title)


def log_audio(trainer: pl.Trainer, key: str, path: str, sample_rate: int, caption: str) -> None:
    """Log a WAV file to every W&B logger of ``trainer`` (other loggers keep the file beside the run)."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            import wandb

            audio = wandb.Audio(path, sample_rate=sample_rate, caption=caption)
            logger.experiment.log({key: audio, "trainer/global_step": trainer.global_step})
