"""Teacher forcing without input feeding runs the whole target at once and matches the per-step loop.

Exactness is checked in eval mode (dropout off) for the logits and, for the gradients, in train mode with
every dropout at 0: with dropout active the fused path draws one embedding-dropout mask over the whole
target instead of one per step, so the two paths see different random masks.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn import functional as F

from seqtasks.encoders import ElmanEncoder, GRUEncoder, LSTMEncoder, RNNEncoder
from seqtasks.networks.seq2seq import BOS_INDEX, EOS_INDEX, PAD_INDEX, Seq2SeqNetwork
from seqtasks.nn.attention import Attention

SOURCE_VOCAB, TARGET_VOCAB = 30, 25
CELLS = {"rnn": RNNEncoder, "gru": GRUEncoder, "lstm": LSTMEncoder, "elman": ElmanEncoder}


def network(cell: str, layers: int, attention: str, bridge: str, dropout: float = 0.3) -> Seq2SeqNetwork:
    """A small network; encoder output 12 = decoder hidden 12 so that ``dot`` attention applies."""
    torch.manual_seed(0)
    cls = CELLS[cell]
    return Seq2SeqNetwork(
        SOURCE_VOCAB,
        TARGET_VOCAB,
        PAD_INDEX,
        encoder=lambda size: GRUEncoder(size, hidden_size=6, bidirectional=True),
        decoder=lambda size: cls(
            size, hidden_size=12, num_layers=layers, bidirectional=False, dropout=dropout
        ),
        attention=attention,
        embedding_dim=10,
        attention_hidden_size=9,
        attentional_size=14,
        input_feeding=False,
        bridge=bridge,
        dropout=dropout,
        embedding_dropout=dropout,
    )


def batch() -> tuple[torch.Tensor, ...]:
    """Ragged sources and targets shaped as the datamodule makes them: ``<s> w… </s> <pad>…``."""
    generator = torch.Generator().manual_seed(1)
    source_lengths = torch.tensor([7, 3, 5, 1])
    source = torch.randint(4, SOURCE_VOCAB, (4, 7), generator=generator)
    source[torch.arange(7).unsqueeze(0) >= source_lengths.unsqueeze(1)] = PAD_INDEX
    words = torch.tensor([6, 2, 4, 0])  # subwords per target sentence, one empty
    target = torch.randint(4, TARGET_VOCAB, (4, 8), generator=generator)
    positions = torch.arange(8).unsqueeze(0)
    target[:, 0] = BOS_INDEX
    target[positions == words.unsqueeze(1) + 1] = EOS_INDEX
    target[positions > words.unsqueeze(1) + 1] = PAD_INDEX
    return source, source_lengths, target[:, :-1].clone(), target[:, 1:].clone()


def loss_of(logits: torch.Tensor, target_out: torch.Tensor) -> torch.Tensor:
    """The translation task's loss: padding ignored, label smoothing on."""
    return F.cross_entropy(
        logits.reshape(-1, TARGET_VOCAB), target_out.reshape(-1), ignore_index=PAD_INDEX, label_smoothing=0.1
    )


CASES = [
    (cell, layers, attention, bridge)
    for cell, layers, attention, bridge in itertools.product(
        ["rnn", "gru", "lstm"], [1, 2], ["additive", "dot", "general"], ["linear", "zero"]
    )
] + [("elman", 2, "additive", "linear")]


@pytest.mark.parametrize(("cell", "layers", "attention", "bridge"), CASES)
def test_fused_logits_equal_the_step_loop_everywhere(cell: str, layers: int, attention: str, bridge: str):
    """Eval mode: same logits at every position, padding positions included."""
    net = network(cell, layers, attention, bridge).eval()
    source, source_lengths, target_in, _ = batch()
    with torch.no_grad():
        fused = net(source, source_lengths, target_in)
        loop = net(source, source_lengths, target_in, step_loop=True)
    assert fused.shape == loop.shape == (4, 7, TARGET_VOCAB)
    torch.testing.assert_close(fused, loop, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("cell", "layers", "attention", "bridge"), CASES)
