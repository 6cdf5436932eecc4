"""Piano rolls: frames ↔ (T, 88) tensors ↔ notes, and the piano-roll codec."""

from __future__ import annotations

import pytest
import torch

from seqtasks.music.pianoroll import (
    NUM_KEYS,
    PianoRollCodec,
    frames_to_notes,
    frames_to_roll,
    normalise_notes,
    notes_to_frames,
    roll_to_frames,
)

FRAMES = [[60, 72, 79, 88], [72, 79, 88], [], [21, 108], [43]]


def test_frames_roll_round_trip_and_key_layout() -> None:
    roll = frames_to_roll(FRAMES)
    assert roll.shape == (5, NUM_KEYS)
    assert roll[0, 60 - 21] == 1 and roll[3, 0] == 1 and roll[3, 87] == 1
    assert int(roll.sum()) == sum(len(f) for f in FRAMES)
    assert roll_to_frames(roll) == FRAMES


def test_pitch_off_the_keyboard_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the 88 piano keys"):
        frames_to_roll([[60], [109]])
    with pytest.raises(ValueError, match="shape"):
        roll_to_frames(torch.zeros(3, 87))


def test_frames_notes_round_trip_reads_sustained_pitches_as_held_notes() -> None:
    notes = frames_to_notes(FRAMES)
    assert (72, 0, 2) in notes and (60, 0, 1) in notes and (43, 4, 5) in notes
    assert notes_to_frames(notes) == [*FRAMES[:-1], [43]]


def test_normalise_merges_overlaps_keeps_repeated_notes() -> None:
    notes = [(60, 0, 4), (60, 2, 6), (60, 6, 8), (62, 0, 2), (62, 0, 2)]
    assert normalise_notes(notes) == [(60, 0, 6), (62, 0, 2), (60, 6, 8)]
    with pytest.raises(ValueError, match="does not end after it starts"):
        normalise_notes([(60, 3, 3)])


def test_codec_encodes_training_pieces_and_collates_silent_padding() -> None:
    codec = PianoRollCodec(steps_per_quarter=1)
    pieces = [FRAMES, [[60], [62]]]
    encoded = [codec.encode_frames(p) for p in pieces]
    assert encoded[1] == {"keys": [39, 41], "counts": [1, 1]}
    rolls = codec.collate([e["keys"] for e in encoded], [e["counts"] for e in encoded])
    assert rolls.shape == (2, 5, NUM_KEYS)
    assert torch.equal(rolls[0], frames_to_roll(FRAMES))
    assert rolls[1, 2:].sum() == 0 and roll_to_frames(rolls[1, :2]) == [[60], [62]]


def test_codec_refuses_the_same_bad_input_in_training_and_in_a_primer() -> None:
    codec = PianoRollCodec()
    with pytest.raises(ValueError, match="frame 1 holds pitch 109, outside the 88 piano keys"):
        codec.encode_frames([[60], [109]])
    with pytest.raises(ValueError, match="holds pitch 109, outside the 88 piano keys"):
        codec.primer_roll([(109, 0, 2)])
    with pytest.raises(ValueError, match="list of frames"):
        codec.encode_frames("C E G")
    with pytest.raises(ValueError, match="no frames"):
        codec.encode_frames([])
    assert codec.primer_roll(None).shape == (0, NUM_KEYS)  # no primer: start from silence
    with pytest.raises(ValueError, match="steps_per_quarter"):
        PianoRollCodec(0)


def test_codec_decodes_primer_and_sampled_frames_into_one_piece() -> None:
    codec = PianoRollCodec()
    primer = codec.primer_roll([(60, 0, 2)])
    sampled = frames_to_roll([[60, 64], [64]])
    assert codec.decode(primer, sampled) == [(60, 0, 3), (64, 2, 4)]
