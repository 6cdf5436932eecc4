"""The music models: exact NLL per time step, frame accuracy, unidirectional only, seeded generation."""

from __future__ import annotations

import math

import pytest
import torch

from seqtasks.encoders import ElmanRNNEncoder, GRUEncoder, LSTMEncoder
from seqtasks.music.events import build_vocabulary
from seqtasks.music.metrics import FrameAccuracy, NLLPerStep
from seqtasks.music.midi import notes_to_midi
from seqtasks.tasks.music import EventLanguageModel, PianoRollModel


def gru(input_size: int) -> GRUEncoder:
    return GRUEncoder(input_size, hidden_size=16, bidirectional=False)


def event_model(seed: int = 0) -> EventLanguageModel:
    torch.manual_seed(seed)
    model = EventLanguageModel(vocab_size=len(build_vocabulary()), encoder=gru, embedding_dim=8)
    model.artefacts = {"vocabulary": build_vocabulary(), "steps_per_quarter": 4}
    return model


def test_nll_metric_equals_a_hand_computation() -> None:
    # two pieces of 2 and 1 frames over 2 keys; probabilities given directly
    probs = [[[0.9, 0.2], [0.5, 0.5]], [[0.1, 0.7]]]
    targets = [[[1, 0], [1, 1]], [[0, 0]]]
    by_hand = 0.0
    for piece_p, piece_t in zip(probs, targets, strict=True):
        for frame_p, frame_t in zip(piece_p, piece_t, strict=True):
            by_hand -= sum(math.log(p if t else 1 - p) for p, t in zip(frame_p, frame_t, strict=True))
    by_hand /= 3  # three time steps, each counted once
    metric = NLLPerStep()
    for piece_p, piece_t in zip(probs, targets, strict=True):  # one batch per piece: sums, not means of means
        p, t = torch.tensor(piece_p), torch.tensor(piece_t, dtype=torch.float)
        nll = torch.nn.functional.binary_cross_entropy(p, t, reduction="sum")
        metric.update(nll, len(piece_p))
    assert metric.compute().item() == pytest.approx(by_hand, rel=1e-6)


def test_frame_accuracy_is_tp_over_tp_fp_fn() -> None:
    metric = FrameAccuracy()
    probs = torch.tensor([[[0.9, 0.6, 0.1], [0.2, 0.8, 0.7]]])
    targets = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]])
    metric.update(probs, targets, mask=torch.tensor([[True, True]]))
    metric.update(torch.ones(1, 1, 3), torch.zeros(1, 1, 3), mask=torch.tensor([[False]]))  # padding: ignored
    # TP = 3 (k0 f0, k1 f1, k2 f1), FP = 1 (k1 f0), FN = 1 (k2 f0)
    assert metric.compute().item() == pytest.approx(3 / 5)


def test_piano_roll_nll_counts_every_real_frame_once_and_ignores_padding() -> None:
    torch.manual_seed(0)
    model = PianoRollModel(encoder=gru, input_dim=12).eval()
    pieces = [(torch.rand(5, 88) < 0.1).float(), (torch.rand(3, 88) < 0.1).float()]
    rolls = torch.zeros(2, 5, 88)
    rolls[0], rolls[1, :3] = pieces[0], pieces[1]
    rolls[1, 3:] = 1.0  # garbage in the padding must not count
    nll_sum, frames, _, _ = model._nll({"rolls": rolls, "lengths": torch.tensor([5, 3])})
    by_hand = 0.0
    for piece in pieces:  # each piece alone, every frame predicted from the frames before it
        probs = torch.sigmoid(model(piece.unsqueeze(0), torch.tensor([len(piece)])))[0]
        by_hand += -(piece * probs.log() + (1 - piece) * (1 - probs).log()).sum().item()
    assert int(frames) == 8
    assert nll_sum.item() == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("cls", [PianoRollModel, EventLanguageModel])
def test_bidirectional_encoder_is_refused(cls) -> None:
    def bi(size: int) -> LSTMEncoder:
        return LSTMEncoder(size, hidden_size=8, bidirectional=True)

    kwargs = {"vocab_size": 20} if cls is EventLanguageModel else {}
    with pytest.raises(ValueError, match="unidirectional"):
        cls(encoder=bi, **kwargs)


def test_event_generation_is_seeded() -> None:
    model = event_model()
    a = model.generate(steps=200, seed=1, temperature=1.0)
    assert a == model.generate(steps=200, seed=1, temperature=1.0)
    assert notes_to_midi(a, 4) == notes_to_midi(model.generate(steps=200, seed=1), 4)
    assert a != model.generate(steps=200, seed=2)
    assert len(a) > 0


def test_event_generation_keeps_the_primer_and_steps_the_encoder() -> None:
    model = event_model()
    primer = [(60, 0, 4), (64, 4, 8)]
    notes = model.generate(steps=50, seed=3, top_k=10, top_p=0.9, primer=primer)
    assert set(primer) <= set(notes)  # the primer's notes end before anything sampled begins
    assert all(start >= 8 for _, start, _ in set(notes) - set(primer))


def test_piano_roll_generation_is_seeded_and_continues_the_primer() -> None:
    torch.manual_seed(0)
    model = PianoRollModel(encoder=lambda n: ElmanRNNEncoder(n, hidden_size=8), input_dim=None)
    primer = [(60, 0, 2), (67, 1, 3)]
    a = model.generate(steps=16, seed=5, primer=primer, top_k=4)
    assert a == model.generate(steps=16, seed=5, primer=primer, top_k=4)
    assert a != model.generate(steps=16, seed=6, primer=primer, top_k=4)
    assert {(60, 0), (67, 1)} <= {(p, s) for p, s, _ in a}
    assert max(end for _, _, end in a) <= 3 + 16
    with pytest.raises(ValueError, match="top_p"):
        model.generate(steps=2, top_p=0.9)


def test_min_steps_holds_back_the_end_token() -> None:
    model = event_model()
    with torch.no_grad():
        model.head.bias[model.codec.eos_id] = 50.0  # the model wants to stop at once
    assert model.generate(steps=100, seed=0) == []
    held = model.generate(steps=100, seed=0, min_steps=60)
    assert held  # 60 tokens were sampled before <eos> was allowed