def test_fused_gradients_equal_the_step_loop(cell: str, layers: int, attention: str, bridge: str):
    """Train mode with every dropout 0: same loss and same gradient for every parameter."""
    net = network(cell, layers, attention, bridge, dropout=0.0).train()
    source, source_lengths, target_in, target_out = batch()
    grads = []
    for step_loop in (False, True):
        net.zero_grad()
        loss = loss_of(net(source, source_lengths, target_in, step_loop=step_loop), target_out)
        loss.backward()
        grads.append(
            (loss.detach(), {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
        )
    (fused_loss, fused), (loop_loss, loop) = grads
    torch.testing.assert_close(fused_loss, loop_loss, atol=1e-6, rtol=1e-6)
    assert fused.keys() == loop.keys()
    assert any(name.startswith("decoder.") for name in fused)
    for name in fused:
        torch.testing.assert_close(fused[name], loop[name], atol=1e-5, rtol=1e-4, msg=name)


def test_fused_path_is_taken_only_without_input_feeding_or_sampling(monkeypatch: pytest.MonkeyPatch):
    """The step loop (``attend``) runs for input feeding and scheduled sampling, and nowhere else."""
    source, source_lengths, target_in, _ = batch()
    calls = []

    def counting(net: Seq2SeqNetwork):
        original = net.attend

        def attend(*args, **kwargs):
            calls.append(1)
            return original(*args, **kwargs)

        monkeypatch.setattr(net, "attend", attend)
        return net

    fused = counting(network("gru", 1, "general", "linear"))
    for mode in (fused.train, fused.eval):
        mode()
        fused(source, source_lengths, target_in)
    assert calls == []
    fused(source, source_lengths, target_in, step_loop=True)
    assert len(calls) == target_in.size(1)

    calls.clear()
    torch.manual_seed(0)
    feeding = Seq2SeqNetwork(
        SOURCE_VOCAB,
        TARGET_VOCAB,
        PAD_INDEX,
        encoder=lambda size: GRUEncoder(size, hidden_size=6),
        decoder=lambda size: GRUEncoder(size, hidden_size=12, bidirectional=False),
        embedding_dim=10,
        attentional_size=14,
        input_feeding=True,
    )
    counting(feeding)(source, source_lengths, target_in)
    assert len(calls) == target_in.size(1)

    calls.clear()
    sampled = counting(network("gru", 1, "general", "linear"))
    sampled.scheduled_sampling = 0.5
    sampled.train()(source, source_lengths, target_in)
    assert len(calls) == target_in.size(1)  # training with scheduled sampling: the loop
    calls.clear()
    sampled.eval()(source, source_lengths, target_in)
    assert calls == []  # validation loss: no sampling, so the fused path


def test_fused_training_with_dropout_gives_a_finite_loss_and_gradients():
    """Train mode with dropout on (masks differ from the loop's, so only shapes and finiteness)."""
    net = network("lstm", 2, "additive", "linear", dropout=0.3).train()
    source, source_lengths, target_in, target_out = batch()
    logits = net(source, source_lengths, target_in)
    assert logits.shape == (4, 7, TARGET_VOCAB)
    loss = loss_of(logits, target_out)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_batched_attention_equals_one_query_at_a_time(kind: str):
    """A (B, T, Q) query gives, at each t, what the (B, Q) query at t gives; padding gets weight 0."""
    torch.manual_seed(0)
    attention = Attention(6, 6, kind, hidden_size=5)
    keys = torch.randn(2, 4, 6)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    queries = torch.randn(2, 3, 6)
    context, weights = attention(queries, keys, mask)
    assert context.shape == (2, 3, 6) and weights.shape == (2, 3, 4)
    assert torch.all(weights[0, :, 2:] == 0)
    for t in range(3):
        step_context, step_weights = attention(queries[:, t], keys, mask)
        torch.testing.assert_close(context[:, t], step_context, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(weights[:, t], step_weights, atol=1e-6, rtol=1e-6)
