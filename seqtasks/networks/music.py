"""The music networks: autoregressive recurrent models of polyphonic music, and seeded generation with them.

* :class:`PianoRollNetwork` (Boulanger-Lewandowski et al. 2012): the key frame at step t → input
  projection → unidirectional encoder → one logit per key, independent Bernoulli predictions of frame
  t+1. Every frame of a piece is predicted (the first from an all-silent start frame).
* :class:`PianoRollNADENetwork` (the RNN-NADE of Boulanger-Lewandowski et al. 2012): the same recurrent
  path, but the encoder state produces the biases of a :class:`~seqtasks.nn.nade.ConditionalNADE` that
  models the keys of frame t+1 jointly (exact NLL by the chain rule over keys; ancestral sampling).
* :class:`EventNetwork`: embedding → unidirectional encoder → softmax over event tokens
  (:mod:`seqtasks.music.events`).

Both refuse a bidirectional encoder at construction and generate one step at a time through the
encoder's ``step()``, drawing from an explicit ``torch.Generator``: the same seed gives the same frames or
tokens. They know nothing of notes: the codecs (:class:`~seqtasks.music.pianoroll.PianoRollCodec`,
:class:`~seqtasks.music.events.EventCodec`) turn frames and tokens into notes and back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from seqtasks.encoders.base import RecurrentEncoder, State, require_unidirectional
from seqtasks.nn.nade import ConditionalNADE
from seqtasks.nn.sampling import check_sampling, sample_bernoulli, sample_categorical


def _check_width(encoder: RecurrentEncoder, width: int, what: str) -> None:
    if encoder.input_size != width:
        raise ValueError(f"encoder input_size {encoder.input_size} does not match {what} {width}")


class PianoRollNetwork(nn.Module):
    """Predict each key frame from the frames before it (independent Bernoulli outputs per key).

    Args:
        num_keys: keys per frame (88 for the piano).
        encoder: a unidirectional recurrent encoder, built with the input projection's width.
        input_dim: width of the projection of each frame; None feeds the frame to the encoder as is.
        input_dropout: dropout on the (projected) input frames.
        dropout: dropout on the encoder's outputs before the output layer.
    """

    def __init__(
        self,
        num_keys: int,
        encoder: Callable[[int], RecurrentEncoder],
        input_dim: int | None = None,
        input_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_keys = num_keys
        width = num_keys if input_dim is None else input_dim
        self.input_projection = nn.Identity() if input_dim is None else nn.Linear(num_keys, input_dim)
        self.input_dropout = nn.Dropout(input_dropout)
        self.encoder = encoder(width)
        require_unidirectional(self.encoder, type(self).__name__)
        _check_width(self.encoder, width, "input width")
        self.dropout = nn.Dropout(dropout)
        self.head = self.build_head(self.encoder.output_size, num_keys)

    def build_head(self, width: int, num_keys: int) -> nn.Module:
        """The output layer on the encoder's outputs: one logit per key."""
        return nn.Linear(width, num_keys)

    def inputs(self, frames: Tensor) -> Tensor:
        return self.input_dropout(self.input_projection(frames))

    def conditions(self, rolls: Tensor, lengths: Tensor) -> Tensor:
        """The (dropped-out) encoder outputs ``(B, T, H)``: position t has read frames ``0 … t-1``."""
        shifted = torch.cat([rolls.new_zeros(rolls.size(0), 1, self.num_keys), rolls[:, :-1]], dim=1)
        return self.dropout(self.encoder(self.inputs(shifted), lengths=lengths).outputs)

    def forward(self, rolls: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(B, T, K)``: position t predicts frame t from frames ``0 … t-1``."""
        return self.head(self.conditions(rolls, lengths))

    def sample_frame(
        self, out: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
    ) -> Tensor:
        """One frame ``(1, K)`` drawn given the encoder output ``out`` ``(1, H)``."""
        return sample_bernoulli(self.head(out).cpu(), temperature, top_k, generator).to(out.device)

    def nll(self, rolls: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(NLL summed over keys and real frames, real frame count, logits, frame mask)``."""
        logits = self(rolls, lengths)
        mask = torch.arange(rolls.size(1), device=rolls.device).unsqueeze(0) < lengths.unsqueeze(1)
        per_key = nn.functional.binary_cross_entropy_with_logits(logits, rolls, reduction="none")
        return (per_key.sum(-1) * mask).sum(), mask.sum(), logits, mask

    @torch.no_grad()
    def generate(
        self,
        primer: Tensor,
        steps: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Read the ``(P, K)`` primer roll, then sample ``steps`` frames ``(steps, K)`` one at a time.

        ``top_k`` caps how many keys may sound in a frame. Call it in eval mode
        (:func:`seqtasks.nn.modes.eval_mode`).
        """
        check_sampling(temperature, top_k, None)
        device = self._device()
        state: State | None = None
        frame = torch.zeros(1, self.num_keys, device=device)
        for known in primer.to(device):
            _, state = self.encoder.step(self.inputs(frame), state)
            frame = known.unsqueeze(0)
        sampled = []
        for _ in range(steps):
            out, state = self.encoder.step(self.inputs(frame), state)
            frame = self.sample_frame(out, temperature, top_k, generator)
            sampled.append(frame[0].cpu())
        return torch.stack(sampled) if sampled else torch.zeros(0, self.num_keys)

    def _device(self) -> torch.device:
        return next(self.parameters()).device


class PianoRollNADENetwork(PianoRollNetwork):
    """RNN-NADE (Boulanger-Lewandowski et al. 2012): the keys of each frame modelled jointly.

    The encoder's output at step t (having read frames ``0 … t-1``) gives the visible and hidden biases of
    a NADE over the 88 keys of frame t; the NADE's weights are shared over time. ``forward`` returns the
    teacher-forced conditional logits ``logit p(v_i = 1 | v_<i, past)``, so the inherited :meth:`nll` (binary
    cross-entropy summed over keys) is the exact NLL of each frame, and sampling draws key by key.

    Args:
        num_keys: keys per frame (88 for the piano).
        encoder: a unidirectional recurrent encoder, built with the input projection's width.
        nade_hidden: the NADE's hidden units.
        input_dim: width of the projection of each frame; None feeds the frame to the encoder as is.
        input_dropout: dropout on the (projected) input frames.
        dropout: dropout on the encoder's outputs before they produce the NADE's biases.
    """

    def __init__(
        self,
        num_keys: int,
        encoder: Callable[[int], RecurrentEncoder],
        nade_hidden: int = 150,
        input_dim: int | None = None,
        input_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        self.nade_hidden = nade_hidden
        super().__init__(num_keys, encoder, input_dim, input_dropout, dropout)

    def build_head(self, width: int, num_keys: int) -> nn.Module:
        return ConditionalNADE(num_keys, self.nade_hidden, width)

    def forward(self, rolls: Tensor, lengths: Tensor) -> Tensor:
        """Conditional logits ``(B, T, K)`` of frame t's keys, each given the keys below it and the past."""
        return self.head(self.conditions(rolls, lengths), rolls)

    def sample_frame(
        self, out: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
    ) -> Tensor:
        return self.head.sample(out, temperature, top_k, generator)


class EventNetwork(nn.Module):
    """An autoregressive language model over music event tokens.

    Args:
        vocab_size: number of event tokens.
        pad_index: the padding token's id (no embedding gradient, ignored by the loss).
        encoder: a unidirectional recurrent encoder, built with the embedding width.
        embedding_dim: token embedding width.
        embedding_dropout: dropout on the token embeddings.
        dropout: dropout on the encoder's outputs before the output layer.
    """

    def __init__(
        self,
        vocab_size: int,
        pad_index: int,
        encoder: Callable[[int], RecurrentEncoder],
        embedding_dim: int = 128,
        embedding_dropout: float = 0.1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.pad_index = pad_index
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(embedding_dim)
        require_unidirectional(self.encoder, type(self).__name__)
        _check_width(self.encoder, embedding_dim, "embedding_dim")
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_size, vocab_size)

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Next-token logits ``(B, T, vocab_size)``."""
        encoded = self.encoder(self.embedding_dropout(self.embedding(inputs)), lengths=lengths)
        return self.head(self.dropout(encoded.outputs))

    def nll(self, inputs: Tensor, lengths: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """``(NLL summed over the real target tokens, their count)``."""
        logits = self(inputs, lengths)
        nll_sum = nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)),
            targets.reshape(-1),
            ignore_index=self.pad_index,
            reduction="sum",
        )
        return nll_sum, (targets != self.pad_index).sum()

    @torch.no_grad()
    def generate(
        self,
        prompt: Sequence[int],
        steps: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        end: int | None = None,
        min_steps: int = 0,
        never: Sequence[int] = (),
    ) -> list[int]:
        """The prompt's tokens followed by up to ``steps`` sampled ones, stopping after ``end``.

        The prompt (at least one token) is read first; ``end`` cannot be drawn in the first ``min_steps``
        new tokens, the ``never`` tokens (padding, ``<bos>``) not at all. Call it in eval mode.
        """
        check_sampling(temperature, top_k, top_p)
        tokens = list(prompt)
        device = self.head.weight.device
        state: State | None = None
        for token in tokens[:-1]:
            _, state = self.encoder.step(self.embedding(torch.tensor([token], device=device)), state)
        last = tokens[-1]
        for step in range(steps):
            out, state = self.encoder.step(self.embedding(torch.tensor([last], device=device)), state)
            logits = self.head(out)
            logits[:, list(never)] = float("-inf")
            if end is not None and step < min_steps:
                logits[:, end] = float("-inf")
            last = int(sample_categorical(logits.cpu(), temperature, top_k, top_p, generator)[0])
            tokens.append(last)
            if last == end:
                break
        return tokens
