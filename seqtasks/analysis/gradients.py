"""The gradient probe: how much of the loss's gradient reaches a step ``d`` positions back.

For a loss taken at the last position ``T - 1`` of a sequence, the probe measures, averaged over the rows
of a batch,

* ``‖∂L/∂h⟨T−1−d⟩‖`` — the gradient on the recurrent hidden state ``d`` steps back (all layers), and
* ``‖∂L/∂x⟨T−1−d⟩‖`` — the gradient on the input vector there (what training can learn from it),

for ``d = 0 … T−1`` (for an LSTM, ``h`` without the cell state ``c``). In a tanh RNN the first is a
product of ``d`` Jacobians ``diag(1−h²)·W_hh``, each usually smaller than one in norm, so it decays
geometrically; the fitted slope of ``log ‖∂L/∂h‖`` against ``d`` (:meth:`GradientProfile.decay_slope`) is
that decay per step, and ``exp(slope)`` the factor.

How: a unidirectional encoder is run one token at a time with its :meth:`step`, and every state it returns
keeps its gradient (``retain_grad``); the inputs are a leaf tensor. Each row's loss is summed, not
averaged, so every row's gradient is its own ``∂L_b/∂h_b``. A bidirectional encoder has no single chain
of states: the probe then runs it over the whole sequence and measures the input gradient only.

:class:`LinearRNNEncoder` (``h⟨t⟩ = ρQ·h⟨t−1⟩ + U·x⟨t⟩`` with ``Q``, ``U`` orthogonal) is the known answer:
its gradient norm shrinks by exactly ``ρ`` per step, for every row.

Plain torch; no Lightning. The probe works on a float64 copy of the network by default, so a gradient of
1e-40 is still a number rather than zero.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqtasks.encoders.base import EncoderOutput, RecurrentEncoder, State
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.nn.poolers import LastStatePooler

LossFn = Callable[[Tensor], Tensor]
"""Maps the top layer's final hidden state ``(B, H)`` to the per-row losses ``(B,)``."""


@dataclass
class GradientProfile:
    """Mean gradient norms per distance from the loss.

    Attributes:
        distance: ``(T,)``, ``0 … T−1``: steps before the loss position.
        hidden: ``(T,)`` mean ‖∂L/∂h‖ at each distance; None when the encoder cannot step.
        inputs: ``(T,)`` mean ‖∂L/∂x‖ at each distance.
        rows: how many rows were averaged.
    """

    distance: Tensor
    hidden: Tensor | None
    inputs: Tensor
    rows: int

    def norms(self, which: str) -> Tensor:
        if which == "hidden":
            if self.hidden is None:
                raise ValueError("this profile has no hidden-state gradients (the encoder cannot step)")
            return self.hidden
        if which == "inputs":
            return self.inputs
        raise ValueError(f"which must be 'hidden' or 'inputs', got {which!r}")

    def decay_slope(self, which: str = "hidden", start: int = 1, end: int | None = None) -> float:
        """Least-squares slope of ``log norm`` against distance over ``start ≤ d < end`` (natural log).

        Distance 0 is left out by default: there the gradient comes straight from the loss, not through
        a recurrent step. Zero or non-finite norms are skipped; NaN when fewer than two points remain.
        """
        return fit_log_slope(self.distance, self.norms(which), start, end)

    def decay_per_step(self, which: str = "hidden", start: int = 1, end: int | None = None) -> float:
        """``exp(decay_slope)``: the factor by which the norm changes per step back."""
        return math.exp(self.decay_slope(which, start, end))

    def records(self) -> list[dict[str, float]]:
        """One plain dict per distance, for CSV files and W&B tables."""
        hidden = self.hidden.tolist() if self.hidden is not None else [math.nan] * len(self.distance)
        return [
            {"step_distance": int(d), "hidden_norm": h, "input_norm": x}
            for d, h, x in zip(self.distance.tolist(), hidden, self.inputs.tolist(), strict=True)
        ]


def fit_log_slope(distance: Tensor, norms: Tensor, start: int = 1, end: int | None = None) -> float:
    """Slope of the least-squares line through ``(d, log norm)`` for ``start ≤ d < end``."""
    d = distance.double()
    y = norms.double()
    keep = (d >= start) & torch.isfinite(y) & (y > 0)
    if end is not None:
        keep &= d < end
    if int(keep.sum()) < 2:
        return math.nan
    d, y = d[keep], y[keep].log()
    d_centred = d - d.mean()
    return float((d_centred * (y - y.mean())).sum() / (d_centred**2).sum())


