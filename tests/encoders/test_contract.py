"""The RecurrentEncoder contract, run over every encoder × layers × direction on ragged batches.

Every consumer (poolers, heads, decoders) relies on these properties, whichever encoder a recipe names.
Computed in float64 so that "the same" can be checked to ~1e-10 rather than to float32 noise.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from seqtasks.encoders import (
    ElmanEncoder,
    FusedRecurrentEncoder,
    GRUEncoder,
    LSTMEncoder,
    RecurrentEncoder,
    RNNEncoder,
    State,
)

INPUT, HIDDEN = 5, 7
LENGTHS = [9, 4, 1, 6]  # batch 4, T = 9: one full row, short rows, a length-1 row
WITH_EMPTY = [5, 0, 9, 2]

FACTORIES: dict[str, Callable[..., RecurrentEncoder]] = {
    "rnn-pack": lambda **kw: RNNEncoder(variable_length="pack", **kw),
    "rnn-padded": lambda **kw: RNNEncoder(variable_length="padded", **kw),
    "gru-pack": lambda **kw: GRUEncoder(variable_length="pack", **kw),
    "gru-padded": lambda **kw: GRUEncoder(variable_length="padded", **kw),
    "lstm-pack": lambda **kw: LSTMEncoder(variable_length="pack", **kw),
    "lstm-padded": lambda **kw: LSTMEncoder(variable_length="padded", **kw),
    "elman": lambda **kw: ElmanEncoder(**kw),
}


@pytest.fixture(params=list(FACTORIES))
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=[1, 2], ids=["1layer", "2layers"])
def num_layers(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture(params=[False, True], ids=["uni", "bi"])
def bidirectional(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture
def encoder(kind: str, num_layers: int, bidirectional: bool) -> RecurrentEncoder:
    torch.manual_seed(0)
    enc = FACTORIES[kind](
        input_size=INPUT, hidden_size=HIDDEN, num_layers=num_layers, bidirectional=bidirectional
    )
    return enc.double().eval()


def ragged(lengths: list[int], time: int | None = None, seed: int = 1) -> tuple[Tensor, Tensor]:
    """A batch whose padded positions hold large garbage, so that any leak of padding shows."""
    generator = torch.Generator().manual_seed(seed)
    time = time or max(lengths)
    x = torch.randn(len(lengths), time, INPUT, generator=generator, dtype=torch.float64)
    lengths_t = torch.tensor(lengths)
    pad = torch.arange(time).unsqueeze(0) >= lengths_t.unsqueeze(1)
    garbage = 10 * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return torch.where(pad.unsqueeze(-1), garbage, x), lengths_t


def random_state(encoder: RecurrentEncoder, batch: int, seed: int = 2) -> State:
    generator = torch.Generator().manual_seed(seed)
    shape = (encoder.num_layers, batch, encoder.output_size)
    count = 2 if encoder.is_lstm else 1
    return tuple(torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(count))


def row_state(state: State | None, i: int) -> State | None:
    return None if state is None else tuple(s[:, i : i + 1] for s in state)


def close(actual: Tensor, expected: Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-10)


def test_sizes_and_shapes(encoder: RecurrentEncoder, num_layers: int, bidirectional: bool) -> None:
    """Heads are sized from output_size, which must already count both directions."""
    directions = 2 if bidirectional else 1
    assert (encoder.input_size, encoder.num_layers, encoder.bidirectional) == (
        INPUT,
        num_layers,
        bidirectional,
    )
    assert encoder.output_size == HIDDEN * directions
    x, lengths = ragged(LENGTHS)
    out = encoder(x, lengths=lengths, need_state=True)
    assert out.outputs.shape == (4, 9, encoder.output_size)
    assert out.final_hidden.shape == (num_layers, 4, directions * HIDDEN)
    assert out.state is not None
    assert len(out.state) == (2 if encoder.is_lstm else 1)
    assert all(s.shape == (num_layers, 4, directions * HIDDEN) for s in out.state)


def test_padded_positions_are_exactly_zero(encoder: RecurrentEncoder) -> None:
    """Poolers and losses may sum over all positions: padding must contribute exactly nothing."""
    x, lengths = ragged(LENGTHS)
    outputs = encoder(x, lengths=lengths).outputs
    pad = torch.arange(9).unsqueeze(0) >= lengths.unsqueeze(1)
    assert torch.all(outputs[pad] == 0)
    assert torch.all(outputs[~pad].abs().sum(-1) > 0)


def test_real_positions_equal_each_row_alone(encoder: RecurrentEncoder) -> None:
    """A row's outputs and final hidden state do not depend on the other rows or on its padding."""
    x, lengths = ragged(LENGTHS)
    out = encoder(x, lengths=lengths)
    for i, length in enumerate(LENGTHS):
        alone = encoder(x[i : i + 1, :length])
        close(out.outputs[i, :length], alone.outputs[0])
        close(out.final_hidden[:, i], alone.final_hidden[:, 0])


