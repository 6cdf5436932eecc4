"""A tiny, learnable English→Hindi parallel dataset in the layouts this project reads.

``columns``: one column per language (``en``, ``hi``), like SEQTASKS_DATA_DIR/en_hi/*; ``translation``: the
Hub's ``translation`` column of ``{en, hi}`` dicts, like cfilt/iitb-english-hindi.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

NOUNS = {"cat": "बिल्ली", "dog": "कुत्ता", "house": "घर", "tree": "पेड़", "car": "गाड़ी", "man": "आदमी"}
COLOURS = {"red": "लाल", "black": "काला", "white": "सफ़ेद", "green": "हरा"}


def make_pair(rng: random.Random) -> tuple[str, str]:
    colour = rng.choice(sorted(COLOURS))
    noun = rng.choice(sorted(NOUNS))
    if rng.random() < 0.5:
        return f"a {colour} {noun}", f"एक {COLOURS[colour]} {NOUNS[noun]}"
    return f"the {noun} is {colour}.", f"{NOUNS[noun]} {COLOURS[colour]} है।"


def make_tiny_parallel(
    root: Path, layout: str = "columns", sizes: tuple[int, int, int] = (160, 24, 24)
) -> Path:
    """train/validation/test Parquet splits of short caption-like pairs."""
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, size in zip(("train", "validation", "test"), sizes, strict=True):
        pairs = [make_pair(rng) for _ in range(size)]
        if layout == "columns":
            table = pa.table({"en": [p[0] for p in pairs], "hi": [p[1] for p in pairs]})
        else:
            table = pa.table({"translation": [{"en": en, "hi": hi} for en, hi in pairs]})
        pq.write_table(table, root / f"{split}.parquet")
    return root
