"""One-to-many: autoregressive recurrent models of polyphonic music, and generation with them.

* :class:`PianoRollModel`: the polyphonic benchmark's model (Boulanger-Lewandowski et al. 2012). The
  88-key frame at step t → input projection → unidirectional encoder → 88 logits, independent Bernoulli
  predictions of frame t+1. Loss and test NLL are the Bernoulli NLL summed over keys, per time step;
  every frame of a piece is predicted (the first from an all-silent start frame), so every test time
  step counts once.
* :class:`EventLanguageModel`: embedding → unidirectional encoder → softmax over event tokens
  (:mod:`seqtasks.music.events`).

Both refuse a bidirectional encoder at construction and generate through the encoder's ``step()`` with a
seeded ``torch.Generator``: the same seed gives the same notes (and MIDI bytes). Their checkpoints carry
everything generation needs (the event vocabulary, the time grid) as plain data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn

from seqtasks.encoders.base import RecurrentEncoder, State, require_unidirectional
from seqtasks.music.events import STEPS_PER_QUARTER, EventCodec
from seqtasks.music.metrics import FrameAccuracy, NLLPerStep
from seqtasks.music.pianoroll import (
    NUM_KEYS,
    Note,
    frames_to_notes,
    frames_to_roll,
    notes_to_frames,
    roll_to_frames,
)
from seqtasks.nn.sampling import check_sampling, sample_bernoulli, sample_categorical
from seqtasks.tasks.base import SeqTask


class MusicModel(SeqTask):
    """What the two music models share: the time grid and the ``generate`` contract."""

    default_steps = 64

    @property
    def steps_per_quarter(self) -> int:
        return int(self.artefacts.get("steps_per_quarter", 1))

    def generate(
        self,
        steps: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        primer: Sequence[Note] | None = None,
        min_steps: int = 0,
    ) -> list[Note]:
        """A piece (primer included) as notes on the model's grid; ``steps`` new steps at most.

        ``min_steps``: a model that can end the piece (``<eos>``) may not do so before this many new steps.
        """
        raise NotImplementedError

    def _enter_eval(self) -> bool:
        was_training = self.training
        self.eval()
        return was_training


class PianoRollModel(MusicModel):
    """Predict each 88-key frame from the frames before it (independent Bernoulli outputs per key).

    Args:
        encoder: a unidirectional recurrent encoder, built with the input projection's width.
        input_dim: width of the projection of each 88-key frame; None feeds the frame to the encoder as is.
        input_dropout: dropout on the (projected) input frames.
        dropout: dropout on the encoder's outputs before the output layer.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        lr_patience: halve the learning rate after this many validation epochs without a better
            ``val/nll`` (ReduceLROnPlateau); None keeps it constant.
        init_from: checkpoint to fine-tune from (weights only).
    """

    default_steps = 64

    def __init__(
        self,
        encoder: Callable[[int], RecurrentEncoder],
        input_dim: int | None = None,
        input_dropout: float = 0.0,
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_patience: int | None = None,
        init_from: str | None = None,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, init_from=init_from)
        self.save_hyperparameters()
        width = NUM_KEYS if input_dim is None else input_dim
        self.input_projection = nn.Identity() if input_dim is None else nn.Linear(NUM_KEYS, input_dim)
        self.input_dropout = nn.Dropout(input_dropout)
        self.encoder = encoder(width)
        require_unidirectional(self.encoder, type(self).__name__)
        if self.encoder.input_size != width:
            raise ValueError(
                f"encoder input_size {self.encoder.input_size} does not match input width {width}"
            )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_size, NUM_KEYS)
        self.lr_patience = lr_patience
        self.val_nll, self.test_nll = NLLPerStep(), NLLPerStep()
        self.val_acc, self.test_acc = FrameAccuracy(), FrameAccuracy()

    def _inputs(self, frames: Tensor) -> Tensor:
        return self.input_dropout(self.input_projection(frames))

    def forward(self, rolls: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(B, T, 88)``: position t predicts frame t from frames ``0 … t-1``."""
        shifted = torch.cat([rolls.new_zeros(rolls.size(0), 1, NUM_KEYS), rolls[:, :-1]], dim=1)
        encoded = self.encoder(self._inputs(shifted), lengths=lengths)
        return self.head(self.dropout(encoded.outputs))

    def _nll(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        rolls, lengths = batch["rolls"], batch["lengths"]
        logits = self(rolls, lengths)
        mask = torch.arange(rolls.size(1), device=rolls.device).unsqueeze(0) < lengths.unsqueeze(1)
        per_key = nn.functional.binary_cross_entropy_with_logits(logits, rolls, reduction="none")
        nll_sum = (per_key.sum(-1) * mask).sum()
        return nll_sum, mask.sum(), logits, mask

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        nll_sum, frames, _, _ = self._nll(batch)
        loss = nll_sum / frames
        self.log("train/nll", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=int(frames))
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str, nll: NLLPerStep, acc: FrameAccuracy) -> None:
        nll_sum, frames, logits, mask = self._nll(batch)
        nll.update(nll_sum, frames)
        acc.update(torch.sigmoid(logits), batch["rolls"], mask)
        size = batch["rolls"].size(0)
        self.log(f"{stage}/nll", nll, on_epoch=True, prog_bar=True, batch_size=size)
        self.log(f"{stage}/acc", acc, on_epoch=True, prog_bar=True, batch_size=size)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_nll, self.val_acc)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_nll, self.test_acc)

    def configure_optimizers(self) -> Any:
        optimizer = super().configure_optimizers()
        if self.lr_patience is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=self.lr_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/nll"}}

    def collect_artefacts(self, datamodule: Any) -> dict[str, Any]:
        return {
            "steps_per_quarter": int(getattr(datamodule, "steps_per_quarter", 1)),
            "dataset": str(getattr(datamodule, "dataset", "")),
        }

    @torch.no_grad()
    def generate(
        self,
        steps: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        primer: Sequence[Note] | None = None,
        min_steps: int = 0,
    ) -> list[Note]:
        """Sample frames one at a time (a Bernoulli per key); ``top_k`` caps how many keys may sound.

        Nucleus sampling has no meaning for independent keys: ``top_p`` is refused. A piano roll has no
        end token: it always samples ``steps`` frames, so ``min_steps`` changes nothing.
        """
        if top_p is not None:
            raise ValueError("top_p does not apply to a piano-roll model (independent keys); use top_k")
        check_sampling(temperature, top_k, None)
        steps = self.default_steps if steps is None else steps
        was_training = self._enter_eval()
        generator = torch.Generator().manual_seed(seed)
        device = self.device
        frames = notes_to_frames(primer or [])
        state: State | None = None
        frame = torch.zeros(1, NUM_KEYS, device=device)
        for known in frames_to_roll(frames).to(device):  # read the primer
            out, state = self.encoder.step(self._inputs(frame), state)
            frame = known.unsqueeze(0)
        sampled = []
        for _ in range(steps):
            out, state = self.encoder.step(self._inputs(frame), state)
            logits = self.head(out)
            frame = sample_bernoulli(logits.cpu(), temperature, top_k, generator).to(device)
            sampled.append(frame[0].cpu())
        self.train(was_training)
        roll = torch.stack(sampled) if sampled else torch.zeros(0, NUM_KEYS)
        return frames_to_notes([*frames, *roll_to_frames(roll)])


