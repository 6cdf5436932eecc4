"""A folder of the user's own MIDI files → piano-roll pieces, with a report of everything dropped or changed.

Each file is read with mido, track by track. The track rule (``programs``: the General MIDI programs to
keep) and the drums policy (``drums``: leave channel-10 notes out, or keep them as pitches) are settings;
onsets and ends are quantised to a grid of ``steps_per_quarter`` steps per quarter note. Nothing is
dropped or changed silently: every file and track that is left out, and every change made to a kept file
(notes off the grid, outside the 88 keys, shorter than a step, drum notes left out), is one entry of the
report with its reason and count. The reasons:

* ``unreadable``: mido cannot parse the file (truncated, not MIDI, SMPTE timing).
* ``no notes``: the file (or track) holds no note that sounds.
* ``drums only``: every note is a drum note (channel 10) and ``drums`` is ``drop``.
* ``program not selected``: a track whose program is not in ``programs``.
* ``off-grid``: note onsets or ends more than ``grid_tolerance`` of a step from the grid — quantised
  (``off_grid: quantise``, a change) or the whole file left out (``off_grid: drop``).
* ``out of range``: notes outside the 88 piano keys — left out (``out_of_range: drop``) or moved by
  octaves into range (``out_of_range: octave``).
* ``too short``: notes shorter than a step once quantised, lengthened to one step.
* ``duplicate``: the same quantised notes as a file read before it (files are read in sorted order).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido

from seqtasks.music.pianoroll import HIGHEST_PITCH, LOWEST_PITCH, Note, normalise_notes, notes_to_frames

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
DRUMS_POLICIES = ("drop", "keep")
OFF_GRID_POLICIES = ("quantise", "drop")
OUT_OF_RANGE_POLICIES = ("drop", "octave")


@dataclass(frozen=True)
class ReadSettings:
    """How a MIDI file becomes a piano roll (see the module docstring for each policy)."""

    steps_per_quarter: int = 4
    programs: tuple[int, ...] | None = None
    drums: str = "drop"
    off_grid: str = "quantise"
    grid_tolerance: float = 0.25
    out_of_range: str = "drop"

    def __post_init__(self) -> None:
        if self.steps_per_quarter < 1:
            raise ValueError(f"steps_per_quarter must be at least 1, got {self.steps_per_quarter}")
        for name, value, allowed in (
            ("drums", self.drums, DRUMS_POLICIES),
            ("off_grid", self.off_grid, OFF_GRID_POLICIES),
            ("out_of_range", self.out_of_range, OUT_OF_RANGE_POLICIES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        if not 0.0 <= self.grid_tolerance < 0.5:
            raise ValueError(f"grid_tolerance must be in [0, 0.5), got {self.grid_tolerance}")
        if self.programs is not None and any(not 0 <= p <= 127 for p in self.programs):
            raise ValueError(f"programs must be General MIDI programs 0–127, got {list(self.programs)}")


@dataclass
class PieceReading:
    """One file read: its notes (None when the file is left out) and the report entries about it."""

    file: str
    notes: list[Note] | None
    entries: list[dict[str, Any]] = field(default_factory=list)

    def note(self, action: str, reason: str, detail: str, count: int = 1, track: str | None = None) -> None:
        entry = {"file": self.file, "action": action, "reason": reason, "detail": detail, "count": count}
        if track is not None:
            entry["track"] = track
        self.entries.append(entry)


def midi_files(folder: str | os.PathLike) -> list[str]:
    """The MIDI files under ``folder`` (recursively), as sorted paths relative to it."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of MIDI files")
    found = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES]
    return sorted(p.relative_to(root).as_posix() for p in found)


def _track_label(index: int, track: mido.MidiTrack) -> str:
    return f"track {index}" + (f" ({track.name.strip()})" if track.name and track.name.strip() else "")


