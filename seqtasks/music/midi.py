"""Notes ↔ standard MIDI files, with mido.

Writing is deterministic: the same notes give the same bytes (one track, fixed header, tempo and
program, events ordered by time, note-offs before note-ons, then pitch), so a fixed sampling seed gives a
byte-identical file. Reading (for primers) quantises every note to the model's grid.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import mido

from seqtasks.data.errors import DataError
from seqtasks.music.pianoroll import HIGHEST_PITCH, LOWEST_PITCH, Note, normalise_notes
from seqtasks.music.plot import save_piano_roll

TICKS_PER_QUARTER = 480


def notes_to_midi(
    notes: Sequence[Note],
    steps_per_quarter: int,
    tempo_bpm: float = 90.0,
    program: int = 0,
    velocity: int = 80,
    title: str | None = None,
) -> bytes:
    """Notes on a grid of ``steps_per_quarter`` → the bytes of a type-1 MIDI file (one track)."""
    if TICKS_PER_QUARTER % steps_per_quarter:
        raise ValueError(f"steps_per_quarter must divide {TICKS_PER_QUARTER}, got {steps_per_quarter}")
    ticks = TICKS_PER_QUARTER // steps_per_quarter
    events: list[tuple[int, int, int, mido.Message]] = []
    for pitch, start, end in normalise_notes(notes):
        events.append((start * ticks, 1, pitch, mido.Message("note_on", note=pitch, velocity=velocity)))
        events.append((end * ticks, 0, pitch, mido.Message("note_off", note=pitch, velocity=0)))
    events.sort(key=lambda e: e[:3])
    track = mido.MidiTrack()
    if title:
        track.append(mido.MetaMessage("track_name", name=title, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    now = 0
    for tick, _, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_QUARTER)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def midi_to_notes(source: str | os.PathLike | bytes, steps_per_quarter: int) -> tuple[list[Note], list[str]]:
    """A MIDI file (path or bytes) → notes on a grid of ``steps_per_quarter``, and warnings.

    All tracks and channels except drums (channel 10) are read; onsets and ends are rounded to the grid,
    a note shorter than one step lasts one step, and pitches off the 88 keys are left out — each such
    change (drum notes left out included) is listed in the warnings, never silent.

    Raises:
        DataError: no such file, or bytes that are not a MIDI file mido can read (truncated, garbage),
            naming the file (``<bytes>`` for bytes) and mido's reason.
    """
    where = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    if not isinstance(source, bytes) and not os.path.isfile(where):
        raise DataError(where, "no such MIDI file")
    try:  # mido's parser raises EOFError, OSError, ValueError, KeyError...: one error naming the file
        midi = mido.MidiFile(file=io.BytesIO(source)) if isinstance(source, bytes) else mido.MidiFile(where)
        messages = list(mido.merge_tracks(midi.tracks))
    except Exception as error:
        raise DataError(where, f"not a readable MIDI file ({type(error).__name__}: {error})") from None
    if midi.ticks_per_beat <= 0:
        raise DataError(where, "not a usable MIDI file (0 ticks per beat, or SMPTE timing)")
    per_step = midi.ticks_per_beat / steps_per_quarter
    raw: list[tuple[int, float, float]] = []
    sounding: dict[tuple[int, int], list[float]] = {}
    now = 0
    drums = 0
    for message in messages:
        now += message.time
        if message.type not in ("note_on", "note_off"):
            continue
        if message.channel == 9:
            drums += message.type == "note_on" and message.velocity > 0
            continue
        key = (message.channel, message.note)
        if message.type == "note_on" and message.velocity > 0:
            sounding.setdefault(key, []).append(now)
        elif sounding.get(key):
            raw.append((message.note, sounding[key].pop(0), now))
    unfinished = sum(len(v) for v in sounding.values())
    warnings = []
    if drums:
        warnings.append(f"{drums} drum note(s) (channel 10) were left out")
    if unfinished:
        warnings.append(f"{unfinished} note(s) never switched off were left out")
    notes: list[Note] = []
    off_keys = 0
    lengthened = 0
    for pitch, start_tick, end_tick in raw:
        if not LOWEST_PITCH <= pitch <= HIGHEST_PITCH:
            off_keys += 1
            continue
        start = round(start_tick / per_step)
        end = round(end_tick / per_step)
        if end <= start:
            end = start + 1
            lengthened += 1
        notes.append((pitch, start, end))
    if off_keys:
        warnings.append(f"{off_keys} note(s) outside the 88 piano keys were left out")
    if lengthened:
        warnings.append(f"{lengthened} note(s) shorter than one grid step were lengthened to one step")
    return normalise_notes(notes), warnings


def save_piece(
    path: str | os.PathLike,
    notes: Sequence[Note],
    steps_per_quarter: int,
    tempo_bpm: float = 90.0,
    title: str = "",
    primer_steps: int = 0,
) -> tuple[str, str]:
    """Write ``path`` (MIDI) and the piano-roll PNG beside it (same name, ``.png``); return both paths."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(notes_to_midi(notes, steps_per_quarter, tempo_bpm=tempo_bpm, title=title or None))
    png = os.path.splitext(path)[0] + ".png"
    save_piano_roll(png, notes, steps_per_quarter, title=title, primer_steps=primer_steps)
    return path, png
