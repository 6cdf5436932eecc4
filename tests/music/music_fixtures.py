"""The tiny piano-roll dataset of the music tests, in the layout of SEQTASKS_DATA_DIR/jsb_chorales."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import write_split


def tiny_pieces(rng: random.Random, count: int) -> list[list[list[int]]]:
    """Chorale-like frames: four voices moving by small steps."""
    pieces = []
    for _ in range(count):
        voices = [48, 55, 64, 72]
        frames = []
        for _ in range(rng.randint(6, 20)):
            voices = [v + rng.choice([-2, -1, 0, 1, 2]) for v in voices]
            frames.append(sorted(set(voices)))
        pieces.append(frames)
    return pieces


def make_tiny_rolls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir holding a tiny ``jsb_chorales`` in the real layout (id, frames, num_frames)."""
    rng = random.Random(0)
    root = tmp_path / "data"
    for split, count in (("train", 24), ("validation", 6), ("test", 6)):
        pieces = tiny_pieces(rng, count)
        write_split(
            root / "jsb_chorales",
            split,
            {"id": list(range(count)), "frames": pieces, "num_frames": [len(p) for p in pieces]},
        )
    monkeypatch.setenv("SEQTASKS_DATA_DIR", str(root))
    return root
