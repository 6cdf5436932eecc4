"""The contract every recurrent encoder of seqtasks keeps.

Consumers (poolers, heads, decoders) size themselves from ``output_size`` and never see a
PackedSequence: variable length is the encoder's own business.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]
"""A recurrent state: ``(h,)`` for tanh RNN and GRU, ``(h, c)`` for LSTM.

Each tensor is ``(num_layers, batch, num_directions * hidden_size)``: the directions of a layer are
concatenated on the last axis, forward first.
"""


@dataclass
class EncoderOutput:
    """What an encoder returns.

    Attributes:
        outputs: ``(B, T, output_size)``, the top layer at every position; zeros at padded positions.
        final_hidden: ``(num_layers, B, num_directions * hidden_size)``, each layer's hidden state after the
            last real token of each row (the forward direction) and after the first token (the backward
            direction). Rows of length 0 give zeros.
        state: the full recurrent state after the last real token, in the form of :data:`State`, for
            continuing the sequence or initialising a decoder. ``None`` only when an LSTM runs the padded
            path on a batch that has padding (the padded path cannot see the cell state at each row's end).
    """

    outputs: Tensor
    final_hidden: Tensor
    state: State | None


class RecurrentEncoder(nn.Module):
    """Base class: batch-first ``(B, T, input_size)`` plus a mask or lengths → :class:`EncoderOutput`.

    Subclasses implement :meth:`encode` and, when unidirectional, :meth:`step`.
    """

    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Width of ``outputs`` (directions already multiplied in)."""
        return self.hidden_size * self.num_directions

    @property
    def is_lstm(self) -> bool:
        return False

    def forward(
        self,
        inputs: Tensor,
        mask: Tensor | None = None,
        lengths: Tensor | None = None,
        initial_state: State | None = None,
        need_state: bool = False,
    ) -> EncoderOutput:
        """Encode a padded batch.

        Args:
            inputs: ``(B, T, input_size)``, batch first.
            mask: ``(B, T)`` boolean, True at real positions; real positions must come first in each row.
            lengths: ``(B,)`` number of real positions per row; used when ``mask`` is not given.
            initial_state: a :data:`State`; zeros when omitted.
            need_state: the caller will use ``EncoderOutput.state`` (a decoder's start, say): an encoder
                whose fast path cannot give it must take a path that does.
        """
        if inputs.dim() != 3 or inputs.size(-1) != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, time, {self.input_size}), "
                f"got {tuple(inputs.shape)}"
            )
        batch, time = inputs.shape[:2]
        if lengths is None:
            if mask is None:
                lengths = torch.full((batch,), time, dtype=torch.long, device=inputs.device)
            else:
                lengths = mask.long().sum(dim=1)
        lengths = lengths.to(device=inputs.device, dtype=torch.long)
        return self.encode(inputs, lengths, initial_state, need_state)

    def encode(
        self, inputs: Tensor, lengths: Tensor, initial_state: State | None, need_state: bool = False
    ) -> EncoderOutput:
        raise NotImplementedError

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zero state for ``batch_size`` rows, in the inputs' dtype (the kernels refuse a mixed one)."""
        width = self.num_directions * self.hidden_size
        zeros = torch.zeros(self.num_layers, batch_size, width, device=device, dtype=dtype)
        return (zeros, zeros.clone()) if self.is_lstm else (zeros,)

    def step(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Advance one time step: ``(B, input_size)`` → ``(B, output_size)`` and the new state.

        Only unidirectional encoders can step; bidirectional ones need the whole sequence.
        """
        raise NotImplementedError(f"{type(self).__name__} has no stepping path")


def require_unidirectional(encoder: RecurrentEncoder, user: str) -> None:
    """Refuse a bidirectional encoder where the model must run left to right (decoders, music, LMs)."""
    if encoder.bidirectional:
        raise ValueError(
            f"{user} generates left to right and needs a unidirectional encoder; "
            f"got {type(encoder).__name__}(bidirectional=True). Set bidirectional: false."
        )