class EventLanguageModel(MusicModel):
    """An autoregressive language model over music event tokens.

    Args:
        vocab_size: number of event tokens (linked from the datamodule).
        encoder: a unidirectional recurrent encoder, built with the embedding width.
        embedding_dim: token embedding width.
        embedding_dropout: dropout on the token embeddings.
        dropout: dropout on the encoder's outputs before the output layer.
        pad_index: padding token id (linked from the datamodule).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        init_from: checkpoint to fine-tune from (weights only).
    """

    default_steps = 1024

    def __init__(
        self,
        vocab_size: int,
        encoder: Callable[[int], RecurrentEncoder],
        embedding_dim: int = 128,
        embedding_dropout: float = 0.1,
        dropout: float = 0.2,
        pad_index: int = 0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        init_from: str | None = None,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, init_from=init_from)
        self.save_hyperparameters()
        self.pad_index = pad_index
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(embedding_dim)
        require_unidirectional(self.encoder, type(self).__name__)
        if self.encoder.input_size != embedding_dim:
            raise ValueError(
                f"encoder input_size {self.encoder.input_size} does not match embedding_dim {embedding_dim}"
            )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_size, vocab_size)
        self.val_nll, self.test_nll = NLLPerStep(), NLLPerStep()

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Next-token logits ``(B, T, vocab_size)``."""
        encoded = self.encoder(self.embedding_dropout(self.embedding(inputs)), lengths=lengths)
        return self.head(self.dropout(encoded.outputs))

    def _nll(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits = self(batch["inputs"], batch["lengths"])
        targets = batch["targets"]
        nll_sum = nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)),
            targets.reshape(-1),
            ignore_index=self.pad_index,
            reduction="sum",
        )
        return nll_sum, (targets != self.pad_index).sum()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        nll_sum, tokens = self._nll(batch)
        loss = nll_sum / tokens
        self.log("train/nll", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=int(tokens))
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        nll_sum, tokens = self._nll(batch)
        self.val_nll.update(nll_sum, tokens)
        self.log("val/nll", self.val_nll, on_epoch=True, prog_bar=True, batch_size=batch["inputs"].size(0))

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        nll_sum, tokens = self._nll(batch)
        self.test_nll.update(nll_sum, tokens)
        self.log("test/nll", self.test_nll, on_epoch=True, batch_size=batch["inputs"].size(0))

    def on_validation_epoch_end(self) -> None:
        if self.val_nll.update_count:
            self.log("val/ppl", math.exp(float(self.val_nll.compute())))

    def on_test_epoch_end(self) -> None:
        if self.test_nll.update_count:
            self.log("test/ppl", math.exp(float(self.test_nll.compute())))

    def collect_artefacts(self, datamodule: Any) -> dict[str, Any]:
        return {
            "vocabulary": list(datamodule.vocabulary),
            "steps_per_quarter": int(getattr(datamodule, "steps_per_quarter", STEPS_PER_QUARTER)),
        }

    @property
    def codec(self) -> EventCodec:
        if "vocabulary" not in self.artefacts:
            raise ValueError("this model has no event vocabulary (not trained through a music datamodule?)")
        return EventCodec(self.artefacts["vocabulary"])

    @torch.no_grad()
    def generate(
        self,
        steps: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        primer: Sequence[Note] | None = None,
        min_steps: int = 0,
    ) -> list[Note]:
        """Sample tokens until ``<eos>`` or ``steps`` new tokens; the primer's events are read first.

        ``<eos>`` is held back for the first ``min_steps`` new tokens: a small model tends to end a chorale
        at the first fermata, which looks locally like the last one.
        """
        check_sampling(temperature, top_k, top_p)
        steps = self.default_steps if steps is None else steps
        codec = self.codec
        was_training = self._enter_eval()
        generator = torch.Generator().manual_seed(seed)
        # a primer's events end where its last note ends: the model continues from there
        tokens = codec.encode(primer, eos=False) if primer else [codec.bos_id]
        state: State | None = None
        device = self.device
        for token in tokens[:-1]:
            _, state = self.encoder.step(self.embedding(torch.tensor([token], device=device)), state)
        last = tokens[-1]
        for step in range(steps):
            out, state = self.encoder.step(self.embedding(torch.tensor([last], device=device)), state)
            logits = self.head(out)
            logits[:, [codec.pad_id, codec.bos_id]] = float("-inf")
            if step < min_steps:
                logits[:, codec.eos_id] = float("-inf")
            last = int(sample_categorical(logits.cpu(), temperature, top_k, top_p, generator)[0])
            tokens.append(last)
            if last == codec.eos_id:
                break
        self.train(was_training)
        return codec.decode(tokens)


def sample_title(seed: int, temperature: float) -> str:
    """Title of a sample's MIDI file and PNG: settings only, so equal settings give equal bytes."""
    return f"seqtasks sample (seed {seed}, temperature {temperature})"