def _by_distance(per_position: Tensor) -> Tensor:
    """``(T,)`` indexed by position → indexed by distance from the last position."""
    return per_position.flip(0)


def probe_encoder(
    encoder: RecurrentEncoder,
    inputs: Tensor,
    loss_fn: LossFn,
    initial_state: State | None = None,
) -> GradientProfile:
    """Gradient norms of ``loss_fn(final hidden state)`` per distance, for rows of equal length.

    Args:
        encoder: any :class:`RecurrentEncoder`; a unidirectional one gives hidden and input gradients,
            a bidirectional one input gradients only.
        inputs: ``(B, T, input_size)``, every row ``T`` real positions (no padding).
        loss_fn: maps the top layer's state after the last token, ``(B, H)``, to per-row losses ``(B,)``.
        initial_state: the encoder's initial state; zeros when omitted.

    The encoder's parameters receive gradients as a side effect; probe a copy if that matters
    (:func:`probe_classifier` does).
    """
    if inputs.dim() != 3 or inputs.size(1) < 1:
        raise ValueError(f"inputs must be (batch, time >= 1, features), got {tuple(inputs.shape)}")
    batch, time, _ = inputs.shape
    x = inputs.detach().clone().requires_grad_(True)
    hiddens: list[Tensor] = []
    if encoder.bidirectional:
        encoded = encoder(x, initial_state=initial_state)
        final = encoded.final_hidden[-1]
    else:
        state = initial_state
        for t in range(time):
            _, state = encoder.step(x[:, t], state)
            state[0].retain_grad()
            hiddens.append(state[0])
        final = state[0][-1]
    losses = loss_fn(final)
    if losses.shape != (batch,):
        raise ValueError(f"loss_fn must return one loss per row, shape ({batch},); got {tuple(losses.shape)}")
    losses.sum().backward()
    input_norm = x.grad.norm(dim=-1).mean(dim=0)
    hidden_norm = None
    if hiddens:
        zeros = torch.zeros_like(hiddens[0])
        # (layers, B, width) per position → norm over layers and width, per row
        norms = [
            (h.grad if h.grad is not None else zeros).transpose(0, 1).reshape(batch, -1).norm(dim=1)
            for h in hiddens
        ]
        hidden_norm = _by_distance(torch.stack(norms).mean(dim=1).detach())
    return GradientProfile(
        distance=torch.arange(time),
        hidden=hidden_norm,
        inputs=_by_distance(input_norm.detach()),
        rows=batch,
    )


def probe_classifier(
    network: ClassifierNetwork, tokens: Tensor, labels: Tensor, dtype: torch.dtype = torch.float64
) -> GradientProfile:
    """Probe a :class:`~seqtasks.networks.classifier.ClassifierNetwork` on real rows with their labels.

    The loss is the cross-entropy of each row's prediction, taken after its last token; ``x`` is the word
    embedding. Works on an evaluation-mode copy of the network in ``dtype`` (the network itself is
    untouched), so the answer does not depend on dropout. Needs a :class:`LastStatePooler`: another pooler
    reads every position, and the gradient at a position would no longer be only what crossed the
    recurrence.

    Args:
        network: the classifier's network (``task.network``), trained or freshly initialised.
        tokens: ``(B, T)`` token ids, every row ``T`` real tokens.
        labels: ``(B,)`` class indices.
        dtype: the copy's dtype.
    """
    if not isinstance(network.pooler, LastStatePooler):
        raise ValueError(
            f"the gradient probe needs a LastStatePooler (the loss must sit at the last position); "
            f"the network has {type(network.pooler).__name__}"
        )
    if tokens.dim() != 2 or bool((tokens == network.pad_index).any()):
        raise ValueError("tokens must be (batch, time) with no padding: probe rows of one length")
    clone = copy.deepcopy(network).to(dtype=dtype, device="cpu").eval()
    for parameter in clone.parameters():
        parameter.requires_grad_(True)
    embedded = clone.embedding(tokens.cpu())
    targets = labels.cpu()

    def loss_fn(final: Tensor) -> Tensor:
        return F.cross_entropy(clone.head(final), targets, reduction="none")

    return probe_encoder(clone.encoder, embedded, loss_fn)


