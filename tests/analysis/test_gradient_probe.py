"""The gradient probe measures what it claims: known answers, agreement with plain autograd, no side effects.

The lab's figures and decay table are only as good as the probe; a probe that is off by a step, reads the
wrong tensor or averages the wrong way would still draw a plausible straight line.
"""

from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch
from torch.nn import functional as F

from seqtasks.analysis.gradients import (
    LinearRNNEncoder,
    fit_log_slope,
    orthogonal,
    probe_classifier,
    probe_encoder,
    scale_recurrent_weights,
    set_memory_gate_bias,
)
from seqtasks.encoders import ElmanEncoder, FusedRecurrentEncoder, GRUEncoder, LSTMEncoder, RNNEncoder
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.nn.poolers import LastStatePooler, MaxPooler


def _readout(width: int, seed: int = 1):
    weight = torch.randn(width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return lambda h: torch.sin(h @ weight) + (h**2).sum(-1)  # nonlinear: every row's gradient differs


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.2])
def test_linear_rnn_gradient_shrinks_by_exactly_rho_per_step(rho: float) -> None:
    torch.manual_seed(0)
    encoder = LinearRNNEncoder(6, 6, rho=rho, seed=3)
    inputs = torch.randn(5, 40, 6, dtype=torch.float64)
    profile = probe_encoder(encoder, inputs, _readout(6))
    assert profile.distance.tolist() == list(range(40))
    for norms in (profile.hidden, profile.inputs):
        ratios = norms[1:] / norms[:-1]
        assert torch.allclose(ratios, torch.full_like(ratios, rho), rtol=1e-6, atol=0)
    assert profile.decay_per_step() == pytest.approx(rho, rel=1e-6)
    assert profile.decay_per_step("inputs") == pytest.approx(rho, rel=1e-6)


def test_orthogonal_matrix_is_orthogonal() -> None:
    q = orthogonal(7, torch.Generator().manual_seed(0))
    assert torch.allclose(q.T @ q, torch.eye(7, dtype=q.dtype), atol=1e-12)


def test_fit_log_slope_recovers_a_geometric_decay_and_skips_zeros() -> None:
    distance = torch.arange(30)
    norms = 3.0 * 0.7 ** distance.double()
    norms[0] = 100.0  # distance 0 is left out of the fit by default
    norms[10] = 0.0  # underflow: skipped, not log(0)
    assert math.exp(fit_log_slope(distance, norms)) == pytest.approx(0.7, rel=1e-9)
    assert math.isnan(fit_log_slope(distance[:2], norms[:2]))


ENCODERS = {
    "rnn": lambda: RNNEncoder(5, 7, bidirectional=False),
    "gru": lambda: GRUEncoder(5, 7, bidirectional=False),
    "lstm": lambda: LSTMEncoder(5, 7, bidirectional=False),
    "lstm-2-layers": lambda: LSTMEncoder(5, 7, num_layers=2, bidirectional=False),
    "elman": lambda: ElmanEncoder(5, 7),
}


@pytest.mark.parametrize("name", list(ENCODERS))
def test_probe_input_gradients_agree_with_autograd_over_the_whole_sequence(name: str) -> None:
    """Stepping one token at a time must give the same ∂L/∂x as the fused whole-sequence forward."""
    torch.manual_seed(0)
    encoder = ENCODERS[name]().double()
    inputs = torch.randn(4, 12, 5, dtype=torch.float64)
    loss_fn = _readout(7)
    profile = probe_encoder(encoder, inputs, loss_fn)

    x = inputs.clone().requires_grad_(True)
    loss_fn(encoder(x).final_hidden[-1]).sum().backward()
    expected = x.grad.norm(dim=-1).mean(dim=0).flip(0)
    assert profile.inputs.shape == (12,)
    assert torch.allclose(profile.inputs, expected, rtol=1e-10, atol=1e-14)
    assert profile.hidden is not None and profile.hidden.shape == (12,)
    assert bool(torch.isfinite(profile.hidden).all()) and bool((profile.hidden > 0).all())