class MusicSample(pl.Callback):
    """At the end of fit, sample a piece from the best checkpoint and write ``samples/sample.mid`` + ``.png``.

    The files go into the run directory (beside ``checkpoints/``), and their paths are printed.

    Args:
        steps: new steps (event tokens or frames) at most; the model's default when None.
        temperature: sampling temperature.
        top_k: sample among the k most probable tokens (keys for a piano roll).
        top_p: nucleus sampling threshold (event models only).
        seed: sampling seed.
        min_steps: an event model may not end the piece before this many new tokens.
        name: file name without extension.
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
    ) -> None:
        check_sampling(temperature, top_k, top_p)
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
        from seqtasks.music.midi import save_piece
        from seqtasks.tasks.base import load_task

        if trainer.interrupted:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
        model = load_task(best) if best and os.path.exists(best) else pl_module
        if best:
            folder = os.path.join(os.path.dirname(os.path.dirname(best)), "samples")
        else:
            folder = os.path.join(trainer.log_dir or trainer.default_root_dir, "samples")
        notes = model.generate(
            self.steps, self.temperature, self.top_k, self.top_p, self.seed, min_steps=self.min_steps
        )
        title = sample_title(self.seed, self.temperature)
        self.paths = save_piece(
            os.path.join(folder, f"{self.name}.mid"), notes, model.steps_per_quarter, title=title
        )
        print(f"sample/midi: {self.paths[0]} ({len(notes)} notes)\nsample/png: {self.paths[1]}", flush=True)