def read_piece(path: str | os.PathLike, settings: ReadSettings, label: str | None = None) -> PieceReading:
    """Read one MIDI file under ``settings``; never raises for a bad file (it is reported as unreadable)."""
    reading = PieceReading(label or os.fspath(path), None)
    try:  # mido raises EOFError, OSError, ValueError, KeyError, IndexError...: all mean "cannot read it"
        midi = mido.MidiFile(os.fspath(path))
        tracks = [list(track) for track in midi.tracks]
    except Exception as error:
        reading.note("dropped", "unreadable", f"{type(error).__name__}: {error}")
        return reading
    if midi.ticks_per_beat <= 0:
        reading.note("dropped", "unreadable", "SMPTE timing (no ticks per quarter note)")
        return reading
    if midi.type == 2:
        reading.note("changed", "type 2", "independent sequences read as if simultaneous")
    per_step = midi.ticks_per_beat / settings.steps_per_quarter
    raw: list[tuple[int, int, int]] = []  # (pitch, start tick, end tick)
    any_drums = any_pitched = False
    programs = [0] * 16  # the program of each channel (shared by the tracks of a type-1 file)
    for index, track in enumerate(midi.tracks):
        label_track = _track_label(index, track)
        now = 0
        sounding: dict[tuple[int, int], list[int]] = {}
        pitched: list[tuple[int, int, int, int]] = []  # (pitch, start, end, program)
        drums: list[tuple[int, int, int]] = []
        unfinished = 0
        for message in tracks[index]:
            now += message.time
            if message.type == "program_change":
                programs[message.channel] = message.program
            if message.type not in ("note_on", "note_off"):
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                sounding.setdefault(key, []).append(now)
            elif sounding.get(key):
                start = sounding[key].pop(0)
                if message.channel == 9:
                    drums.append((message.note, start, now))
                else:
                    pitched.append((message.note, start, now, programs[message.channel]))
        unfinished = sum(len(v) for v in sounding.values())
        if unfinished:
            reading.note(
                "changed", "unfinished", "note(s) never switched off left out", unfinished, label_track
            )
        if not pitched and not drums:
            continue  # a track of tempo, names, controllers: nothing to drop
        any_drums |= bool(drums)
        any_pitched |= bool(pitched)
        had_pitched = bool(pitched)
        if settings.programs is not None and pitched:
            chosen = [n for n in pitched if n[3] in settings.programs]
            left = len(pitched) - len(chosen)
            if left:
                skipped_programs = sorted({n[3] for n in pitched if n[3] not in settings.programs})
                action = "dropped" if not chosen and not (drums and settings.drums == "keep") else "changed"
                reading.note(
                    action,
                    "program not selected",
                    f"{left} note(s) of program(s) {skipped_programs} left out",
                    left,
                    label_track,
                )
            pitched = chosen
        if drums and settings.drums == "drop":
            if pitched or had_pitched:
                reading.note(
                    "changed", "drums", "drum note(s) (channel 10) left out", len(drums), label_track
                )
            else:
                reading.note(
                    "dropped", "drums only", "every note is a drum note (channel 10)", 1, label_track
                )
            drums = []
        raw.extend((p, s, e) for p, s, e, _ in pitched)
        raw.extend(drums)
    if not raw:
        if any_drums and not any_pitched:
            reading.note("dropped", "drums only", "every note of the file is a drum note (channel 10)")
        elif any_pitched:
            reading.note("dropped", "no notes", "no note left after the track rule (programs)")
        else:
            reading.note("dropped", "no notes", "the file holds no note that sounds")
        return reading
    notes: list[Note] = []
    off_grid = out_of_range = moved = lengthened = 0
    tolerance = settings.grid_tolerance
    for pitch, start_tick, end_tick in raw:
        start_exact, end_exact = start_tick / per_step, end_tick / per_step
        start, end = round(start_exact), round(end_exact)
        if abs(start_exact - start) > tolerance or abs(end_exact - end) > tolerance:
            off_grid += 1
        if not LOWEST_PITCH <= pitch <= HIGHEST_PITCH:
            if settings.out_of_range == "drop":
                out_of_range += 1
                continue
            while pitch < LOWEST_PITCH:
                pitch += 12
            while pitch > HIGHEST_PITCH:
                pitch -= 12
            moved += 1
        if end <= start:
            end = start + 1
            lengthened += 1
        notes.append((pitch, start, end))
    grid = f"{settings.steps_per_quarter}-steps-per-quarter"
    if off_grid and settings.off_grid == "drop":
        reading.note(
            "dropped", "off-grid", f"{off_grid} note(s) more than {tolerance} step off the {grid} grid"
        )
        return reading
    if off_grid:
        reading.note("changed", "off-grid", f"note(s) quantised to the {grid} grid", off_grid)
    if out_of_range:
        reading.note("changed", "out of range", "note(s) outside the 88 piano keys left out", out_of_range)
    if moved:
        reading.note("changed", "out of range", "note(s) moved by octaves into the 88 piano keys", moved)
    if lengthened:
        reading.note("changed", "too short", "note(s) shorter than one step lengthened to one", lengthened)
    notes = normalise_notes(notes)
    if not notes:
        reading.note("dropped", "out of range", "no note inside the 88 piano keys")
        return reading
    offset = min(start for _, start, _ in notes)  # leading silence carries nothing to learn
    reading.notes = [(p, s - offset, e - offset) for p, s, e in notes]
    return reading


def read_folder(folder: str | os.PathLike, settings: ReadSettings) -> tuple[list[dict[str, Any]], list[dict]]:
    """Every MIDI file of ``folder``: ``(pieces, report)``.

    ``pieces`` are ``{"file", "frames", "notes"}`` of the files kept; ``report`` holds one entry per file or
    track dropped and per change made, each ``{"file", "action", "reason", "detail", "count"[, "track"]}``.
    """
    pieces: list[dict[str, Any]] = []
    report: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for name in midi_files(folder):
        reading = read_piece(Path(folder) / name, settings, label=name)
        report.extend(reading.entries)
        if reading.notes is None:
            continue
        digest = hashlib.sha1(repr(reading.notes).encode()).hexdigest()
        if digest in seen:
            report.append(
                {
                    "file": name,
                    "action": "dropped",
                    "reason": "duplicate",
                    "detail": f"the same notes as {seen[digest]}",
                    "count": 1,
                }
            )
            continue
        seen[digest] = name
        pieces.append({"file": name, "frames": notes_to_frames(reading.notes), "notes": len(reading.notes)})
    return pieces, report


def summarise(report: list[dict[str, Any]]) -> dict[str, int]:
    """Counts by kind and reason: ``"dropped file/<reason>"`` and ``"dropped track/<reason>"`` count files
    and tracks left out, ``"changed notes/<reason>"`` the notes changed (or left out) in kept files."""
    counts: Counter[str] = Counter()
    for entry in report:
        level = "track" if "track" in entry and entry["action"] == "dropped" else "file"
        key = (
            f"{entry['action']} {level}/{entry['reason']}"
            if entry["action"] == "dropped"
            else (f"changed notes/{entry['reason']}")
        )
        counts[key] += 1 if entry["action"] == "dropped" else int(entry["count"])
    return dict(sorted(counts.items()))
