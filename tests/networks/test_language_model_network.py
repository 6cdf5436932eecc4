"""LanguageModelNetwork: it can memorise, carrying the state equals reading the stream at once, and the
AWD-LSTM regularisers (embedding, locked and weight dropout) act in training only, with the masks they
promise; tied weights are one Parameter."""

from __future__ import annotations

import pytest
import torch
from fixtures.language_model import tiny_network

from seqtasks.encoders import GRUEncoder, LSTMEncoder
from seqtasks.networks.language_model import LanguageModelNetwork, embedding_dropout, locked_dropout

NO_DROPOUT = {"embedding_dropout": 0.0, "input_dropout": 0.0, "output_dropout": 0.0}


def test_loss_on_a_tiny_corpus_falls_to_near_zero() -> None:
    """A repeating 12-token pattern in 4 streams: the LM memorises it (mean NLL well under 0.05 nats)."""
    torch.manual_seed(0)
    pattern = torch.tensor([3, 4, 5, 6, 3, 7, 8, 9, 10, 4, 11, 2])
    stream = pattern.repeat(4, 3)  # (4, 36)
    network = tiny_network(12, hidden=48, **NO_DROPOUT)
    optimizer = torch.optim.Adam(network.parameters(), lr=0.02)
    for _ in range(150):
        nll, count, _ = network.nll(stream[:, :-1], stream[:, 1:])
        optimizer.zero_grad()
        (nll / count).backward()
        optimizer.step()
    network.eval()
    nll, count, _ = network.nll(stream[:, :-1], stream[:, 1:])
    assert float(nll / count) < 0.05


@pytest.mark.parametrize("encoder_class", [LSTMEncoder, GRUEncoder])
def test_carried_state_equals_reading_the_whole_stream(encoder_class) -> None:
    """Two windows with the state carried give the logits of one window of both (eval mode)."""
    torch.manual_seed(1)
    network = LanguageModelNetwork(
        20, lambda w: encoder_class(w, 24, num_layers=2, bidirectional=False, weight_drop=0.3), 16
    ).eval()
    tokens = torch.randint(0, 20, (3, 17))
    whole, _ = network(tokens)
    first, state = network(tokens[:, :9])
    second, _ = network(tokens[:, 9:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    fresh, _ = network(tokens[:, 9:])  # and the state matters: without it the second window differs
    assert not torch.allclose(fresh, second)


def test_locked_dropout_shares_one_mask_over_time_and_is_off_in_eval() -> None:
    torch.manual_seed(2)
    x = torch.ones(4, 10, 32)
    dropped = locked_dropout(x, 0.5, training=True)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # the same mask at every step
    assert (dropped == 0).any() and (dropped == 2.0).any()
    assert not torch.equal(dropped[0, 0], dropped[1, 0])  # one mask per sequence
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_embedding_dropout_drops_whole_word_types() -> None:
    """A dropped word is zero at every position it occurs in the batch; the others are scaled up."""
    torch.manual_seed(3)
    embedding = torch.nn.Embedding(50, 8)
    tokens = torch.arange(50).repeat(2, 2)
    out = embedding_dropout(embedding, tokens, 0.5, training=True)
    zero = (out == 0).all(-1)
    by_type = {int(t): bool(z) for t, z in zip(tokens.flatten(), zero.flatten(), strict=True)}
    for t, z in zip(tokens.flatten(), zero.flatten(), strict=True):
        assert bool(z) == by_type[int(t)]
    assert 0 < sum(by_type.values()) < 50
    kept = ~zero
    torch.testing.assert_close(out[kept], 2.0 * embedding(tokens)[kept])
    torch.testing.assert_close(embedding_dropout(embedding, tokens, 0.5, training=False), embedding(tokens))


@pytest.mark.parametrize("path", ["padded", "pack"])
def test_weight_drop_is_on_in_training_and_off_in_eval(path: str) -> None:
    """DropConnect changes the outputs between training calls; eval is deterministic and undropped."""
    torch.manual_seed(4)
    encoder = LSTMEncoder(8, 16, num_layers=2, bidirectional=False, variable_length=path, weight_drop=0.5)
    plain = LSTMEncoder(8, 16, num_layers=2, bidirectional=False, variable_length=path)
    plain.load_state_dict(encoder.state_dict())
    x = torch.randn(3, 7, 8)
    encoder.train()
    plain.train()
    a, b = encoder(x, need_state=True).outputs, encoder(x, need_state=True).outputs
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, plain(x).outputs)
    encoder.eval()
    plain.eval()
    torch.testing.assert_close(encoder(x).outputs, encoder(x).outputs)
    torch.testing.assert_close(encoder(x).outputs, plain(x).outputs)
    a.sum().backward()
    assert encoder.rnn.weight_hh_l1.grad.abs().sum() > 0  # the gradient reaches the undropped weights


def test_weight_drop_drops_entries_of_the_recurrent_weights_only() -> None:
    """With weight_drop the input-to-hidden path is untouched: a one-step run from zeros ignores w_hh."""
    torch.manual_seed(5)
    encoder = LSTMEncoder(8, 16, bidirectional=False, weight_drop=0.9).train()
    x = torch.randn(2, 1, 8)
    torch.testing.assert_close(encoder(x).outputs, encoder(x).outputs)  # h0 = 0: w_hh plays no part


def test_weight_drop_is_validated() -> None:
    with pytest.raises(ValueError, match="weight_drop"):
        LSTMEncoder(8, 16, weight_drop=1.0)


def test_tie_weights_shares_the_parameter() -> None:
    network = tiny_network(30, hidden=16, tie_weights=True)  # hidden 16 == embedding 16: no projection
    assert network.head.weight is network.embedding.weight
    assert isinstance(network.projection, torch.nn.Identity)
    wider = tiny_network(30, hidden=40, tie_weights=True)  # a projection 40 → 16 comes first
    assert wider.head.weight is wider.embedding.weight
    assert isinstance(wider.projection, torch.nn.Linear) and wider.projection.in_features == 40
    untied = tiny_network(30, hidden=40, tie_weights=False)
    assert untied.head.weight is not untied.embedding.weight
    names = [name for name, _ in wider.named_parameters()]
    assert "head.weight" not in names  # counted once
    copy = tiny_network(30, hidden=40, tie_weights=True)
    copy.load_state_dict(wider.state_dict())
    assert copy.head.weight is copy.embedding.weight
    torch.testing.assert_close(copy.head.weight, wider.embedding.weight)


def test_a_bidirectional_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="unidirectional"):
        LanguageModelNetwork(10, lambda w: LSTMEncoder(w, 8, bidirectional=True), 8)