def scale_recurrent_weights(encoder: nn.Module, scale: float) -> int:
    """Multiply every recurrent matrix (``weight_hh*``) by ``scale``; returns how many were scaled.

    A scale that lifts the recurrent Jacobian's norm above one makes gradients grow, not shrink, with
    distance: the exploding-gradient side of the same product.
    """
    count = 0
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if name.split(".")[-1].startswith("weight_hh"):
                parameter.mul_(scale)
                count += 1
    if count == 0:
        raise ValueError(f"{type(encoder).__name__} has no weight_hh* parameters to scale")
    return count


def set_memory_gate_bias(encoder: nn.Module, value: float) -> int:
    """Set the bias of the gate that keeps the old state: an LSTM's forget gate, a GRU's update gate.

    The bias is split as ``bias_ih = value``, ``bias_hh = 0`` for those rows, so the gate opens at
    ``sigmoid(value)`` on average. torch initialises it near 0 (the gate half open: the memory halves each
    step); 1 is the usual LSTM advice (Gers et al. 2000; Jozefowicz et al. 2015, Keras's default), and
    larger values give longer memory at initialisation (Tallec & Ollivier 2018's chrono init). Returns
    how many layers/directions were set; a tanh RNN has no such gate and raises.
    """
    rnn = getattr(encoder, "rnn", None)
    mode = getattr(rnn, "mode", None)
    if mode not in ("LSTM", "GRU"):
        raise ValueError(
            f"only LSTM and GRU encoders have a memory gate; got {type(encoder).__name__} ({mode})"
        )
    hidden = rnn.hidden_size
    rows = slice(hidden, 2 * hidden)  # torch's gate order: LSTM (i, f, g, o), GRU (r, z, n)
    count = 0
    with torch.no_grad():
        for name, parameter in rnn.named_parameters():
            if name.startswith("bias_ih"):
                parameter[rows] = value
                count += 1
            elif name.startswith("bias_hh"):
                parameter[rows] = 0.0
    return count


def orthogonal(
    size: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """A random orthogonal ``(size, size)`` matrix (QR of a Gaussian, signs fixed so it is uniform)."""
    gaussian = torch.randn(size, size, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


class LinearRNNEncoder(RecurrentEncoder):
    """The known-answer reference: ``h⟨t⟩ = W·h⟨t−1⟩ + U·x⟨t⟩`` with ``W = ρ·Q``, ``Q`` and ``U`` orthogonal.

    Back-propagation multiplies the hidden gradient by ``Wᵀ`` once per step, and ``‖Wᵀg‖ = ρ‖g‖`` for
    every ``g``; the input gradient is ``Uᵀ`` times it, which keeps its norm. So both probe norms are
    exactly ``ρ^d`` times their value at the loss position, row by row.

    Args:
        input_size: width of ``x``; must equal ``hidden_size`` (``U`` is square and orthogonal).
        hidden_size: width of ``h``.
        rho: spectral radius (and norm) of ``W``.
        seed: seed of ``Q`` and ``U``.
    """

    def __init__(self, input_size: int, hidden_size: int, rho: float = 0.9, seed: int = 0) -> None:
        super().__init__()
        if input_size != hidden_size:
            raise ValueError(
                f"LinearRNNEncoder needs input_size == hidden_size, got {input_size} and {hidden_size}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = 1
        self.bidirectional = False
        self.rho = rho
        generator = torch.Generator().manual_seed(seed)
        self.weight_hh = nn.Parameter(rho * orthogonal(hidden_size, generator))
        self.weight_ih = nn.Parameter(orthogonal(hidden_size, generator))

    def step(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(inputs.size(0), inputs.device, inputs.dtype)
        h = F.linear(state[0][0], self.weight_hh) + F.linear(inputs, self.weight_ih)
        return h, (h.unsqueeze(0),)

    def encode(
        self, inputs: Tensor, lengths: Tensor, initial_state: State | None, need_state: bool = False
    ) -> EncoderOutput:
        batch, time, _ = inputs.shape
        h = initial_state[0][0] if initial_state is not None else inputs.new_zeros(batch, self.hidden_size)
        outputs = []
        for t in range(time):
            new, _ = self.step(inputs[:, t], (h.unsqueeze(0),))
            real = (lengths > t).view(-1, 1)
            h = torch.where(real, new, h)
            outputs.append(new * real)
        stacked = torch.stack(outputs, dim=1) if outputs else inputs.new_zeros(batch, 0, self.hidden_size)
        final = h.unsqueeze(0)
        return EncoderOutput(outputs=stacked, final_hidden=final, state=(final,))
