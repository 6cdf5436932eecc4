"""The classifier network on its own: a plain nn.Module, trained with a plain PyTorch loop (no Lightning)."""

from __future__ import annotations

import sys
from functools import partial

import pytest
import torch
from torch import nn

from seqtasks.encoders import GRUEncoder, LSTMEncoder
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.nn.poolers import MaxPooler, MeanPooler


def _network(**kwargs) -> ClassifierNetwork:
    torch.manual_seed(0)
    kwargs.setdefault("encoder", partial(GRUEncoder, hidden_size=8, bidirectional=True))
    return ClassifierNetwork(30, 3, 0, embedding_dim=6, **kwargs)


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tokens = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0], [11, 0, 0, 0]])
    return tokens, torch.tensor([4, 2, 1]), torch.tensor([0, 1, 2])


def test_a_plain_training_loop_learns_without_lightning() -> None:
    network = _network(dropout=0.0, embedding_dropout=0.0)
    assert "lightning" not in type(network).__module__ and isinstance(network, nn.Module)
    tokens, lengths, labels = _batch()
    optimizer = torch.optim.AdamW(network.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        logits = network(tokens, lengths)
        assert logits.shape == (3, 3)
        loss = network.loss(logits, labels)
        loss.backward()
        optimizer.step()
        first = first if first is not None else float(loss)
    assert float(loss) < first / 4
    assert network(tokens, lengths).argmax(-1).tolist() == labels.tolist()
    assert all(p.grad is not None for p in network.parameters())


def test_the_network_module_imports_no_lightning() -> None:
    source = sys.modules[ClassifierNetwork.__module__].__file__
    with open(source) as handle:
        assert "lightning" not in handle.read().split('"""', 2)[2]


def test_builds_its_layers_in_the_order_of_the_old_task() -> None:
    """Embedding, encoder, pooler, head: seeded weights equal a by-hand build in that order (same draws)."""
    network = _network(pooler=MeanPooler)
    torch.manual_seed(0)
    embedding = nn.Embedding(30, 6, padding_idx=0)
    encoder = GRUEncoder(6, hidden_size=8, bidirectional=True)
    head = nn.Linear(16, 3)
    assert torch.equal(network.embedding.weight, embedding.weight)
    for (name, mine), theirs in zip(network.encoder.named_parameters(), encoder.parameters(), strict=True):
        assert torch.equal(mine, theirs), name
    assert torch.equal(network.head.weight, head.weight) and torch.equal(network.head.bias, head.bias)
    assert isinstance(_network().pooler, MaxPooler)  # the default pooler


def test_padding_does_not_change_a_row() -> None:
    network = _network(encoder=partial(LSTMEncoder, hidden_size=8, bidirectional=True)).eval()
    tokens, lengths, _ = _batch()
    with torch.no_grad():
        batched = network(tokens, lengths)
        alone = network(tokens[1:2, :2], lengths[1:2])
    torch.testing.assert_close(batched[1:2], alone)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        ClassifierNetwork(30, 1, 0, encoder=partial(GRUEncoder, hidden_size=4))
    with pytest.raises(ValueError, match="does not match embedding_dim"):
        ClassifierNetwork(
            30, 2, 0, encoder=lambda width: GRUEncoder(width + 1, hidden_size=4), embedding_dim=5
        )