def test_probe_hidden_gradient_of_a_tanh_rnn_is_the_backpropagated_jacobian() -> None:
    """One step back, ∂L/∂h⟨T−2⟩ = W_hhᵀ·diag(1−h⟨T−1⟩²)·∂L/∂h⟨T−1⟩ (a single row, so no averaging)."""
    torch.manual_seed(0)
    encoder = ElmanEncoder(3, 4).double()
    inputs = torch.randn(1, 6, 3, dtype=torch.float64)
    weight = torch.randn(4, dtype=torch.float64)
    profile = probe_encoder(encoder, inputs, lambda h: h @ weight)
    final = encoder(inputs).final_hidden[-1][0]
    expected = encoder.weight_hh_l0.T @ ((1 - final**2) * weight)
    assert profile.hidden[0].item() == pytest.approx(weight.norm().item(), rel=1e-12)
    assert profile.hidden[1].item() == pytest.approx(expected.norm().item(), rel=1e-10)


def test_bidirectional_encoder_gives_input_gradients_only() -> None:
    torch.manual_seed(0)
    encoder = GRUEncoder(5, 7, bidirectional=True).double()
    profile = probe_encoder(encoder, torch.randn(3, 9, 5, dtype=torch.float64), _readout(14))
    assert profile.hidden is None
    assert profile.inputs.shape == (9,) and bool(torch.isfinite(profile.inputs).all())
    assert math.isnan(profile.records()[0]["hidden_norm"])
    with pytest.raises(ValueError, match="no hidden-state gradients"):
        profile.decay_slope("hidden")


def _classifier(pooler=LastStatePooler, cell: str = "gru") -> ClassifierNetwork:
    """A classifier network, built directly (the probe takes the network, no LightningModule)."""
    torch.manual_seed(0)
    return ClassifierNetwork(
        20,
        2,
        0,
        encoder=partial(FusedRecurrentEncoder, hidden_size=6, cell=cell, bidirectional=False),
        pooler=pooler,
        embedding_dim=5,
    )


def test_probe_classifier_measures_the_classification_loss_and_leaves_the_model_untouched() -> None:
    model = _classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tokens = torch.randint(1, 20, (8, 10))
    labels = torch.randint(0, 2, (8,))
    profile = probe_classifier(model, tokens, labels)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None and p.dtype == torch.float32 for p in model.parameters())

    clone = copy.deepcopy(model).double()
    x = clone.embedding(tokens).detach().requires_grad_(True)
    logits = clone.head(clone.encoder(x).final_hidden[-1])
    F.cross_entropy(logits, labels, reduction="sum").backward()
    assert torch.allclose(profile.inputs, x.grad.norm(dim=-1).mean(0).flip(0), rtol=1e-10)


def test_probe_classifier_refuses_poolers_that_read_every_position_and_padding() -> None:
    with pytest.raises(ValueError, match="LastStatePooler"):
        probe_classifier(
            _classifier(MaxPooler), torch.ones(2, 4, dtype=torch.long), torch.zeros(2, dtype=torch.long)
        )
    tokens = torch.tensor([[3, 4, 0], [3, 4, 5]])
    with pytest.raises(ValueError, match="no padding"):
        probe_classifier(_classifier(), tokens, torch.zeros(2, dtype=torch.long))


def test_recurrent_scale_turns_decay_into_growth_for_a_linear_rnn() -> None:
    encoder = LinearRNNEncoder(4, 4, rho=0.8).double()
    assert scale_recurrent_weights(encoder, 1.5) == 1
    profile = probe_encoder(encoder, torch.randn(2, 20, 4, dtype=torch.float64), _readout(4))
    assert profile.decay_per_step() == pytest.approx(1.2, rel=1e-6)


def test_memory_gate_bias_lengthens_the_memory_at_initialisation() -> None:
    inputs = torch.randn(8, 30, 5, dtype=torch.float64)
    for cls in (GRUEncoder, LSTMEncoder):
        decays = []
        for bias in (None, 3.0):
            torch.manual_seed(0)
            encoder = cls(5, 7, bidirectional=False).double()
            if bias is not None:
                assert set_memory_gate_bias(encoder, bias) == 1
                assert bool((encoder.rnn.bias_ih_l0[7:14] == bias).all())
            decays.append(probe_encoder(encoder, inputs, _readout(7)).decay_per_step())
        assert decays[1] > decays[0] + 0.2, (cls.__name__, decays)
    with pytest.raises(ValueError, match="memory gate"):
        set_memory_gate_bias(RNNEncoder(5, 7), 1.0)
