"""The music inference API: seeded generation, primers, min_steps, and the checkpoints of earlier layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqtasks.checkpoints import load_task
from seqtasks.encoders import ElmanEncoder, GRUEncoder
from seqtasks.inference.music import Composer
from seqtasks.music.events import build_vocabulary
from seqtasks.music.midi import notes_to_midi
from seqtasks.networks.music import EventNetwork, PianoRollNetwork
from seqtasks.tasks.music import EventComposer, PianoRollComposer

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


def gru(input_size: int) -> GRUEncoder:
    return GRUEncoder(input_size, hidden_size=16, bidirectional=False)


def event_composer(seed: int = 0) -> Composer:
    torch.manual_seed(seed)
    network = lambda vocab_size, pad_index: EventNetwork(vocab_size, pad_index, gru, embedding_dim=8)  # noqa: E731
    task = EventComposer(network, vocab_size=len(build_vocabulary()))
    task.artefacts = {"vocabulary": build_vocabulary(), "steps_per_quarter": 4}
    return Composer(task)


def test_event_generation_is_seeded() -> None:
    composer = event_composer()
    a = composer.generate(steps=200, seed=1, temperature=1.0)
    assert a == composer.generate(steps=200, seed=1, temperature=1.0)
    assert notes_to_midi(a, 4) == notes_to_midi(composer.generate(steps=200, seed=1), 4)
    assert a != composer.generate(steps=200, seed=2)
    assert len(a) > 0


def test_event_generation_keeps_the_primer_and_steps_the_encoder() -> None:
    composer = event_composer()
    primer = [(60, 0, 4), (64, 4, 8)]
    notes = composer.generate(steps=50, seed=3, top_k=10, top_p=0.9, primer=primer)
    assert set(primer) <= set(notes)  # the primer's notes end before anything sampled begins
    assert all(start >= 8 for _, start, _ in set(notes) - set(primer))


def test_generation_leaves_a_training_network_in_training_mode() -> None:
    composer = event_composer()
    composer.network.train()
    composer.generate(steps=5, seed=0)
    assert composer.network.training


def test_piano_roll_generation_is_seeded_and_continues_the_primer() -> None:
    torch.manual_seed(0)
    task = PianoRollComposer(lambda keys: PianoRollNetwork(keys, lambda n: ElmanEncoder(n, hidden_size=8)))
    composer = Composer(task)
    primer = [(60, 0, 2), (67, 1, 3)]
    a = composer.generate(steps=16, seed=5, primer=primer, top_k=4)
    assert a == composer.generate(steps=16, seed=5, primer=primer, top_k=4)
    assert a != composer.generate(steps=16, seed=6, primer=primer, top_k=4)
    assert {(60, 0), (67, 1)} <= {(p, s) for p, s, _ in a}
    assert max(end for _, _, end in a) <= 3 + 16
    with pytest.raises(ValueError, match="top_p"):
        composer.generate(steps=2, top_p=0.9)


def test_min_steps_holds_back_the_end_token() -> None:
    composer = event_composer()
    with torch.no_grad():
        composer.network.head.bias[composer.codec.eos_id] = 50.0  # the model wants to stop at once
    assert composer.generate(steps=100, seed=0) == []
    held = composer.generate(steps=100, seed=0, min_steps=60)
    assert held  # 60 tokens were sampled before <eos> was allowed


def test_a_task_that_makes_no_music_is_refused() -> None:
    class NotMusic:
        def __init__(self) -> None:
            self.network, self.artefacts = torch.nn.Linear(2, 2), {}

    with pytest.raises(TypeError, match="does not generate music"):
        Composer(NotMusic())


# ---- checkpoints of the layout before the networks moved out of the tasks (tests/fixtures/legacy) -------
@pytest.mark.parametrize(
    ("name", "cls", "arguments"),
    [
        ("pianoroll", PianoRollComposer, ("rolls", "lengths")),
        ("events", EventComposer, ("inputs", "lengths")),
    ],
)
def test_legacy_checkpoints_generate_the_same_notes_and_logits(
    name: str, cls: type, arguments: tuple
) -> None:
    expected = torch.load(LEGACY / "expected.pt", weights_only=True)[name]
    task = load_task(LEGACY / f"{name}.ckpt")  # weights_only, upgraded from format 1 in memory
    assert type(task) is cls and not task.training
    composer = Composer.from_checkpoint(LEGACY / f"{name}.ckpt")
    settings = [key for key in expected if key.startswith("generate")]
    assert len(settings) == 2
    for key in settings:
        notes = composer.generate(**expected[key])
        assert [list(note) for note in notes] == expected[key.replace("generate", "notes")], key
    with torch.no_grad():
        logits = task(*(expected[a] for a in arguments))
    assert torch.equal(logits, expected["logits"])
    assert task.artefacts.keys() == ({"steps_per_quarter", "dataset"} if name == "pianoroll" else
                                     {"vocabulary", "steps_per_quarter"})  # fmt: skip
