"""Poolers (sequence → vector): padding never changes the result, empty rows pool to zeros.

A classifier's prediction for a document must not depend on which other documents share its batch.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from seqtasks.encoders import EncoderOutput, RNNEncoder
from seqtasks.nn.poolers import AttentionPooler, LastStatePooler, MaxPooler, MeanPooler, Pooler

WIDTH = 6
LENGTHS = [7, 3, 0, 5]

POOLERS = {
    "mean": lambda size: MeanPooler(size),
    "max": lambda size: MaxPooler(size),
    "last": lambda size: LastStatePooler(size),
    "attention": lambda size: AttentionPooler(size, attention_size=4),
}


@pytest.fixture(params=list(POOLERS))
def pooler(request: pytest.FixtureRequest) -> Pooler:
    torch.manual_seed(0)
    return POOLERS[request.param](WIDTH).double()


def mask_of(lengths: list[int], time: int) -> Tensor:
    return torch.arange(time).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


def encoded_batch(lengths: list[int], time: int | None = None, garbage: float = 0.0) -> EncoderOutput:
    """An encoder-shaped output: random values at real positions, ``garbage`` (or zeros) on padding."""
    time = time or max(lengths)
    generator = torch.Generator().manual_seed(1)
    mask = mask_of(lengths, time)
    outputs = torch.randn(len(lengths), time, WIDTH, generator=generator, dtype=torch.float64)
    outputs = torch.where(mask.unsqueeze(-1), outputs, torch.full_like(outputs, garbage))
    final = torch.randn(2, len(lengths), WIDTH, generator=generator, dtype=torch.float64)
    final = final * torch.tensor([n > 0 for n in lengths]).view(1, -1, 1)
    return EncoderOutput(outputs=outputs, final_hidden=final, state=(final,))


def test_output_size_matches_what_it_returns(pooler: Pooler) -> None:
    """The head is sized from pooler.output_size, so it must be the width actually returned."""
    encoded = encoded_batch(LENGTHS)
    pooled = pooler(encoded, mask_of(LENGTHS, 7))
    assert pooler.output_size == WIDTH
    assert pooled.shape == (len(LENGTHS), pooler.output_size)


@pytest.mark.parametrize("garbage", [0.0, 50.0, -50.0], ids=["zeros", "large", "negative"])
def test_result_does_not_depend_on_padding(pooler: Pooler, garbage: float) -> None:
    """Each row pools to what it gives alone, however much padding the batch has and whatever it holds."""
    encoded = encoded_batch(LENGTHS, time=10, garbage=garbage)
    pooled = pooler(encoded, mask_of(LENGTHS, 10))
    for i, length in enumerate(LENGTHS):
        if length == 0:
            continue
        alone = EncoderOutput(
            outputs=encoded.outputs[i : i + 1, :length],
            final_hidden=encoded.final_hidden[:, i : i + 1],
            state=None,
        )
        torch.testing.assert_close(pooled[i : i + 1], pooler(alone, mask_of([length], length)))


def test_empty_rows_pool_to_zeros_with_finite_gradients(pooler: Pooler) -> None:
    """An empty document gives a zero vector, and backprop through it stays finite (no NaN poisoning)."""
    encoded = encoded_batch(LENGTHS)
    outputs = encoded.outputs.clone().requires_grad_(True)
    final_hidden = encoded.final_hidden.clone().requires_grad_(True)
    pooled = pooler(EncoderOutput(outputs, final_hidden, None), mask_of(LENGTHS, 7))
    assert torch.all(pooled[2] == 0)
    assert torch.all(pooled.abs().sum(-1)[[0, 1, 3]] > 0)
    pooled.sum().backward()
    grads = [g for g in (outputs.grad, final_hidden.grad) if g is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    for parameter in pooler.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()


def test_mean_is_over_real_positions_only() -> None:
    """Mean divides by the row's own length, not by the padded width."""
    encoded = encoded_batch(LENGTHS)
    pooled = MeanPooler(WIDTH)(encoded, mask_of(LENGTHS, 7))
    for i, length in enumerate(LENGTHS):
        if length:
            torch.testing.assert_close(pooled[i], encoded.outputs[i, :length].mean(0))


def test_max_ignores_zero_padding_of_negative_rows() -> None:
    """A row whose real outputs are all negative keeps its negative maxima: padded zeros never win."""
    encoded = encoded_batch(LENGTHS)
    negative = -encoded.outputs.abs() - 0.1
    negative = negative * mask_of(LENGTHS, 7).unsqueeze(-1)  # zeros on padding, as encoders give
    pooled = MaxPooler(WIDTH)(EncoderOutput(negative, encoded.final_hidden, None), mask_of(LENGTHS, 7))
    for i, length in enumerate(LENGTHS):
        if length:
            torch.testing.assert_close(pooled[i], negative[i, :length].max(0).values)
            assert torch.all(pooled[i] < 0)


def test_last_state_is_the_top_layer_final_hidden() -> None:
    """LastStatePooler reads the top layer of final_hidden, not a padded time step."""
    encoded = encoded_batch(LENGTHS)
    torch.testing.assert_close(LastStatePooler(WIDTH)(encoded, mask_of(LENGTHS, 7)), encoded.final_hidden[-1])


def test_attention_weights_are_a_distribution_over_real_positions() -> None:
    """Weights sum to 1 over each row's real positions, are exactly 0 on padding, all 0 on an empty row."""
    torch.manual_seed(0)
    pooler = AttentionPooler(WIDTH, attention_size=4).double()
    mask = mask_of(LENGTHS, 9)
    encoded = encoded_batch(LENGTHS, time=9, garbage=50.0)
    pooled = pooler(encoded, mask)
    weights = pooler.last_weights
    assert weights is not None and weights.shape == mask.shape
    assert torch.all(weights[~mask] == 0)
    assert torch.all(weights[mask] > 0)
    torch.testing.assert_close(weights.sum(1), torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(pooled, torch.einsum("bt,btd->bd", weights, encoded.outputs))


def test_encoder_then_pooler_is_independent_of_the_batch(pooler: Pooler) -> None:
    """End to end (bidirectional encoder + pooler): a document pools the same alone or in a ragged batch."""
    torch.manual_seed(0)
    encoder = RNNEncoder(5, WIDTH // 2, bidirectional=True).double().eval()
    x = torch.randn(len(LENGTHS), 7, 5, dtype=torch.float64)
    mask = mask_of(LENGTHS, 7)
    pooled = pooler(encoder(x, mask=mask), mask)
    assert torch.all(pooled[2] == 0)
    for i, length in enumerate(LENGTHS):
        if length:
            alone = pooler(encoder(x[i : i + 1, :length]), mask_of([length], length))
            torch.testing.assert_close(pooled[i : i + 1], alone)