def test_more_padding_changes_nothing(encoder: RecurrentEncoder) -> None:
    """Bucketing may pad a batch to any width: extra (garbage) padding leaves real positions unchanged."""
    x, lengths = ragged(LENGTHS)
    wide, _ = ragged(LENGTHS, time=13)
    wide[:, :9] = torch.where((torch.arange(9) < lengths.unsqueeze(1)).unsqueeze(-1), x, wide[:, :9])
    narrow_out = encoder(x, lengths=lengths, need_state=True)
    wide_out = encoder(wide, lengths=lengths, need_state=True)
    close(wide_out.outputs[:, :9], narrow_out.outputs)
    assert torch.all(wide_out.outputs[:, 9:] == 0)
    close(wide_out.final_hidden, narrow_out.final_hidden)
    for a, b in zip(wide_out.state, narrow_out.state, strict=True):
        close(a, b)


def test_matches_the_torch_module_on_full_rows(encoder: RecurrentEncoder) -> None:
    """On unpadded rows each encoder is exactly the textbook recurrence of torch.nn (anchors the others)."""
    if isinstance(encoder, FusedRecurrentEncoder):
        module = encoder.rnn
    else:
        module = nn.RNN(
            INPUT, HIDDEN, encoder.num_layers, batch_first=True, bidirectional=encoder.bidirectional
        ).double()
        module.load_state_dict(encoder.state_dict())
    x, _ = ragged([9, 9, 9, 9])
    expected, _ = module(x)
    close(encoder(x).outputs, expected)


def test_empty_row_gives_zeros(encoder: RecurrentEncoder) -> None:
    """A length-0 row (an empty document) is allowed: zeros out, zero final hidden, other rows unharmed."""
    x, lengths = ragged(WITH_EMPTY)
    out = encoder(x, lengths=lengths, need_state=True)
    assert torch.all(out.outputs[1] == 0)
    assert torch.all(out.final_hidden[:, 1] == 0)
    assert all(torch.all(s[:, 1] == 0) for s in out.state)
    keep = [0, 2, 3]
    without = encoder(x[keep], lengths=lengths[keep], need_state=True)
    close(out.outputs[keep], without.outputs)
    close(out.final_hidden[:, keep], without.final_hidden)
    for a, b in zip(out.state, without.state, strict=True):
        close(a[:, keep], b)


def test_final_hidden_is_the_top_output_at_each_rows_ends(encoder: RecurrentEncoder) -> None:
    """final_hidden[-1]: forward half after the last real token, backward half after the first."""
    x, lengths = ragged(LENGTHS)
    out = encoder(x, lengths=lengths)
    for i, length in enumerate(LENGTHS):
        close(out.final_hidden[-1, i, :HIDDEN], out.outputs[i, length - 1, :HIDDEN])
        if encoder.bidirectional:
            close(out.final_hidden[-1, i, HIDDEN:], out.outputs[i, 0, HIDDEN:])


def test_mask_and_lengths_agree(encoder: RecurrentEncoder) -> None:
    """Callers may pass either a boolean mask or lengths; the result is the same."""
    x, lengths = ragged(WITH_EMPTY)
    mask = torch.arange(9).unsqueeze(0) < lengths.unsqueeze(1)
    by_mask = encoder(x, mask=mask, need_state=True)
    by_lengths = encoder(x, lengths=lengths, need_state=True)
    assert torch.equal(by_mask.outputs, by_lengths.outputs)
    assert torch.equal(by_mask.final_hidden, by_lengths.final_hidden)


