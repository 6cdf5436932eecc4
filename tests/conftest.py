"""Shared test fixtures: an isolated environment (no network, caches in tmp) and tiny datasets on disk."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REAL_DATA_DIR = os.environ.get("SEQTASKS_DATA_DIR")

# huggingface_hub and datasets read the offline switches once, when first imported (test modules import
# them at collection, before any fixture runs): set them here, or a Hub lookup tries the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

POSITIVE = ["great", "wonderful", "loved", "brilliant", "superb", "moving", "fun", "best"]
NEGATIVE = ["awful", "boring", "hated", "dull", "worst", "terrible", "waste", "bad"]
FILLER = ["the", "film", "was", "a", "plot", "actors", "it", "story", "and", "this", "movie", "really"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache dir, W&B disabled (and no W&B service of an earlier test) and the Hub
    offline; the real data dir is kept."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SEQTASKS_CACHE_DIR", str(cache))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(cache / "wandb"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(cache / "hf_home"))
    # an in-process W&B run of an earlier test leaves its service's address here; a `seqtasks fit`
    # subprocess that inherited it would share that service (and its run ids) instead of starting its own
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    return cache


def make_review(rng: random.Random, positive: bool) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(3, 14))]
    cue = POSITIVE if positive else NEGATIVE
    for _ in range(rng.randint(1, 3)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
    return " ".join(words) + rng.choice([".", "!", " ..."])


def write_split(directory: Path, split: str, columns: dict[str, list]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{split}.parquet"
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture
def tiny_reviews(tmp_path: Path) -> Path:
    """A small, learnable binary sentiment dataset: train 96 rows, test 32 rows, no validation split."""
    rng = random.Random(0)
    root = tmp_path / "tiny_reviews"
    for split, size in (("train", 96), ("test", 32)):
        labels = [i % 2 for i in range(size)]
        texts = [make_review(rng, bool(label)) for label in labels]
        write_split(root, split, {"text": texts, "label": labels})
    return root


@pytest.fixture
def tiny_stars(tmp_path: Path) -> Path:
    """Star-rated reviews (1-5) in the layout of reviews/womens_clothing: columns text and stars."""
    rng = random.Random(1)
    root = tmp_path / "tiny_stars"
    for split, size in (("train", 100), ("test", 30)):
        stars = [1 + i % 5 for i in range(size)]
        texts = [make_review(rng, s >= 4) + (" okay" if s == 3 else "") for s in stars]
        write_split(root, split, {"text": texts, "stars": stars})
    return root


requires_real_data = pytest.mark.skipif(
    not (REAL_DATA_DIR and os.path.isdir(REAL_DATA_DIR)), reason="SEQTASKS_DATA_DIR is not set"
)
