"""A primer MIDI file that is damaged, empty or drums-only is reported, naming the file — never a bare
``EOFError`` / ``OSError: running status``, never silently ignored."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import pytest

from seqtasks.cli import main
from seqtasks.data.errors import DataError
from seqtasks.inference.music import Composer
from seqtasks.music.midi import midi_to_notes, notes_to_midi

EVENTS = str(Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "events.ckpt")
NOTES = [(60, 0, 4), (64, 4, 8), (67, 8, 12)]


def _midi(messages: list[mido.Message]) -> bytes:
    midi = mido.MidiFile(ticks_per_beat=96)
    midi.tracks.append(mido.MidiTrack(messages))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


DRUMS = [
    mido.Message("note_on", channel=9, note=36, velocity=90, time=0),
    mido.Message("note_off", channel=9, note=36, time=96),
    mido.Message("note_on", channel=9, note=38, velocity=90, time=0),
    mido.Message("note_off", channel=9, note=38, time=96),
]


@pytest.mark.parametrize(
    "content",
    [notes_to_midi(NOTES, 4)[:30], b"garbage bytes, not a MIDI file", b"", b"MThd\x00\x00\x00\x06\x00\x01"],
    ids=["truncated", "garbage", "empty-file", "header-only"],
)
def test_a_corrupt_primer_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "primer.mid"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^{path}: not a (readable|usable) MIDI file"):
        midi_to_notes(path, 4)


def test_drum_notes_left_out_are_reported() -> None:
    piano = [
        mido.Message("note_on", note=60, velocity=90, time=0),
        mido.Message("note_off", note=60, time=96),
    ]
    notes, warnings = midi_to_notes(_midi(piano + DRUMS), 4)
    assert notes == [(60, 0, 4)]
    assert "2 drum note(s) (channel 10) were left out" in warnings


@pytest.mark.parametrize("messages", [DRUMS, []], ids=["drums-only", "no-notes"])
def test_a_primer_with_nothing_to_continue_is_refused(tmp_path: Path, messages: list[mido.Message]) -> None:
    path = tmp_path / "primer.mid"
    path.write_bytes(_midi(messages))
    composer = Composer.from_checkpoint(EVENTS)
    expected = "2 drum note" if messages else "give a primer with notes"
    with pytest.raises(DataError, match=rf"^{path}: the primer holds no notes to continue.*{expected}"):
        composer.read_primer(path)


def test_generate_with_a_corrupt_primer_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "primer.mid"
    path.write_bytes(notes_to_midi(NOTES, 4)[:30])
    with pytest.raises(
        SystemExit, match=rf"seqtasks generate: --primer: {path}: not a readable MIDI"
    ) as error:
        main(["generate", "--ckpt", EVENTS, "--out", str(tmp_path / "out.mid"), "--primer", str(path)])
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out.mid").exists()
