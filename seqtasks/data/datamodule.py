"""The shared DataModule machinery: dataset resolution, the prepare step, splits, streaming, loaders.

A task's DataModule subclasses :class:`SeqDataModule` and supplies four things: what the prepare
step computes from the training rows (:meth:`build_prepared`), how one row becomes an example
(:meth:`encode_row`), how examples become a batch (:meth:`collate`), and which columns it reads
(:meth:`required_columns`).

The prepare step's result (vocabularies, label names, row counts) is a JSON file under the cache
directory, keyed by a hash of every setting that affects it; ``fit`` builds it when missing, so one
command trains from nothing, and ``seqtasks prepare`` builds it explicitly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import lightning.pytorch as pl
import torch
from datasets.distributed import split_dataset_by_node
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from seqtasks.data.batching import (
    PositionedBatches,
    StreamingBatches,
    bucket_batches,
    bucket_loader,
    stream_loader,
)
from seqtasks.data.columns import ColumnStore
from seqtasks.data.errors import DataError
from seqtasks.data.sources import ResolvedDataset, cache_dir, has_split, load_split, resolve, split_files
from seqtasks.inference.io import split_lines


class SeqDataModule(pl.LightningDataModule):
    """Base DataModule over a HuggingFace dataset, map-style or streaming.

    Args:
        dataset: Hub id or local directory; see :mod:`seqtasks.data.sources` for how it resolves.
        streaming: read with ``streaming=True`` (an IterableDataset) instead of map-style.
        batch_size: examples per batch.
        train_split: the training split's name.
        validation_split: the validation split's name; when the dataset lacks it, a fraction of the
            training split is held out instead (``validation_fraction``).
        validation_fraction: share of the training split held out for validation when there is no
            validation split; chosen with ``seed``, the same rows in map-style and streaming mode.
        test_split: the test split's name, or None.
        seed: seed of the held-out choice and of shuffling (with the epoch).
        pool_batches: batches' worth of examples sorted by length together.
        shuffle_buffer: streaming shuffle: the training stream is read in chunks of this many examples,
            each shuffled (a chunk, unlike a sliding buffer, can be read again exactly on resume).
        num_workers: DataLoader workers. Map-style they collate; streamed they also read and encode,
            each its own shards of the rank's share (the log says which). 0 is usually fastest on a
            2-core machine.
        predict_file: a file of inputs for the predict stage (``seqtasks predict``), read by
            :meth:`read_predict_rows`; None predicts the test split.
    """

    def __init__(
        self,
        dataset: str,
        streaming: bool = False,
        batch_size: int = 32,
        train_split: str = "train",
        validation_split: str = "validation",
        validation_fraction: float = 0.1,
        test_split: str | None = "test",
        seed: int = 42,
        pool_batches: int = 50,
        shuffle_buffer: int = 10_000,
        num_workers: int = 0,
        predict_file: str | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset = dataset
        self.streaming = streaming
        self.batch_size = batch_size
        self.train_split = train_split
        self.validation_split = validation_split
        self.validation_fraction = validation_fraction
        self.test_split = test_split
        self.seed = seed
        self.pool_batches = pool_batches
        self.shuffle_buffer = shuffle_buffer
        self.num_workers = num_workers
        self.predict_file = predict_file
        self._prepared: dict[str, Any] | None = None
        self._resolved: ResolvedDataset | None = None
        self._splits: dict[str, Any] = {}
        self._stores: dict[str, tuple[Any, ColumnStore]] = {}  # split → (its examples, their columns)

    # ---- what subclasses provide -------------------------------------------------------------------
    def prepare_settings(self) -> dict[str, Any]:
        """Every setting the prepare step's result depends on (hashed into its file name)."""
        raise NotImplementedError

    def required_columns(self) -> list[str]:
        raise NotImplementedError

    def build_prepared(self, rows: Iterator[tuple[int, dict[str, Any]]], source: str) -> dict[str, Any]:
        """Compute vocabularies etc. from ``(row index, row)`` pairs of the training rows."""
        raise NotImplementedError

    def encode_row(self, row: dict[str, Any], index: int, source: str) -> dict[str, Any]:
        """One raw row → one example dict with a ``length`` field; raise :class:`DataError` on bad input."""
        raise NotImplementedError

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def collate_table(self, table: Any) -> dict[str, torch.Tensor]:
        """Optional, for speed: :meth:`collate` of the rows of ``table``, a ``pyarrow.Table`` of prepared
        examples (:mod:`seqtasks.data.columns` builds padded tensors from its columns). It must return
        exactly what :meth:`collate` returns. Map-style loaders use it when the class that defines
        :meth:`collate` defines it too, so a subclass with its own ``collate`` falls back to rows."""
        raise NotImplementedError

    def collates_tables(self) -> bool:
        """Whether this datamodule's map-style loaders gather Arrow tables for :meth:`collate_table`."""

        def owner(name: str) -> type:
            return next(c for c in type(self).__mro__ if name in vars(c))

        return owner("collate_table") is owner("collate") and owner("collate") is not SeqDataModule

    def sort_keys(self, data: Any) -> Sequence[Any]:
        """What a map-style split's examples are bucketed by (each pool sorted by it): their ``length``.

        A task whose batches pad more than one sequence returns comparable tuples (translation: source
        length, then target length), so each batch is tight on both."""
        return data["length"]

    def artefacts(self) -> dict[str, Any]:
        """What a checkpoint must carry to use the model without this datamodule, as plain data.

        The task takes it at setup (its only contact with the datamodule besides ``set_epoch``) and stores
        it in every checkpoint: the codec's state (vocabularies, tokenizers), label names, grids.
        """
        return {}

    # ---- resolution and the prepare step ---------------------------------------------------------------
    @property
    def resolved(self) -> ResolvedDataset:
        if self._resolved is None:
            self._resolved = resolve(self.dataset)
        return self._resolved

    @property
    def carves_validation(self) -> bool:
        return self.validation_fraction > 0 and not has_split(self.resolved, self.validation_split)

    def prepared_path(self) -> Path:
        settings = {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "dataset": self.resolved.location if self.resolved.kind == "hub" else self.dataset,
            "train_split": self.train_split,
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
            "data_files": self._train_file_stamps(),
            **self.prepare_settings(),
        }
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.dataset.strip("/"))[-60:]
        return cache_dir() / "prepared" / f"{safe}-{digest}.json"

    def _train_file_stamps(self) -> list[tuple[str, int, int]]:
        """Name, size and mtime of local training files, so edited data gets a fresh prepare step."""
        if self.resolved.kind != "local":
            return []
        stamps = []
        for path in split_files(self.resolved.location, self.train_split):
            stat = os.stat(path)
            stamps.append((os.path.basename(path), stat.st_size, int(stat.st_mtime)))
        return stamps

    @property
    def prepared(self) -> dict[str, Any]:
        """The prepare step's result, built and saved on first use when missing."""
        if self._prepared is None:
            path = self.prepared_path()
            if not path.exists():
                self._prepared = self.run_prepare()
                _atomic_write_json(path, self._prepared)
            else:
                self._prepared = json.loads(path.read_text())
        return self._prepared

    def prepare_data(self) -> None:
        self.prepared  # noqa: B018  (builds the file when missing)

    def check_columns(self, data: Any, split: str) -> None:
        columns = data.column_names
        if columns is None and isinstance(data, datasets.IterableDataset):
            first = next(iter(data), None)
            if first is None:
                raise DataError(self.describe_split(split), f"split {split!r} holds no rows")
            columns = list(first.keys())
        missing = [c for c in self.required_columns() if c not in (columns or [])]
        if missing:
            raise DataError(
                self.resolved.describe(split),
                f"missing column(s) {missing}; the columns are {columns}",
            )

    def describe_split(self, split: str) -> str:
        """The place a user knows ``split`` by, for messages about the whole split (its file when local)."""
        return self.resolved.describe(split)

    def _check_not_empty(self, data: Any, split: str) -> None:
        """An empty split stops here, named, not later as "BatchSize must be greater than 0"."""
        if self.streaming:
            try:  # the stream's first read: a damaged file fails here, so name it
                empty = next(iter(data), None) is None
            except (OSError, ValueError) as error:
                raise DataError(
                    self.resolved.describe(split), f"cannot read the rows: {type(error).__name__}: {error}"
                ) from error
        else:
            empty = len(data) == 0
        if empty:
            raise DataError(self.describe_split(split), f"split {split!r} holds no rows")

    def run_prepare(self) -> dict[str, Any]:
        split = self.train_split
        data = load_split(self.resolved, split, streaming=self.streaming)
        self.check_columns(data, split)
        if self.streaming:
            try:  # the first full read of a stream: a damaged file fails here, so name it
                total = sum(1 for _ in data)
            except (OSError, ValueError) as error:
                raise DataError(
                    self.resolved.describe(split), f"cannot read the rows: {type(error).__name__}: {error}"
                ) from error
        else:
            total = len(data)
        if total == 0:
            raise DataError(self.describe_split(split), f"split {split!r} holds no rows")
        held_out = self._held_out(total) if self.carves_validation else set()
        rows = ((i, row) for i, row in enumerate(data) if i not in held_out)
        prepared = self.build_prepared(rows, self.resolved.describe(split))
        prepared["train_rows"] = total
        prepared["held_out_rows"] = len(held_out)
        prepared["source"] = f"{self.resolved.kind}:{self.resolved.location}"
        return prepared

    def _held_out(self, total: int) -> set[int]:
        order = list(range(total))
        random.Random(self.seed).shuffle(order)
        return set(order[: round(total * self.validation_fraction)])

    # ---- splits --------------------------------------------------------------------------------------
    def _encoded(self, split: str, keep: str = "all") -> Any:
        """Load and encode one split; ``keep`` is ``all``, ``train`` or ``held_out`` (the carve)."""
        data = load_split(self.resolved, split, streaming=self.streaming)
        self.check_columns(data, split)
        self._check_not_empty(data, split)
        source = self.resolved.describe(split)
        columns = data.column_names
        encoded = data.map(
            lambda row, index: self.encode_row(row, index, source),
            with_indices=True,
            remove_columns=columns,
            **(
                {}
                if self.streaming
                else {"desc": f"encoding {split}", "new_fingerprint": self._fingerprint(split)}
            ),
        )
        if keep != "all":
            if self.streaming and getattr(encoded, "num_shards", 1) > 1:
                # Row indices of a multi-shard stream follow its (shuffled) shard order, so they cannot
                # name the same rows every epoch; refuse rather than leak held-out rows into training.
                raise ValueError(
                    f"{self.resolved.describe(split)}: cannot hold out validation_fraction="
                    f"{self.validation_fraction} of a stream of {encoded.num_shards} shards; give the "
                    f"dataset a validation split or use map-style loading (streaming: false)"
                )
            held_out = self._held_out(self.prepared["train_rows"])
            want_held_out = keep == "held_out"
            if self.streaming:
                encoded = encoded.filter(
                    lambda _, index: (index in held_out) == want_held_out, with_indices=True
                )
            else:
                encoded = encoded.select([i for i in range(len(encoded)) if (i in held_out) == want_held_out])
        return encoded

    def _fingerprint(self, split: str) -> str:
        """Cache key of an encoded split: the prepare file (all settings) plus the split and encoding."""
        key = f"{self.prepared_path().name}/{split}/{json.dumps(self.encode_settings(), sort_keys=True)}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def encode_settings(self) -> dict[str, Any]:
        """Settings that change how rows are encoded but not the prepare step (e.g. truncation)."""
        return {}

    def setup(self, stage: str | None = None) -> None:
        self.prepared  # noqa: B018
        if stage in (None, "fit", "validate") and "train" not in self._splits:
            carve = self.carves_validation
            self._splits["train"] = self._encoded(self.train_split, "train" if carve else "all")
            if carve:
                self._splits["validation"] = self._encoded(self.train_split, "held_out")
            elif has_split(self.resolved, self.validation_split):
                self._splits["validation"] = self._encoded(self.validation_split)
        if stage in (None, "test", "predict") and self.test_split and "test" not in self._splits:
            self._splits["test"] = self._encoded(self.test_split)
        if stage == "fit":
            self.validate_splits()

    def validate_splits(self) -> None:
        """Encode every row of every split the recipe names before training starts, so a bad row of the
        test split fails in seconds with its file, row and field, not after the whole training.

        Map-style splits are encoded (and cached) here, the test split included, so the test stage reuses
        the work; streamed validation and test splits are read through once (the training stream was read
        through by the prepare step).
        """
        if self.test_split and "test" not in self._splits and has_split(self.resolved, self.test_split):
            self._splits["test"] = self._encoded(self.test_split)
        if self.streaming:
            for split in ("test",) if self.carves_validation else ("validation", "test"):
                for _ in self._splits.get(split, ()):
                    pass

    def examples(self, split: str) -> Any | None:
        """The encoded examples of ``split`` once :meth:`setup` has made them, else None."""
        return self._splits.get(split)

    def set_examples(self, split: str, examples: Any) -> None:
        """Serve ``examples`` (a map-style dataset of encoded examples with a ``length`` column) as ``split``.

        For a subclass whose examples do not come from a dataset's rows through :meth:`encode_row` (pieces
        converted in its prepare step, say): its :meth:`setup` builds each split and hands it over here.
        """
        self._splits[split] = examples

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle a streamed training set for ``epoch`` (Lightning does not for IterableDatasets)."""
        loader = getattr(self, "_train_loader", None)
        if loader is not None and isinstance(loader.dataset, PositionedBatches):
            loader.dataset.batches.set_epoch(epoch)

    # ---- loaders --------------------------------------------------------------------------------------
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer  # LightningDataModule's attribute; None until a Trainer attaches it
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        return 0, 1

    def _column_store(self, split: str) -> ColumnStore:
        """The split's columns in memory for :meth:`collate_table` (built once per split's examples)."""
        data = self._splits[split]
        cached = self._stores.get(split)
        if cached is None or cached[0] is not data:
            cached = (data, ColumnStore(data.with_format("arrow")[:]))
            self._stores[split] = cached
        return cached[1]

    def _loader(self, split: str, train: bool) -> DataLoader:
        data = self._splits[split]
        if not self.streaming:
            sampler = bucket_batches(
                self.sort_keys(data),
                self.batch_size,
                shuffle=train,
                seed=self.seed,
                pool_batches=self.pool_batches,
            )
            if self.collates_tables():
                return bucket_loader(self._column_store(split), sampler, self.collate_table, self.num_workers)
            return bucket_loader(data.with_format(None), sampler, self.collate, self.num_workers)
        rank, world = self._rank_world()
        stream = data
        # Every rank must give the same number of batches (DDP waits otherwise), and the train loader
        # needs its length to checkpoint its position exactly (Lightning prefetches from loaders without).
        num_batches = self._batches_per_rank(stream, split, world) if world > 1 or train else None
        shares = 1  # ranks sharing one unsplit stream, 1 row in ``shares`` of each chunk to each
        if world > 1 and data.num_shards % world == 0:
            stream = split_dataset_by_node(stream, rank=rank, world_size=world)  # whole shards per rank
        elif world > 1:
            shares = world
        if train:
            self._log_work_split(data.num_shards, rank, world)
        batches = StreamingBatches(
            stream,
            self.collate,
            self.batch_size,
            pool_batches=self.pool_batches,
            shuffle=train,
            seed=self.seed,
            num_batches=num_batches,
            shuffle_buffer=self.shuffle_buffer if train else 0,
            rank=rank if shares > 1 else 0,
            world=shares,
        )
        return stream_loader(batches, self.num_workers)

    def _log_work_split(self, shards: int, rank: int, world: int) -> None:
        """Say (once, on rank 0) which shards each rank and worker reads; warn when some read nothing.

        Whole shards per rank when they divide evenly (``split_dataset_by_node``), else every rank reads
        every shard and keeps 1 row in ``world`` of each shuffled chunk; then ``datasets`` gives each
        worker of a rank every ``workers``-th of the rank's shards. Shard numbers are positions in
        the epoch's shard order (permuted each epoch).
        """
        message = describe_work_split(shards, world, self.num_workers)
        rank_zero_info(message)
        if shards < world * max(1, self.num_workers):
            rank_zero_warn(
                f"the training stream has {shards} shard(s) for {world} rank(s) x {max(1, self.num_workers)} "
                f"worker(s): some workers read nothing; split the data into at least "
                f"{world * max(1, self.num_workers)} files (a multiple of it balances the work)"
            )

    def _batches_per_rank(self, stream: Any, split: str, world: int) -> int:
        """The batch count every rank gives (padded up to it), a bound that holds every epoch.

        Each epoch permutes the shards before they are split across ranks, and each worker cuts its own
        last short batch, so the bound allows for the largest shards landing on one rank and one short
        batch per worker.
        """
        readers = max(1, self.num_workers)
        rows = None
        if split == "train":
            rows = self.prepared["train_rows"] - (
                self.prepared["held_out_rows"] if self.carves_validation else 0
            )
        shards = stream.num_shards
        if world == 1 and rows is not None:
            most = rows
        elif shards % world != 0:  # example-level interleave across ranks
            if rows is None:
                rows = sum(1 for _ in stream)
            most = math.ceil(rows / world) + (readers if readers > 1 else 0)
        else:
            per_shard = [
                sum(1 for _ in stream.shard(num_shards=shards, index=i, contiguous=True))
                for i in range(shards)
            ]
            most = sum(sorted(per_shard, reverse=True)[: shards // world])
        return math.ceil(most / self.batch_size) + readers - 1

    def train_dataloader(self) -> DataLoader:
        self._train_loader = self._loader("train", train=True)
        return self._train_loader

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("validation", train=False) if "validation" in self._splits else []

    def test_dataloader(self) -> DataLoader:
        if "test" not in self._splits:
            raise ValueError(f"dataset {self.dataset!r} has no test split configured (test_split=None)")
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        """The test split, or the rows of ``predict_file`` in file order, each example with its ``index``."""
        if self.predict_file is None:
            return self.test_dataloader()
        path = self.predict_file
        rows = self.read_predict_rows(path)
        if not rows:
            raise DataError(path, "holds no rows to predict")
        examples = [
            {**self.encode_predict_row(row, index, path), "index": index} for index, row in enumerate(rows)
        ]
        batches = [
            examples[start : start + self.batch_size] for start in range(0, len(examples), self.batch_size)
        ]
        return DataLoader(batches, batch_size=None, collate_fn=self.collate)

    def read_predict_rows(self, path: str) -> list[dict[str, Any]]:
        """The rows of a user's file for the predict stage, as dicts with the recipe's columns.

        ``.txt``: one row per line, the line in the first of :meth:`input_columns` (blank lines are rows
        too, refused by the codec like any empty text, so row numbers match line numbers); ``.jsonl``,
        ``.json``, ``.parquet``, ``.csv``: read by ``datasets`` and checked for the columns.
        """
        if not os.path.isfile(path):
            raise DataError(path, "no such file")
        if path.endswith(".txt"):
            try:
                with open(path, encoding="utf-8", newline="") as handle:
                    lines = split_lines(handle.read())
            except UnicodeDecodeError as error:
                raise DataError(path, f"not UTF-8 text (byte {error.start}: {error.reason})") from None
            column = self.input_columns()[0]
            return [{column: line} for line in lines]
        kinds = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
        kind = next((k for suffix, k in kinds.items() if path.endswith(suffix)), None)
        if kind is None:
            raise DataError(path, f"unknown input kind; give one of .txt, {', '.join(kinds)}")
        try:
            data = datasets.load_dataset(kind, data_files=path, split="train")
        except Exception as error:  # a damaged or mistyped file: say which and why, no stack
            raise DataError(path, f"cannot read it ({type(error).__name__}: {error})") from None
        missing = [c for c in self.input_columns() if c not in data.column_names]
        if missing:
            raise DataError(path, f"missing column(s) {missing}; the columns are {data.column_names}")
        return [dict(row) for row in data]

    def input_columns(self) -> list[str]:
        """The columns a row needs to be predicted (no labels); by default every required column."""
        return self.required_columns()

    def encode_predict_row(self, row: dict[str, Any], index: int, source: str) -> dict[str, Any]:
        """One row of a file to predict → one example; a task whose rows carry labels encodes them only
        when present (a predict file may hold gold labels, e.g. a CoNLL file, or none)."""
        return self.encode_row(row, index, source)


def describe_work_split(shards: int, world: int, workers: int) -> str:
    """How ``datasets`` splits a stream of ``shards`` shards over ``world`` ranks x ``workers`` workers."""
    readers = max(1, workers)
    parts = []
    for rank in range(world):
        if shards % world == 0:
            mine, how = list(range(rank, shards, world)), "shards"
        else:
            mine, how = list(range(shards)), f"1 row in {world} of each chunk of shards"
        split = ", ".join(f"worker {w}: {mine[w::readers]}" for w in range(readers))
        parts.append(f"rank {rank}: {how} {mine} ({split})")
    return (
        f"streamed training data, {shards} shards over {world} rank(s) x {readers} reader(s): "
        + "; ".join(parts)
    )


def _atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write via a temporary file and rename, so readers (other ranks) never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
