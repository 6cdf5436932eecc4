"""The music networks as plain nn.Modules (no Lightning): NLL, unidirectional only, steps equal forward."""

from __future__ import annotations

import pytest
import torch

from seqtasks.encoders import GRUEncoder, LSTMEncoder
from seqtasks.networks.music import EventNetwork, PianoRollNetwork


def gru(input_size: int) -> GRUEncoder:
    return GRUEncoder(input_size, hidden_size=16, bidirectional=False)


def test_piano_roll_nll_counts_every_real_frame_once_and_ignores_padding() -> None:
    torch.manual_seed(0)
    network = PianoRollNetwork(88, encoder=gru, input_dim=12).eval()
    pieces = [(torch.rand(5, 88) < 0.1).float(), (torch.rand(3, 88) < 0.1).float()]
    rolls = torch.zeros(2, 5, 88)
    rolls[0], rolls[1, :3] = pieces[0], pieces[1]
    rolls[1, 3:] = 1.0  # garbage in the padding must not count
    nll_sum, frames, _, _ = network.nll(rolls, torch.tensor([5, 3]))
    by_hand = 0.0
    for piece in pieces:  # each piece alone, every frame predicted from the frames before it
        probs = torch.sigmoid(network(piece.unsqueeze(0), torch.tensor([len(piece)])))[0]
        by_hand += -(piece * probs.log() + (1 - piece) * (1 - probs).log()).sum().item()
    assert int(frames) == 8
    assert nll_sum.item() == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("cls", [PianoRollNetwork, EventNetwork])
def test_bidirectional_encoder_is_refused(cls) -> None:
    def bi(size: int) -> LSTMEncoder:
        return LSTMEncoder(size, hidden_size=8, bidirectional=True)

    sizes = (20, 0) if cls is EventNetwork else (88,)
    with pytest.raises(ValueError, match="unidirectional"):
        cls(*sizes, encoder=bi)


def test_plain_training_steps_without_lightning() -> None:
    torch.manual_seed(0)
    rolls_net = PianoRollNetwork(88, gru, input_dim=16, input_dropout=0.2, dropout=0.5)
    events_net = EventNetwork(30, 0, gru, embedding_dim=8)
    rolls = (torch.rand(3, 7, 88) < 0.1).float()
    tokens = torch.randint(1, 30, (3, 9))
    lengths = torch.tensor([7, 5, 2])
    for network, loss_of in (
        (rolls_net, lambda: (lambda s, n, *_: s / n)(*rolls_net.nll(rolls, lengths))),
        (events_net, lambda: (lambda s, n: s / n)(*events_net.nll(tokens[:, :-1], lengths, tokens[:, 1:]))),
    ):
        optimizer = torch.optim.AdamW(network.parameters(), lr=1e-2)
        losses = []
        for _ in range(5):
            optimizer.zero_grad()
            loss = loss_of()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        assert losses[-1] < losses[0]
        assert all(p.grad is not None for p in network.parameters() if p.requires_grad)


def test_event_steps_give_the_forward_logits() -> None:
    torch.manual_seed(0)
    network = EventNetwork(30, 0, gru, embedding_dim=8).eval()
    tokens = [1, 5, 7, 9, 3]
    with torch.no_grad():
        full = network(torch.tensor([tokens]), torch.tensor([len(tokens)]))[0]
        state = None
        for t, token in enumerate(tokens):
            out, state = network.encoder.step(network.embedding(torch.tensor([token])), state)
            assert torch.allclose(network.head(out)[0], full[t], atol=1e-6)


def test_generation_is_seeded_and_never_draws_the_banned_tokens() -> None:
    torch.manual_seed(0)
    network = EventNetwork(30, 0, gru, embedding_dim=8).eval()

    def draw(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return network.generate([1], 40, generator=generator, end=2, never=(0, 1))

    assert draw(1) == draw(1) and draw(1) != draw(2)
    assert all(t not in (0, 1) for t in draw(1)[1:])
    rolls = PianoRollNetwork(88, gru).eval()
    frames = rolls.generate(torch.zeros(2, 88), 6, top_k=3, generator=torch.Generator().manual_seed(0))
    assert frames.shape == (6, 88) and frames.sum(-1).max() <= 3