def test_gradients_reach_every_parameter_and_never_padding(encoder: RecurrentEncoder) -> None:
    """Every weight is trained by a loss on real positions, and padded inputs receive no gradient."""
    x, lengths = ragged(WITH_EMPTY)
    x.requires_grad_(True)
    out = encoder(x, lengths=lengths)
    weights = torch.randn(out.outputs.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    (out.outputs * weights).sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    pad = torch.arange(9).unsqueeze(0) >= lengths.unsqueeze(1)
    assert torch.all(x.grad[pad] == 0)
    assert torch.all(x.grad[~pad].abs().sum(-1) > 0)


def test_state_is_exact_on_every_path(encoder: RecurrentEncoder) -> None:
    """`state` (what a decoder starts from) is each row's state after its last token; need_state forces it."""
    x, lengths = ragged(LENGTHS)
    plain = encoder(x, lengths=lengths)
    exact = encoder(x, lengths=lengths, need_state=True)
    if plain.state is None:
        assert encoder.is_lstm and getattr(encoder, "variable_length", None) == "padded"
    assert exact.state is not None
    close(exact.state[0], exact.final_hidden)
    for i, length in enumerate(LENGTHS):
        alone = encoder(x[i : i + 1, :length])
        assert alone.state is not None  # no padding: every path can see the state
        for a, b in zip(exact.state, alone.state, strict=True):
            close(a[:, i], b[:, 0])
    if plain.state is not None:
        for a, b in zip(plain.state, exact.state, strict=True):
            close(a, b)


def test_step_replays_the_full_forward(encoder: RecurrentEncoder) -> None:
    """Decoders and samplers step one token at a time: that must equal encoding the whole sequence."""
    x, _ = ragged([9, 9, 9, 9])
    if encoder.bidirectional:
        with pytest.raises(ValueError, match="bidirectional"):
            encoder.step(x[:, 0])
        return
    full = encoder(x)
    state = None
    for t in range(x.size(1)):
        output, state = encoder.step(x[:, t], state)
        close(output, full.outputs[:, t])
    for a, b in zip(state, full.state, strict=True):
        close(a, b)


def test_initial_state_is_honoured(encoder: RecurrentEncoder) -> None:
    """initial_state starts every row (the backward direction at each row's own end), not zeros."""
    x, lengths = ragged(LENGTHS)
    start = random_state(encoder, 4)
    out = encoder(x, lengths=lengths, initial_state=start, need_state=True)
    zero = encoder(x, lengths=lengths)
    assert not torch.allclose(out.outputs, zero.outputs)
    for i, length in enumerate(LENGTHS):
        alone = encoder(x[i : i + 1, :length], initial_state=row_state(start, i))
        close(out.outputs[i, :length], alone.outputs[0])
        close(out.final_hidden[:, i], alone.final_hidden[:, 0])
        for a, b in zip(out.state, alone.state, strict=True):
            close(a[:, i], b[:, 0])


def test_initial_state_of_an_empty_row_passes_through(encoder: RecurrentEncoder) -> None:
    """An empty row has read nothing: its state is its initial state, its final_hidden still zeros."""
    x, lengths = ragged(WITH_EMPTY)
    start = random_state(encoder, 4)
    out = encoder(x, lengths=lengths, initial_state=start, need_state=True)
    assert torch.all(out.final_hidden[:, 1] == 0)
    for a, b in zip(out.state, start, strict=True):
        close(a[:, 1], b[:, 1])


def test_continuing_from_a_state_equals_one_pass(encoder: RecurrentEncoder) -> None:
    """A unidirectional encoder resumed from its own state gives what one pass over the whole text gives."""
    if encoder.bidirectional:
        pytest.skip("a bidirectional encoder cannot be resumed mid-sequence")
    x, _ = ragged([9, 9, 9, 9])
    full = encoder(x)
    first = encoder(x[:, :4])
    second = encoder(x[:, 4:], initial_state=first.state)
    close(second.outputs, full.outputs[:, 4:])
    for a, b in zip(second.state, full.state, strict=True):
        close(a, b)


def test_bad_shapes_raise(encoder: RecurrentEncoder) -> None:
    """A wrong input width or initial-state shape is a clear ValueError, not a kernel crash."""
    x, lengths = ragged(LENGTHS)
    with pytest.raises(ValueError, match=str(INPUT)):
        encoder(torch.randn(4, 9, INPUT + 1, dtype=torch.float64), lengths=lengths)
    with pytest.raises(ValueError):
        encoder(x[0], lengths=lengths)
    bad = tuple(s[:, :2] for s in random_state(encoder, 4))
    with pytest.raises(ValueError, match="initial_state"):
        encoder(x, lengths=lengths, initial_state=bad)


def test_default_state_follows_the_inputs_dtype(encoder: RecurrentEncoder) -> None:
    """The zero initial state takes the inputs' dtype (a float32 zero state broke float64 inputs)."""
    x, lengths = ragged(LENGTHS)
    assert encoder(x, lengths=lengths).outputs.dtype == torch.float64
    single = encoder.float()
    assert single(x.float(), lengths=lengths).outputs.dtype == torch.float32
    if not single.bidirectional:
        output, _ = single.step(x[:, 0].float())
        assert output.dtype == torch.float32
