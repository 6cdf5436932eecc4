"""Attention: padded positions get no weight, whatever the padded keys hold; dot needs equal widths."""

from __future__ import annotations

import pytest
import torch

from seqtasks.nn.attention import Attention


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_ignores_padding(kind: str) -> None:
    """Weights sum to one over the real positions, padded ones get exactly zero, whatever padded keys hold."""
    torch.manual_seed(0)
    attention = Attention(6, 6, kind, hidden_size=5)
    keys = torch.randn(2, 4, 6)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    query = torch.randn(2, 6)
    context, weights = attention(query, keys, mask)
    assert torch.all(weights[0, 2:] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(2))
    changed = keys.clone()
    changed[0, 2:] = 100.0
    context2, weights2 = attention(query, changed, mask)
    assert torch.equal(context2[0], context[0]) and torch.equal(weights2[0], weights[0])


def test_dot_attention_refuses_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="dot attention"):
        Attention(8, 6, "dot")
