"""The from-scratch ElmanEncoder against the library it mirrors: torch.nn.RNN and RNNEncoder.

Same weights (copied state dicts) must give the same outputs, final states and gradients, so the loop
in elman.py can be read as a faithful account of what the fused kernel computes.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from seqtasks.encoders import ElmanEncoder, RNNEncoder

INPUT, HIDDEN, BATCH, TIME = 5, 7, 4, 9

layers_and_directions = pytest.mark.parametrize(
    ("num_layers", "bidirectional"),
    [(1, False), (1, True), (2, False), (2, True)],
    ids=["1layer-uni", "1layer-bi", "2layers-uni", "2layers-bi"],
)


def to_torch_layout(state: Tensor, directions: int) -> Tensor:
    """Our ``(L, B, D*H)`` → torch's ``(L*D, B, H)``, written out independently of rnn.py."""
    layers = state.size(0)
    return torch.stack(
        [state[layer, :, d * HIDDEN : (d + 1) * HIDDEN] for layer in range(layers) for d in range(directions)]
    )


def pair(num_layers: int, bidirectional: bool) -> tuple[ElmanEncoder, nn.RNN]:
    torch.manual_seed(0)
    torch_rnn = nn.RNN(
        INPUT, HIDDEN, num_layers, nonlinearity="tanh", batch_first=True, bidirectional=bidirectional
    ).double()
    elman = ElmanEncoder(INPUT, HIDDEN, num_layers, bidirectional).double()
    elman.load_state_dict(torch_rnn.state_dict())
    return elman, torch_rnn


@layers_and_directions
def test_state_dict_has_torch_names_and_shapes(num_layers: int, bidirectional: bool) -> None:
    """Weights move between the reference and torch.nn.RNN in both directions, by name and shape."""
    torch.manual_seed(0)
    elman = ElmanEncoder(INPUT, HIDDEN, num_layers, bidirectional)
    torch_rnn = nn.RNN(INPUT, HIDDEN, num_layers, batch_first=True, bidirectional=bidirectional)
    ours = {k: tuple(v.shape) for k, v in elman.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in torch_rnn.state_dict().items()}
    assert ours == theirs
    assert list(ours) == list(theirs)  # same order, so positional tools (optimizers' state) line up too
    torch_rnn.load_state_dict(elman.state_dict())
    for name, value in elman.state_dict().items():
        assert torch.equal(torch_rnn.state_dict()[name], value)


def test_initialised_like_torch() -> None:
    """Uniform in ±1/sqrt(hidden) for every tensor (biases included), as torch.nn.RNN does."""
    torch.manual_seed(0)
    elman = ElmanEncoder(INPUT, 64, num_layers=2, bidirectional=True)
    bound = 1 / math.sqrt(64)
    for name, parameter in elman.named_parameters():
        assert parameter.abs().max() <= bound, name
        assert parameter.abs().max() > 0.9 * bound, name  # spread over the range, not near zero
        assert abs(parameter.mean().item()) < 0.25 * bound, name


@layers_and_directions
def test_same_outputs_states_and_gradients_as_torch_rnn(num_layers: int, bidirectional: bool) -> None:
    """On full-length batches the loop computes exactly what torch.nn.RNN computes, forwards and backwards."""
    elman, torch_rnn = pair(num_layers, bidirectional)
    directions = 2 if bidirectional else 1
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, TIME, INPUT, generator=generator, dtype=torch.float64)
    h0 = torch.randn(num_layers, BATCH, directions * HIDDEN, generator=generator, dtype=torch.float64)
    w_out = torch.randn(BATCH, TIME, directions * HIDDEN, generator=generator, dtype=torch.float64)
    w_state = torch.randn(num_layers * directions, BATCH, HIDDEN, generator=generator, dtype=torch.float64)

    def run(model: nn.Module) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        inputs = x.clone().requires_grad_(True)
        start = h0.clone().requires_grad_(True)
        if isinstance(model, ElmanEncoder):
            out = model(inputs, initial_state=(start,))
            outputs, h_n = out.outputs, to_torch_layout(out.state[0], directions)
        else:
            outputs, h_n = model(inputs, to_torch_layout(start, directions).contiguous())
        ((outputs * w_out).sum() + (h_n * w_state).sum()).backward()
        grads = {name: p.grad for name, p in model.named_parameters()}
        return outputs, h_n, inputs.grad, start.grad, grads

    ours, theirs = run(elman), run(torch_rnn)
    for mine, ref in zip(ours[:4], theirs[:4], strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-9, atol=1e-10)
    assert ours[4].keys() == theirs[4].keys()
    for name in ours[4]:
        torch.testing.assert_close(ours[4][name], theirs[4][name], rtol=1e-9, atol=1e-10, msg=name)


