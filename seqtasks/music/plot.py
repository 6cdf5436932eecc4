"""A piano-roll picture of a piece (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from seqtasks.music.pianoroll import Note

_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def pitch_name(pitch: int) -> str:
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


def piano_roll_figure(
    notes: Sequence[Note],
    steps_per_quarter: int,
    title: str = "",
    primer_steps: int = 0,
    beats_per_bar: int = 4,
):
    """A figure with one bar per note (time in bars, pitch by name); a primer is shaded grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = max((e for _, _, e in notes), default=steps_per_quarter * beats_per_bar)
    bars = end / (steps_per_quarter * beats_per_bar)
    fig, ax = plt.subplots(figsize=(min(4 + 0.35 * bars, 30), 5))
    to_bars = 1.0 / (steps_per_quarter * beats_per_bar)
    for pitch, start, stop in notes:
        primed = start < primer_steps
        ax.broken_barh(
            [(start * to_bars, (stop - start) * to_bars)],
            (pitch - 0.4, 0.8),
            facecolors="0.55" if primed else "tab:blue",
            edgecolors="black",
            linewidth=0.3,
        )
    if primer_steps:
        ax.axvline(
            primer_steps * to_bars, color="tab:red", linewidth=1, linestyle="--", label="end of primer"
        )
        ax.legend(loc="upper right", fontsize=8)
    pitches = [p for p, _, _ in notes] or [60]
    low, high = min(pitches) - 2, max(pitches) + 2
    ax.set_ylim(low, high)
    ticks = [p for p in range(low, high + 1) if p % 12 in (0, 7)]
    ax.set_yticks(ticks, [pitch_name(p) for p in ticks])
    ax.set_xlim(0, max(bars, 1e-3))
    ax.set_xlabel("bar")
    ax.set_ylabel("pitch")
    ax.grid(axis="x", linewidth=0.3)
    ax.set_title(title or f"{len(notes)} notes, {bars:.1f} bars")
    fig.tight_layout()
    return fig


def save_piano_roll(path: str | os.PathLike, notes: Sequence[Note], steps_per_quarter: int, **kwargs) -> str:
    """Write the piano-roll PNG of ``notes`` to ``path``."""
    import matplotlib.pyplot as plt

    fig = piano_roll_figure(notes, steps_per_quarter, **kwargs)
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return os.fspath(path)
