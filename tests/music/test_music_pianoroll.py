"""Piano rolls: frames ↔ (T, 88) tensors ↔ notes."""

from __future__ import annotations

import pytest
import torch

from seqtasks.music.pianoroll import (
    NUM_KEYS,
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
