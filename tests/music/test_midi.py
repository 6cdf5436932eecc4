"""MIDI files: written deterministically, read back by independent parsers with exactly our notes."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import pretty_midi

from seqtasks.music.midi import midi_to_notes, notes_to_midi, save_piece

NOTES = [(60, 0, 4), (64, 0, 2), (64, 2, 3), (67, 2, 22), (21, 5, 6), (108, 6, 7)]


def read_with_pretty_midi(data: bytes, steps_per_quarter: int, bpm: float) -> list[tuple[int, int, int]]:
    midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    step = 60.0 / bpm / steps_per_quarter
    notes = [
        (n.pitch, round(n.start / step), round(n.end / step)) for inst in midi.instruments for n in inst.notes
    ]
    for inst in midi.instruments:
        for n in inst.notes:  # on the grid (the tempo is stored in whole microseconds per quarter)
            assert abs(n.start / step - round(n.start / step)) < 1e-4
    return sorted(notes, key=lambda n: (n[1], n[0], n[2]))


def test_pretty_midi_reads_back_exactly_the_notes() -> None:
    for steps_per_quarter, bpm in ((4, 90.0), (1, 120.0)):
        data = notes_to_midi(NOTES, steps_per_quarter, tempo_bpm=bpm)
        assert read_with_pretty_midi(data, steps_per_quarter, bpm) == sorted(
            NOTES, key=lambda n: (n[1], n[0], n[2])
        )


def test_mido_reads_a_valid_file_and_bytes_are_deterministic() -> None:
    data = notes_to_midi(NOTES, 4)
    assert data == notes_to_midi(list(reversed(NOTES)), 4)
    midi = mido.MidiFile(file=io.BytesIO(data))
    ons = [m for m in midi.tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert len(ons) == len(NOTES)
    notes, warnings = midi_to_notes(data, 4)
    assert notes == sorted(NOTES, key=lambda n: (n[1], n[0], n[2])) and warnings == []


def test_primer_reading_quantises_and_reports_changes() -> None:
    midi = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    track += [
        mido.Message("note_on", note=60, velocity=90, time=0),
        mido.Message("note_off", note=60, time=97),  # one tick late: rounds to the grid
        mido.Message("note_on", note=10, velocity=90, time=0),  # below the piano's keys
        mido.Message("note_on", note=62, velocity=90, time=0),
        mido.Message("note_on", note=62, velocity=0, time=5),  # shorter than a step
        mido.Message("note_off", note=10, time=0),
    ]
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    notes, warnings = midi_to_notes(buffer.getvalue(), 4)
    assert notes == [(60, 0, 4), (62, 4, 5)]
    assert any("outside the 88 piano keys" in w for w in warnings)
    assert any("lengthened" in w for w in warnings)


def test_save_piece_writes_midi_and_png(tmp_path) -> None:
    midi, png = save_piece(tmp_path / "out" / "piece.mid", NOTES, 4, title="test", primer_steps=2)
    assert Path(midi).read_bytes()[:4] == b"MThd"
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
