"""Music as data: notes, piano rolls, event tokens, MIDI files, piano-roll pictures (no Lightning).

A piece is a list of :data:`~seqtasks.music.pianoroll.Note` ``(pitch, start, end)`` on an integer time
grid (``steps_per_quarter`` steps per quarter note): 4 for the event model (16th notes), 1 for the JSB
piano rolls (quarter notes). Every conversion goes through that one form; the codecs
(:class:`~seqtasks.music.pianoroll.PianoRollCodec`, :class:`~seqtasks.music.events.EventCodec`) are what the
DataModules and generation share.
"""

from seqtasks.music.pianoroll import (
    LOWEST_PITCH,
    NUM_KEYS,
    Note,
    PianoRollCodec,
    frames_to_notes,
    frames_to_roll,
    normalise_notes,
    notes_to_frames,
    roll_to_frames,
)

__all__ = [
    "LOWEST_PITCH",
    "NUM_KEYS",
    "Note",
    "PianoRollCodec",
    "frames_to_notes",
    "frames_to_roll",
    "normalise_notes",
    "notes_to_frames",
    "roll_to_frames",
]
