"""Event tokens for polyphonic music: note-on / note-off / time-shift on a 16th-note grid.

A piece becomes ``<bos> … <eos>`` where, at each time at which something happens, the notes that end
there are switched off (ascending pitch), then the notes that begin there are switched on (ascending
pitch), and ``SHIFT_k`` tokens advance the clock by ``k`` steps (``k ≤ max_shift``; longer gaps take
several). The vocabulary is a plain list of strings, so it travels in a checkpoint as data:

    <pad> <bos> <eos> ON_21 … ON_108 OFF_21 … OFF_108 SHIFT_1 … SHIFT_16

:func:`score_to_notes` turns a music21 score into notes on that grid and raises :class:`ConversionError`
with the reason when it cannot (a note off the grid, a pitch off the keyboard, no notes at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from seqtasks.music.pianoroll import HIGHEST_PITCH, LOWEST_PITCH, Note, normalise_notes

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
STEPS_PER_QUARTER = 4
MAX_SHIFT = 16


class ConversionError(ValueError):
    """A piece that cannot be turned into events; the message is the reason, for the conversion report."""


def build_vocabulary(
    lowest: int = LOWEST_PITCH, highest: int = HIGHEST_PITCH, max_shift: int = MAX_SHIFT
) -> list[str]:
    """The event vocabulary as a plain list (index = token id); ``<pad>`` is id 0."""
    pitches = range(lowest, highest + 1)
    return (
        [PAD, BOS, EOS]
        + [f"ON_{p}" for p in pitches]
        + [f"OFF_{p}" for p in pitches]
        + [f"SHIFT_{k}" for k in range(1, max_shift + 1)]
    )


class EventCodec:
    """Notes ↔ token ids over a vocabulary list made by :func:`build_vocabulary`."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = list(vocabulary)
        self.index = {token: i for i, token in enumerate(self.vocabulary)}
        for special in (PAD, BOS, EOS):
            if special not in self.index:
                raise ValueError(f"the event vocabulary lacks {special!r}")
        self.pad_id, self.bos_id, self.eos_id = self.index[PAD], self.index[BOS], self.index[EOS]
        self.max_shift = max(int(t[6:]) for t in self.vocabulary if t.startswith("SHIFT_"))
        self.pitches = sorted(int(t[3:]) for t in self.vocabulary if t.startswith("ON_"))
        # id → (kind, value), for decoding without string parsing per token
        self._meaning: list[tuple[str, int]] = []
        for token in self.vocabulary:
            kind, _, value = token.partition("_")
            self._meaning.append((kind, int(value)) if value.isdigit() else (token, 0))

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, notes: Sequence[Note], bos: bool = True, eos: bool = True) -> list[int]:
        """Notes (any order; overlapping ones of a pitch are merged) → token ids."""
        changes: dict[int, tuple[list[int], list[int]]] = {}
        for pitch, start, end in normalise_notes(notes):
            if f"ON_{pitch}" not in self.index:
                raise ConversionError(f"pitch {pitch} is outside the vocabulary's range")
            changes.setdefault(start, ([], []))[1].append(pitch)
            changes.setdefault(end, ([], []))[0].append(pitch)
        ids = [self.bos_id] if bos else []
        now = 0
        for time in sorted(changes):
            ids += self.shift_ids(time - now)
            now = time
            offs, ons = changes[time]
            ids += [self.index[f"OFF_{p}"] for p in sorted(offs)]
            ids += [self.index[f"ON_{p}"] for p in sorted(ons)]
        if eos:
            ids.append(self.eos_id)
        return ids

    def shift_ids(self, steps: int) -> list[int]:
        full, rest = divmod(steps, self.max_shift)
        return [self.index[f"SHIFT_{self.max_shift}"]] * full + (
            [self.index[f"SHIFT_{rest}"]] if rest else []
        )

    def decode(self, ids: Sequence[int]) -> list[Note]:
        """Token ids → notes; total on any sequence a model can sample.

        A note-on for a sounding pitch restarts it, a note-off for a silent pitch is ignored, a note that
        would last no time is dropped, notes still sounding at the end stop there, ``<eos>`` ends the piece.
        """
        notes: list[Note] = []
        sounding: dict[int, int] = {}
        now = 0

        def stop(pitch: int) -> None:
            start = sounding.pop(pitch)
            if now > start:
                notes.append((pitch, start, now))

        for token in ids:
            kind, value = self._meaning[int(token)]
            if kind == EOS:
                break
            if kind == "SHIFT":
                now += value
            elif kind == "ON":
                if value in sounding:
                    stop(value)
                sounding[value] = now
            elif kind == "OFF" and value in sounding:
                stop(value)
        for pitch in sorted(sounding):
            stop(pitch)
        return sorted(notes, key=lambda n: (n[1], n[0], n[2]))

    def transpose(self, ids: Sequence[int], semitones: int) -> list[int] | None:
        """The sequence ``semitones`` higher (lower when negative); None when a pitch leaves the range."""
        out = []
        for token in ids:
            kind, value = self._meaning[int(token)]
            if kind in ("ON", "OFF"):
                moved = self.index.get(f"{kind}_{value + semitones}")
                if moved is None:
                    return None
                out.append(moved)
            else:
                out.append(int(token))
        return out


def _on_grid(value: Any, steps_per_quarter: int) -> int | None:
    steps = Fraction(value).limit_denominator(10_000) * steps_per_quarter
    return int(steps) if steps.denominator == 1 else None


def score_to_notes(
    score: Any, steps_per_quarter: int = STEPS_PER_QUARTER
) -> tuple[list[Note], dict[str, int]]:
    """Notes of every part of a music21 score on a grid of ``steps_per_quarter``, and conversion counts.

    Tied notes are joined; grace notes (no duration) are left out and counted; notes that two parts
    double become one (:func:`~seqtasks.music.pianoroll.normalise_notes`). Raises :class:`ConversionError`
    naming the first note off the grid or off the keyboard, or when the score has no notes.
    """
    stripped = score.stripTies(inPlace=False)
    parts = list(getattr(stripped, "parts", [])) or [stripped]
    notes: list[Note] = []
    grace = 0
    for part_number, part in enumerate(parts, start=1):
        for element in part.flatten().notes:
            if element.duration.isGrace or element.quarterLength == 0:
                grace += 1
                continue
            start = _on_grid(element.offset, steps_per_quarter)
            length = _on_grid(element.quarterLength, steps_per_quarter)
            if start is None or length is None:
                raise ConversionError(
                    f"part {part_number}, measure {element.measureNumber}: {element.fullName} at quarter "
                    f"offset {element.offset} lasting {element.quarterLength} is off the "
                    f"1/{4 * steps_per_quarter}-note grid"
                )
            for pitch in element.pitches:
                midi = int(pitch.midi)
                if not LOWEST_PITCH <= midi <= HIGHEST_PITCH:
                    raise ConversionError(
                        f"part {part_number}, measure {element.measureNumber}: pitch {pitch.nameWithOctave} "
                        f"(MIDI {midi}) is outside the 88 piano keys"
                    )
                notes.append((midi, start, start + length))
    if not notes:
        raise ConversionError("the score has no notes")
    merged = normalise_notes(notes)
    return merged, {
        "notes": len(merged),
        "doubled_or_overlapping": len(notes) - len(merged),
        "grace_notes": grace,
    }
