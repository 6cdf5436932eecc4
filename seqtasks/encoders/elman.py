"""A from-scratch Elman RNN, the reference that :class:`~seqtasks.encoders.rnn.RNNEncoder` is tested against.

Each direction of each layer computes, one time step at a time,

    a⟨t⟩ = tanh(W_ax·x⟨t⟩ + b_ax + W_aa·a⟨t−1⟩ + b_aa)

with the weights named and shaped as ``torch.nn.RNN``'s (``weight_ih_l0`` is W_ax, ``weight_hh_l0`` is
W_aa, ``..._reverse`` for the backward direction), so a state dict copies between the two either way.
It is written for reading, not speed: a Python loop per step is 10–100× slower than the fused kernel.

Variable length: a row's state is carried unchanged through its padding, so the state after the loop is
the state after its last real token; the backward direction reads each row reversed within its own
length, so it too meets the real tokens first and padding never reaches a real position.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqtasks.encoders.base import EncoderOutput, RecurrentEncoder, State
from seqtasks.encoders.rnn import reverse_within_length


class ElmanEncoder(RecurrentEncoder):
    """Deep, optionally bidirectional tanh RNN with an explicit loop over time.

    Args:
        input_size: width of each input vector (the task passes its embedding width).
        hidden_size: width of each direction's hidden state.
        num_layers: stacked layers; layer ``l > 0`` reads the concatenated directions of layer ``l - 1``.
        bidirectional: read left to right and right to left, outputs concatenated (forward first).
        dropout: dropout between stacked layers (not after the last one), as in ``torch.nn.RNN``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                f"input_size, hidden_size and num_layers must be positive, got "
                f"input_size={input_size}, hidden_size={hidden_size}, num_layers={num_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        # Registered in torch.nn.RNN's order (layer, direction, ih before hh, weights before biases).
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
                suffix = self._suffix(layer, direction)
                self.register_parameter(
                    f"weight_ih{suffix}", nn.Parameter(torch.empty(hidden_size, layer_input))
                )
                self.register_parameter(
                    f"weight_hh{suffix}", nn.Parameter(torch.empty(hidden_size, hidden_size))
                )
                self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(hidden_size)))
                self.register_parameter(f"bias_hh{suffix}", nn.Parameter(torch.empty(hidden_size)))
        self.reset_parameters()

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def reset_parameters(self) -> None:
        """Uniform in ±1/sqrt(hidden_size), as ``torch.nn.RNN`` initialises."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}"
        )

    def cell(self, x: Tensor, a: Tensor, layer: int, direction: int) -> Tensor:
        """One step of one direction of one layer: ``(B, in)``, ``(B, H)`` → a⟨t⟩ ``(B, H)``."""
        suffix = self._suffix(layer, direction)
        w_ax, w_aa = getattr(self, f"weight_ih{suffix}"), getattr(self, f"weight_hh{suffix}")
        b_ax, b_aa = getattr(self, f"bias_ih{suffix}"), getattr(self, f"bias_hh{suffix}")
        return torch.tanh(F.linear(x, w_ax, b_ax) + F.linear(a, w_aa, b_aa))

    def _check_state(self, state: State, batch: int) -> None:
        expected = (self.num_layers, batch, self.num_directions * self.hidden_size)
        if len(state) != 1 or tuple(state[0].shape) != expected:
            raise ValueError(
                f"initial_state must be (h,) with a tensor of shape {expected}, "
                f"got {[tuple(s.shape) for s in state]}"
            )

    def _run_direction(self, x: Tensor, real: Tensor, a0: Tensor, layer: int, direction: int):
        """Loop over time; rows stop updating after their last real position (``real`` is ``(B, T, 1)``)."""
        a = a0
        outputs = []
        for t in range(x.size(1)):
            a = torch.where(real[:, t], self.cell(x[:, t], a, layer, direction), a)
            outputs.append(a)
        out = torch.stack(outputs, dim=1) if outputs else x.new_zeros(x.size(0), 0, self.hidden_size)
        return out, a

    def encode(
        self, inputs: Tensor, lengths: Tensor, initial_state: State | None, need_state: bool = False
    ) -> EncoderOutput:
        batch, time, _ = inputs.shape
        if initial_state is None:
            initial_state = self.initial_state(batch, inputs.device, inputs.dtype)
        self._check_state(initial_state, batch)
        real = (torch.arange(time, device=inputs.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        hidden = self.hidden_size
        layer_input = inputs
        finals = []
        for layer in range(self.num_layers):
            outs, states = [], []
            for direction in range(self.num_directions):
                a0 = initial_state[0][layer, :, direction * hidden : (direction + 1) * hidden]
                x = layer_input if direction == 0 else reverse_within_length(layer_input, lengths)
                out, a = self._run_direction(x, real, a0, layer, direction)
                if direction == 1:
                    out = reverse_within_length(out, lengths)
                outs.append(out)
                states.append(a)
            layer_output = torch.cat(outs, dim=-1) * real
            finals.append(torch.cat(states, dim=-1))
            if layer < self.num_layers - 1 and self.dropout > 0:
                layer_input = F.dropout(layer_output, self.dropout, self.training)
            else:
                layer_input = layer_output
        h_n = torch.stack(finals)
        final_hidden = h_n * (lengths > 0).view(1, batch, 1)
        return EncoderOutput(outputs=layer_input, final_hidden=final_hidden, state=(h_n,))

    def step(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if self.bidirectional:
            raise ValueError(f"{type(self).__name__}(bidirectional=True) cannot step one token at a time")
        if inputs.dim() != 2 or inputs.size(-1) != self.input_size:
            raise ValueError(
                f"{type(self).__name__}.step expects inputs of shape (batch, {self.input_size}), "
                f"got {tuple(inputs.shape)}"
            )
        batch = inputs.size(0)
        if state is None:
            state = self.initial_state(batch, inputs.device, inputs.dtype)
        self._check_state(state, batch)
        x = inputs
        new = []
        for layer in range(self.num_layers):
            a = self.cell(x, state[0][layer], layer, 0)
            new.append(a)
            x = F.dropout(a, self.dropout, self.training) if layer < self.num_layers - 1 else a
        return x, (torch.stack(new),)
