"""Tanh RNN, GRU and LSTM encoders on torch.nn's fused kernels (oneDNN on CPU, cuDNN on CUDA).

Variable length is handled inside, by one of two exact paths:

* ``pack``: ``pack_padded_sequence`` through the multi-layer module. Exact outputs and final states.
* ``padded``: each layer and direction runs the fused kernel on the padded batch; the backward direction
  reads each row reversed *within its own length*, so padding never reaches a real position. Outputs and
  final hidden states are exact; an LSTM's cell state at each row's end is not visible on this path.

On this project's 2-core CPU the padded path ran a BiLSTM train step (input 128, hidden 128, batch 64,
ragged lengths) about 10x faster than packing (benchmarks/RESULTS.md, ``benchmarks/encoder_paths.py``),
so ``auto`` takes it on CPU and packing elsewhere.

``weight_drop`` (DropConnect on the hidden-to-hidden weights, the AWD-LSTM of Merity et al. 2017) draws one
mask per weight matrix per forward call in training, so it is shared over every time step of the batch;
both paths and ``step()`` apply it, evaluation never does.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqtasks.encoders.base import EncoderOutput, RecurrentEncoder, State

Cell = Literal["rnn", "gru", "lstm"]
VariableLength = Literal["auto", "pack", "padded"]

_MODULES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first ``lengths[i]`` positions of ``(B, T, ...)``; padding stays where it is."""
    batch, time = x.shape[:2]
    positions = torch.arange(time, device=x.device).unsqueeze(0).expand(batch, time)
    reversed_positions = lengths.unsqueeze(1) - 1 - positions
    index = torch.where(reversed_positions >= 0, reversed_positions, positions)
    index = index.view(batch, time, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def _to_torch_state(state: Tensor, num_directions: int) -> Tensor:
    """``(L, B, D*H)`` → torch's ``(L*D, B, H)``."""
    layers, batch, width = state.shape
    hidden = width // num_directions
    return (
        state.view(layers, batch, num_directions, hidden)
        .transpose(1, 2)
        .reshape(layers * num_directions, batch, hidden)
    )


def _from_torch_state(state: Tensor, num_directions: int) -> Tensor:
    """torch's ``(L*D, B, H)`` → ``(L, B, D*H)``."""
    _, batch, hidden = state.shape
    return (
        state.view(-1, num_directions, batch, hidden)
        .transpose(1, 2)
        .reshape(-1, batch, num_directions * hidden)
    )


class FusedRecurrentEncoder(RecurrentEncoder):
    """A deep, optionally bidirectional recurrent encoder over ``torch.nn.{RNN,GRU,LSTM}``.

    Args:
        input_size: width of each input vector (the task passes its embedding width).
        hidden_size: width of each direction's hidden state.
        cell: ``rnn`` (Elman, tanh), ``gru`` or ``lstm``.
        num_layers: stacked layers.
        bidirectional: read left to right and right to left, outputs concatenated.
        dropout: dropout between stacked layers (not after the last one).
        variable_length: ``pack``, ``padded`` or ``auto`` (padded on CPU, pack on accelerators);
            both are exact, see the module docstring.
        weight_drop: DropConnect probability on each layer's hidden-to-hidden weights in training (one mask
            per forward call, shared over time); 0 turns it off.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        cell: Cell = "lstm",
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        variable_length: VariableLength = "auto",
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in _MODULES:
            raise ValueError(f"cell must be one of {sorted(_MODULES)}, got {cell!r}")
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                f"input_size, hidden_size and num_layers must be positive, got "
                f"input_size={input_size}, hidden_size={hidden_size}, num_layers={num_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 0.0 <= weight_drop < 1.0:
            raise ValueError(f"weight_drop must be in [0, 1), got {weight_drop}")
        if variable_length not in ("auto", "pack", "padded"):
            raise ValueError(f"variable_length must be auto, pack or padded, got {variable_length!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.cell = cell
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.variable_length = variable_length
        self.weight_drop = weight_drop
        kwargs = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnn = _MODULES[cell](
            input_size,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
            **kwargs,
        )

    @property
    def is_lstm(self) -> bool:
        return self.cell == "lstm"

    def extra_repr(self) -> str:
        drop = f", weight_drop={self.weight_drop}" if self.weight_drop else ""
        return f"variable_length={self.variable_length}{drop}"

    @property
    def drops_weights(self) -> bool:
        """DropConnect applies now: training, with ``weight_drop`` > 0."""
        return self.training and self.weight_drop > 0

    def _dropped(self, weight: Tensor) -> Tensor:
        return nn.functional.dropout(weight, self.weight_drop, training=True)

    def _run_module(self, inputs: Tensor | nn.utils.rnn.PackedSequence, hx: Tensor | State):
        """``self.rnn(inputs, hx)``, with freshly dropped hidden-to-hidden weights in training."""
        if not self.drops_weights:
            return self.rnn(inputs, hx)
        dropped = {
            name: self._dropped(getattr(self.rnn, name))
            for name in self.rnn._flat_weights_names
            if name.startswith("weight_hh")
        }
        return torch.func.functional_call(self.rnn, dropped, (inputs, hx))

    def _path(self, device: torch.device) -> str:
        if self.variable_length != "auto":
            return self.variable_length
        return "padded" if device.type == "cpu" else "pack"

    def encode(
        self, inputs: Tensor, lengths: Tensor, initial_state: State | None, need_state: bool = False
    ) -> EncoderOutput:
        has_padding = bool((lengths < inputs.size(1)).any())
        path = self._path(inputs.device)
        if path == "padded" and not (need_state and self.is_lstm and has_padding):
            return self._encode_padded(inputs, lengths, initial_state, has_padding)
        return self._encode_packed(inputs, lengths, initial_state)

    def _check_state(self, state: State, batch: int) -> None:
        expected = (self.num_layers, batch, self.num_directions * self.hidden_size)
        if len(state) != (2 if self.is_lstm else 1) or any(tuple(s.shape) != expected for s in state):
            raise ValueError(
                f"initial_state must be {'(h, c)' if self.is_lstm else '(h,)'} with tensors of shape "
                f"{expected}, got {[tuple(s.shape) for s in state]}"
            )

    def _encode_packed(self, inputs: Tensor, lengths: Tensor, initial_state: State | None) -> EncoderOutput:
        batch, time, _ = inputs.shape
        if initial_state is None:
            initial_state = self.initial_state(batch, inputs.device, inputs.dtype)
        self._check_state(initial_state, batch)
        hx = tuple(_to_torch_state(s, self.num_directions).contiguous() for s in initial_state)
        hx_arg = hx if self.is_lstm else hx[0]
        empty = lengths == 0
        packed = pack_padded_sequence(
            inputs, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        packed_out, final = self._run_module(packed, hx_arg)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=time)
        final = final if self.is_lstm else (final,)
        state = tuple(_from_torch_state(s, self.num_directions) for s in final)
        mask = (torch.arange(time, device=inputs.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        outputs = outputs * mask
        if bool(empty.any()):
            keep = (~empty).view(1, batch, 1)
            state = tuple(torch.where(keep, s, s0) for s, s0 in zip(state, initial_state, strict=True))
        final_hidden = state[0] * (~empty).view(1, batch, 1)
        return EncoderOutput(outputs=outputs, final_hidden=final_hidden, state=state)

    def _layer_params(self, layer: int, direction: int) -> list[Tensor]:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.rnn.bias else [])
        params = [getattr(self.rnn, name + suffix) for name in names]
        if self.drops_weights:
            params[1] = self._dropped(params[1])
        return params

    def _run_direction(self, x: Tensor, params: list[Tensor], h0: Tensor, c0: Tensor | None):
        args = (params, self.rnn.bias, 1, 0.0, self.training, False, True)
        if self.cell == "lstm":
            out, h, c = torch.lstm(x, (h0, c0), *args)
            return out, (h, c)
        fn = torch.gru if self.cell == "gru" else torch.rnn_tanh
        out, h = fn(x, h0, *args)
        return out, (h,)

    def _encode_padded(
        self, inputs: Tensor, lengths: Tensor, initial_state: State | None, has_padding: bool
    ) -> EncoderOutput:
        batch, time, _ = inputs.shape
        if initial_state is not None:
            self._check_state(initial_state, batch)
        mask = (torch.arange(time, device=inputs.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        last = (lengths - 1).clamp(min=0)
        nonempty = (lengths > 0).view(batch, 1)
        layer_input = inputs
        finals_h, finals_c = [], []
        hidden = self.hidden_size
        for layer in range(self.num_layers):
            outs, hs, cs = [], [], []
            for direction in range(self.num_directions):
                span = slice(direction * hidden, (direction + 1) * hidden)
                if initial_state is None:
                    h0 = inputs.new_zeros(1, batch, hidden)
                    c0 = h0 if self.is_lstm else None
                else:
                    h0 = initial_state[0][layer : layer + 1, :, span].contiguous()
                    c0 = initial_state[1][layer : layer + 1, :, span].contiguous() if self.is_lstm else None
                x = layer_input if direction == 0 else reverse_within_length(layer_input, lengths)
                out, final = self._run_direction(x, self._layer_params(layer, direction), h0, c0)
                if direction == 1:
                    out = reverse_within_length(out, lengths)
                    h = out[:, 0]
                else:
                    h = out.gather(1, last.view(batch, 1, 1).expand(batch, 1, hidden)).squeeze(1)
                hs.append(torch.where(nonempty, h, h0[0]))
                if self.is_lstm:
                    cs.append(final[1][0])
                outs.append(out)
            layer_output = (torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]) * mask
            finals_h.append(torch.cat(hs, dim=-1))
            if self.is_lstm:
                finals_c.append(torch.cat(cs, dim=-1))
            if layer < self.num_layers - 1 and self.dropout > 0:
                layer_input = nn.functional.dropout(layer_output, self.dropout, self.training)
            else:
                layer_input = layer_output
        h_n = torch.stack(finals_h)
        final_hidden = h_n * nonempty.view(1, batch, 1)
        if not self.is_lstm:
            state: State | None = (h_n,)
        elif not has_padding:
            state = (h_n, torch.stack(finals_c))
        else:
            state = None
        return EncoderOutput(outputs=layer_input, final_hidden=final_hidden, state=state)

    def step(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if self.bidirectional:
            raise ValueError(f"{type(self).__name__}(bidirectional=True) cannot step one token at a time")
        batch = inputs.size(0)
        if state is None:
            state = self.initial_state(batch, inputs.device, inputs.dtype)
        self._check_state(state, batch)
        hx = state if self.is_lstm else state[0]
        out, new = self._run_module(inputs.unsqueeze(1), hx)
        return out.squeeze(1), (new if self.is_lstm else (new,))


class RNNEncoder(FusedRecurrentEncoder):
    """Elman tanh RNN encoder; see :class:`FusedRecurrentEncoder` for the arguments."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        variable_length: VariableLength = "auto",
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__(
            input_size, hidden_size, "rnn", num_layers, bidirectional, dropout, variable_length, weight_drop
        )


class GRUEncoder(FusedRecurrentEncoder):
    """GRU encoder; see :class:`FusedRecurrentEncoder` for the arguments."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        variable_length: VariableLength = "auto",
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__(
            input_size, hidden_size, "gru", num_layers, bidirectional, dropout, variable_length, weight_drop
        )


class LSTMEncoder(FusedRecurrentEncoder):
    """LSTM encoder; see :class:`FusedRecurrentEncoder` for the arguments."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        variable_length: VariableLength = "auto",
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__(
            input_size, hidden_size, "lstm", num_layers, bidirectional, dropout, variable_length, weight_drop
        )
