"""A tiny, learnable NER dataset in the layout of SEQTASKS_DATA_DIR/conll2003 (tokens, ner_tags, IOB2)."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PEOPLE = [["Peter", "Blackburn"], ["Dhaval"], ["Anna", "Karenina"], ["Yoda"], ["Maria", "Lopez"]]
PLACES = [["Paris"], ["New", "York"], ["Brussels"], ["Tokyo"], ["Cape", "Town"]]
ORGS = [["Reuters"], ["European", "Union"], ["Acme", "Corp"]]
VERBS = ["loves", "visited", "met", "left", "praised", "called"]
FILLER = ["the", "a", "on", "Monday", "quietly", "again", "."]


def make_sentence(rng: random.Random, with_org: bool) -> tuple[list[str], list[str]]:
    kinds = [("PER", PEOPLE), ("LOC", PLACES)] + ([("ORG", ORGS)] if with_org else [])
    tokens: list[str] = []
    tags: list[str] = []

    def entity() -> None:
        kind, names = rng.choice(kinds)
        name = rng.choice(names)
        tokens.extend(name)
        tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1))

    entity()
    tokens.append(rng.choice(VERBS))
    tags.append("O")
    entity()
    for _ in range(rng.randint(0, 2)):
        tokens.append(rng.choice(FILLER))
        tags.append("O")
    return tokens, tags


def make_tiny_ner(root: Path, with_org: bool = False, sizes: tuple[int, int, int] = (96, 24, 24)) -> Path:
    """train/validation/test Parquet splits of short sentences naming people and places (and ORGs)."""
    rng = random.Random(7 if with_org else 3)
    root.mkdir(parents=True, exist_ok=True)
    for split, size in zip(("train", "validation", "test"), sizes, strict=True):
        rows = [make_sentence(rng, with_org) for _ in range(size)]
        table = pa.table({"tokens": [r[0] for r in rows], "ner_tags": [r[1] for r in rows]})
        pq.write_table(table, root / f"{split}.parquet")
    return root