@pytest.mark.parametrize("variable_length", ["pack", "padded"])
@layers_and_directions
def test_same_as_rnn_encoder_on_ragged_batches(
    num_layers: int, bidirectional: bool, variable_length: str
) -> None:
    """With padding and an empty row, the reference agrees with RNNEncoder on both of its exact paths."""
    torch.manual_seed(0)
    library = RNNEncoder(INPUT, HIDDEN, num_layers, bidirectional, variable_length=variable_length).double()
    elman = ElmanEncoder(INPUT, HIDDEN, num_layers, bidirectional).double()
    elman.load_state_dict({name.removeprefix("rnn."): value for name, value in library.state_dict().items()})
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, TIME, INPUT, generator=generator, dtype=torch.float64)
    lengths = torch.tensor([TIME, 3, 0, 6])
    w_out = torch.randn(BATCH, TIME, elman.output_size, generator=generator, dtype=torch.float64)

    def run(model: nn.Module):
        inputs = x.clone().requires_grad_(True)
        out = model(inputs, lengths=lengths)
        ((out.outputs * w_out).sum() + out.final_hidden.sum()).backward()
        grads = {name.removeprefix("rnn."): p.grad for name, p in model.named_parameters()}
        return out, inputs.grad, grads

    (ours, our_x_grad, our_grads), (theirs, their_x_grad, their_grads) = run(elman), run(library)
    for mine, ref in [
        (ours.outputs, theirs.outputs),
        (ours.final_hidden, theirs.final_hidden),
        (ours.state[0], theirs.state[0]),
        (our_x_grad, their_x_grad),
    ]:
        torch.testing.assert_close(mine, ref, rtol=1e-9, atol=1e-10)
    assert our_grads.keys() == their_grads.keys()
    for name in our_grads:
        torch.testing.assert_close(our_grads[name], their_grads[name], rtol=1e-9, atol=1e-10, msg=name)


def test_dropout_only_between_layers_and_only_in_training() -> None:
    """dropout acts between stacked layers while training; evaluation is deterministic and dropout-free."""
    torch.manual_seed(0)
    plain = ElmanEncoder(INPUT, HIDDEN, num_layers=2, dropout=0.0).double()
    dropped = ElmanEncoder(INPUT, HIDDEN, num_layers=2, dropout=0.5).double()
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(BATCH, TIME, INPUT, dtype=torch.float64)
    expected = plain(x).outputs
    torch.testing.assert_close(dropped.eval()(x).outputs, expected)
    assert not torch.allclose(dropped.train()(x).outputs, expected)
    top_only = ElmanEncoder(INPUT, HIDDEN, num_layers=1, dropout=0.5).double()
    torch.testing.assert_close(top_only.train()(x).outputs, top_only.eval()(x).outputs)


@pytest.mark.parametrize(
    "kwargs",
    [{"hidden_size": 0}, {"num_layers": 0}, {"dropout": 1.0}, {"dropout": -0.1}],
    ids=["hidden0", "layers0", "dropout1", "dropout-neg"],
)
def test_invalid_settings_are_refused_at_construction(kwargs: dict) -> None:
    """A contradictory configuration fails when the model is built, naming the field."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ElmanEncoder(INPUT, **kwargs)
