"""Piano rolls: frames of sounding pitches ↔ ``(T, 88)`` binary tensors ↔ notes.

The benchmark datasets (JSB Chorales, Nottingham, MuseData, Piano-midi.de; Boulanger-Lewandowski et al.
2012) store each piece as frames, each frame the ascending list of MIDI pitches sounding in it. A roll
column ``k`` is MIDI pitch ``21 + k`` (A0 … C8, the 88 piano keys).

A frame roll cannot tell a held note from a repeated one; :func:`frames_to_notes` reads a pitch sounding
in consecutive frames as one held note, the usual reading of these datasets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

LOWEST_PITCH = 21
NUM_KEYS = 88
HIGHEST_PITCH = LOWEST_PITCH + NUM_KEYS - 1

Note = tuple[int, int, int]
"""``(MIDI pitch, start step, end step)`` with ``end > start``, on an integer time grid."""


def check_pitch(pitch: int, where: str = "") -> None:
    if not LOWEST_PITCH <= pitch <= HIGHEST_PITCH:
        raise ValueError(
            f"{where}pitch {pitch} is outside the 88 piano keys (MIDI {LOWEST_PITCH}–{HIGHEST_PITCH})"
        )


def frames_to_roll(frames: Sequence[Sequence[int]], dtype: torch.dtype = torch.float32) -> Tensor:
    """Frames of MIDI pitches → ``(T, 88)`` roll with ones where a key sounds."""
    roll = torch.zeros(len(frames), NUM_KEYS, dtype=dtype)
    rows = [t for t, frame in enumerate(frames) for _ in frame]
    cols = [pitch - LOWEST_PITCH for frame in frames for pitch in frame]
    if cols and (min(cols) < 0 or max(cols) >= NUM_KEYS):
        bad = next(p for frame in frames for p in frame if not LOWEST_PITCH <= p <= HIGHEST_PITCH)
        check_pitch(bad)
    if rows:
        roll[torch.tensor(rows), torch.tensor(cols)] = 1
    return roll


def roll_to_frames(roll: Tensor) -> list[list[int]]:
    """``(T, 88)`` roll (nonzero = sounding) → frames of ascending MIDI pitches."""
    if roll.dim() != 2 or roll.size(1) != NUM_KEYS:
        raise ValueError(f"a piano roll has shape (time, {NUM_KEYS}), got {tuple(roll.shape)}")
    return [[LOWEST_PITCH + int(k) for k in torch.nonzero(row).flatten()] for row in roll]


def normalise_notes(notes: Iterable[Note]) -> list[Note]:
    """Sorted notes where no two of the same pitch overlap (overlapping ones are merged).

    Two voices doubling a pitch, or a note restruck while another voice holds it, become one note; a
    note that starts exactly where another of its pitch ends stays separate (a repeated note).
    """
    by_pitch: dict[int, list[tuple[int, int]]] = {}
    for pitch, start, end in notes:
        if end <= start:
            raise ValueError(f"note {(pitch, start, end)} does not end after it starts")
        by_pitch.setdefault(pitch, []).append((start, end))
    merged: list[Note] = []
    for pitch, spans in by_pitch.items():
        spans.sort()
        current_start, current_end = spans[0]
        for start, end in spans[1:]:
            if start < current_end or start == current_start:
                current_end = max(current_end, end)
            else:
                merged.append((pitch, current_start, current_end))
                current_start, current_end = start, end
        merged.append((pitch, current_start, current_end))
    return sorted(merged, key=lambda n: (n[1], n[0], n[2]))


def notes_to_frames(notes: Iterable[Note], length: int | None = None) -> list[list[int]]:
    """Notes on the frame grid → frames (a note sounds in frames ``start … end-1``)."""
    notes = list(notes)
    total = max((end for _, _, end in notes), default=0) if length is None else length
    frames: list[set[int]] = [set() for _ in range(total)]
    for pitch, start, end in notes:
        for t in range(max(start, 0), min(end, total)):
            frames[t].add(pitch)
    return [sorted(frame) for frame in frames]


def frames_to_notes(frames: Sequence[Sequence[int]]) -> list[Note]:
    """Frames → notes, a pitch sounding in consecutive frames read as one held note."""
    notes: list[Note] = []
    open_at: dict[int, int] = {}
    for t, frame in enumerate([*frames, []]):
        now = set(frame)
        for pitch in sorted(set(open_at) - now):
            notes.append((pitch, open_at.pop(pitch), t))
        for pitch in sorted(now - set(open_at)):
            open_at[pitch] = t
    return sorted(notes, key=lambda n: (n[1], n[0], n[2]))


class PianoRollCodec:
    """Notes ↔ frames ↔ ``(T, 88)`` rolls on a grid of ``steps_per_quarter``: what the piano-roll
    DataModule and generation both call.

    One decision per bad input, the same in training and at inference: a pitch outside the 88 keys is
    refused (``ValueError`` naming the frame and pitch; the DataModule reports it with the file and row);
    a frame that is not a list of pitches is refused. A piece with no frames cannot be trained on and is
    refused by :meth:`encode_frames`; an empty primer means "start from silence".

    Its state is ``{"steps_per_quarter": n}``, plain data in the checkpoint's artefacts.
    """

    num_keys = NUM_KEYS

    def __init__(self, steps_per_quarter: int = 1) -> None:
        if steps_per_quarter < 1:
            raise ValueError(f"steps_per_quarter must be positive, got {steps_per_quarter}")
        self.steps_per_quarter = steps_per_quarter

    def check_frames(self, frames: object) -> list[list[int]]:
        """``frames`` if it is a list of frames of piano pitches, else a ``ValueError`` saying why not."""
        if not isinstance(frames, list):
            raise ValueError(f"expected a list of frames, got {type(frames).__name__}")
        for t, frame in enumerate(frames):
            for pitch in frame or ():
                if not LOWEST_PITCH <= pitch <= HIGHEST_PITCH:
                    raise ValueError(
                        f"frame {t} holds pitch {pitch}, outside the 88 piano keys "
                        f"({LOWEST_PITCH}–{HIGHEST_PITCH})"
                    )
        return frames

    def encode_frames(self, frames: object) -> dict[str, list[int]]:
        """A training piece → its sounding keys (flat) and per-frame counts, as :meth:`collate` reads them."""
        frames = self.check_frames(frames)
        if not frames:
            raise ValueError("the piece has no frames")
        return {
            "keys": [p - LOWEST_PITCH for frame in frames for p in frame],
            "counts": [len(frame or ()) for frame in frames],
        }

    def collate(self, keys: Sequence[Sequence[int]], counts: Sequence[Sequence[int]]) -> Tensor:
        """Encoded pieces → a ``(B, T, 88)`` binary roll, silent past each piece's end."""
        rolls = torch.zeros(len(counts), max(len(c) for c in counts), NUM_KEYS)
        for row, (piece_keys, piece_counts) in enumerate(zip(keys, counts, strict=True)):
            piece_counts = torch.as_tensor(piece_counts, dtype=torch.long)
            times = torch.repeat_interleave(torch.arange(len(piece_counts)), piece_counts)
            rolls[row, times, torch.as_tensor(piece_keys, dtype=torch.long)] = 1
        return rolls

    def primer_roll(self, notes: Sequence[Note] | None) -> Tensor:
        """A primer's notes → its ``(P, 88)`` roll (``(0, 88)`` for no primer)."""
        return frames_to_roll(self.check_frames(notes_to_frames(notes or [])))

    def decode(self, primer: Tensor, sampled: Tensor) -> list[Note]:
        """The primer's roll and the sampled frames → the piece's notes."""
        return frames_to_notes([*roll_to_frames(primer), *roll_to_frames(sampled)])
