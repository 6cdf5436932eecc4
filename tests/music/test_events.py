"""Event tokens: notes ↔ ids, and music21 scores → notes."""

from __future__ import annotations

import random

import pytest

from seqtasks.music.events import ConversionError, EventCodec, build_vocabulary, score_to_notes
from seqtasks.music.pianoroll import normalise_notes


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec(build_vocabulary())


def test_vocabulary_is_plain_strings_with_pad_first(codec: EventCodec) -> None:
    vocabulary = build_vocabulary()
    assert vocabulary[0] == "<pad>" and len(vocabulary) == 3 + 88 + 88 + 16
    assert all(isinstance(t, str) for t in vocabulary)
    assert codec.pad_id == 0


def test_encode_layout(codec: EventCodec) -> None:
    notes = [(60, 0, 4), (64, 0, 2), (67, 2, 22)]
    tokens = [codec.vocabulary[i] for i in codec.encode(notes)]
    assert tokens == [
        "<bos>", "ON_60", "ON_64", "SHIFT_2", "OFF_64", "ON_67", "SHIFT_2", "OFF_60",
        "SHIFT_16", "SHIFT_2", "OFF_67", "<eos>",
    ]  # fmt: skip


def test_round_trip_random_pieces(codec: EventCodec) -> None:
    rng = random.Random(0)
    for _ in range(20):
        notes = []
        for _ in range(rng.randint(1, 40)):
            start = rng.randint(0, 100)
            notes.append((rng.randint(21, 108), start, start + rng.randint(1, 40)))
        assert codec.decode(codec.encode(notes)) == normalise_notes(notes)


def test_decode_is_total_on_arbitrary_tokens(codec: EventCodec) -> None:
    ids = [codec.index[t] for t in ["OFF_60", "ON_60", "ON_60", "SHIFT_3", "ON_60", "SHIFT_1", "ON_62"]]
    # off of a silent pitch ignored; a restrike of zero length dropped; open notes stop at the end
    assert codec.decode(ids) == [(60, 0, 3), (60, 3, 4)]
    assert codec.decode([codec.bos_id, codec.eos_id, codec.index["ON_60"]]) == []


def test_transpose(codec: EventCodec) -> None:
    ids = codec.encode([(60, 0, 4), (107, 0, 1)])
    assert codec.decode(codec.transpose(ids, 1)) == [(61, 0, 4), (108, 0, 1)]
    assert codec.transpose(ids, 2) is None


def test_chorale_to_events_round_trip(codec: EventCodec) -> None:
    from music21 import corpus

    score = corpus.parse("bach/bwv66.6")
    notes, stats = score_to_notes(score)
    # an independent reading: every part's notes, ties joined, in 16th steps
    expected = []
    for part in score.stripTies(inPlace=False).parts:
        for n in part.flatten().notes:
            for p in n.pitches:
                expected.append((int(p.midi), round(n.offset * 4), round((n.offset + n.quarterLength) * 4)))
    assert notes == normalise_notes(expected)
    assert stats["notes"] == len(notes) > 100
    assert codec.decode(codec.encode(notes)) == notes
    assert max(end for _, _, end in notes) == round(score.highestTime * 4)


def test_off_grid_and_empty_scores_are_refused_with_a_reason() -> None:
    from music21 import note, stream

    part = stream.Part()
    part.append(note.Note("C4", quarterLength=1 / 3))
    with pytest.raises(ConversionError, match="off the 1/16-note grid"):
        score_to_notes(stream.Score([part]))
    with pytest.raises(ConversionError, match="no notes"):
        score_to_notes(stream.Score([stream.Part()]))
