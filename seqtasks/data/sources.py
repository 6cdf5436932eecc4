"""Where a dataset named in a recipe is read from: a local directory, else the HuggingFace Hub.

A recipe names a dataset once, by its Hub id (``stanfordnlp/imdb``). It resolves, in order, to

1. that path itself, when it is an existing local directory;
2. ``$SEQTASKS_DATA_DIR/<name>``;
3. ``$SEQTASKS_DATA_DIR/<local layout>`` for the datasets of :data:`LOCAL_LAYOUT` (how this project's data
   directory arranges them, e.g. ``reviews/imdb``);
4. the Hub id ``<name>``.

A local directory holds ``<split>.parquet`` files (or any layout ``datasets.load_dataset`` reads).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from seqtasks.data.errors import DataError

DATA_DIR_ENV = "SEQTASKS_DATA_DIR"
CACHE_DIR_ENV = "SEQTASKS_CACHE_DIR"

LOCAL_LAYOUT: dict[str, str] = {
    "stanfordnlp/imdb": "reviews/imdb",
    "imdb": "reviews/imdb",
    "eriktks/conll2003": "conll2003",
    "conll2003": "conll2003",
    "cfilt/iitb-english-hindi": "en_hi/iitb",
}


def cache_dir() -> Path:
    """Writable cache for prepared vocabularies and tokenised data (never the data directory)."""
    root = os.environ.get(CACHE_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "seqtasks")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class ResolvedDataset:
    """A dataset name resolved to a place: ``local`` (a directory) or ``hub`` (an id)."""

    name: str
    kind: str
    location: str

    def describe(self, split: str) -> str:
        """A human pointer to one split, for error messages: its file when local."""
        if self.kind == "local":
            files = split_files(self.location, split)
            return files[0] if len(files) == 1 else f"{self.location} (split {split!r})"
        return f"Hub dataset {self.location!r} (split {split!r})"


def split_files(directory: str, split: str) -> list[str]:
    return sorted(glob.glob(os.path.join(directory, f"{split}.parquet"))) or sorted(
        glob.glob(os.path.join(directory, f"{split}-*.parquet"))
    )


def resolve(name: str) -> ResolvedDataset:
    """Resolve a recipe's dataset name; see the module docstring for the order."""
    if os.path.isdir(name):
        return ResolvedDataset(name, "local", os.path.abspath(name))
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        for candidate in (name, LOCAL_LAYOUT.get(name)):
            if candidate and os.path.isdir(os.path.join(data_dir, candidate)):
                return ResolvedDataset(name, "local", os.path.abspath(os.path.join(data_dir, candidate)))
    return ResolvedDataset(name, "hub", name)


def load_split(
    resolved: ResolvedDataset, split: str, streaming: bool = False
) -> datasets.Dataset | datasets.IterableDataset:
    """Load one split with ``datasets.load_dataset``; a failure names every place that was tried.

    Split files that exist but cannot be read raise :class:`DataError` naming them; a split found nowhere
    raises ``FileNotFoundError``.
    """
    cache = str(cache_dir() / "hf")
    files = split_files(resolved.location, split) if resolved.kind == "local" else []
    if files and _parquet_rows(files) == 0:  # else datasets fails with "BatchSize must be greater than 0"
        raise DataError(", ".join(files), f"split {split!r} holds no rows")
    try:
        if resolved.kind == "local":
            if files:
                return datasets.load_dataset(
                    "parquet", data_files={split: files}, split=split, streaming=streaming, cache_dir=cache
                )
            return datasets.load_dataset(resolved.location, split=split, streaming=streaming, cache_dir=cache)
        return datasets.load_dataset(resolved.location, split=split, streaming=streaming, cache_dir=cache)
    except Exception as error:  # re-raised with where we looked; the original is chained
        cause = error
        while cause.__cause__ is not None:  # datasets wraps reader errors ("error while generating")
            cause = cause.__cause__
        detail = f"{type(error).__name__}: {error}"
        if cause is not error:
            detail += f" (caused by {type(cause).__name__}: {cause})"
        if files:  # the split's files exist but cannot be read: bad input, named by file
            raise DataError(", ".join(files), f"cannot read split {split!r} as parquet: {detail}") from error
        data_dir = os.environ.get(DATA_DIR_ENV)
        looked = (
            f"{DATA_DIR_ENV}={data_dir!r} holds neither {resolved.name!r}"
            + (f" nor {LOCAL_LAYOUT[resolved.name]!r}" if resolved.name in LOCAL_LAYOUT else "")
            if data_dir
            else f"{DATA_DIR_ENV} is not set"
        )
        where = (
            f"local directory {resolved.location!r}"
            if resolved.kind == "local"
            else f"Hub id {resolved.location!r} ({looked})"
        )
        raise FileNotFoundError(
            f"Could not read split {split!r} of dataset {resolved.name!r} from the {where}: {detail}"
        ) from error


def _parquet_rows(files: list[str]) -> int | None:
    """Rows of Parquet files from their footers (cheap); None when a footer cannot be read (the load that
    follows then names the damaged file)."""
    try:
        return sum(pq.read_metadata(path).num_rows for path in files)
    except Exception:  # reported by load_split's own read, with the reason
        return None


def has_split(resolved: ResolvedDataset, split: str) -> bool:
    """Whether a local dataset has ``split``; Hub datasets are asked through their builder info."""
    if resolved.kind == "local":
        return bool(split_files(resolved.location, split))
    try:
        return split in datasets.get_dataset_split_names(resolved.location)
    except Exception:
        return False
