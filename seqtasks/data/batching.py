"""Length-bucketed batches for map-style and streaming datasets, and padding collation.

Map-style: :class:`BucketBatchSampler` draws indices from an inner sampler, sorts each pool of
``pool_batches * batch_size`` indices by length, cuts it into batches and shuffles the batches. Under DDP
Lightning swaps the inner sampler for a ``DistributedSampler`` (it sees the ``sampler`` argument), so each
rank buckets only its own share: the data is sharded once.

Streaming: :class:`StreamingBatches` does the same over a stream already split per rank with
``datasets.distributed.split_dataset_by_node``, and pads every rank to the same number of batches so
DDP never waits on a rank that ran out.

Repeated rows: both ways of keeping the ranks in step repeat rows (a ``DistributedSampler`` pads the
ranks' shares to equal length; a short stream repeats its first examples). Every batch says which of its
rows are real in ``batch[REAL]`` (a boolean per row), so that validation and test count each row once:
a task evaluates :func:`real_rows` of a batch. Training batches carry the flag too and are otherwise
unchanged (a repeated row is trained on, as Lightning's sampler has always done).

Exact mid-epoch resume: every loader is a :class:`StatefulLoader`, whose ``state_dict()`` Lightning
stores in each checkpoint (``fit_loop`` saves the state of a train loader that has one) and gives back
through ``load_state_dict()`` when a run restarts mid-epoch. Map-style, the epoch's batch order is a
function of ``(seed, epoch)``, so the state is the epoch and the number of batches already delivered,
which the sampler skips (indices only, nothing is loaded). Streamed, each reader (the process, or each
DataLoader worker) reads its stream in chunks of ``shuffle_buffer`` examples shuffled by a seeded RNG (a
buffer whose content a checkpoint could not hold is not exact; a chunk can be read again): a batch
carries the stream's ``state_dict()`` at its chunk's start and its place in the chunk, and a resumed
reader reloads that state, re-reads the one chunk and skips the batches already delivered. The state also
holds the RNG states (torch, python, numpy), restored once the resumed iterator exists (creating an
iterator draws from torch's RNG), so dropout continues as in an uninterrupted run.

Workers: with ``num_workers > 0`` ``datasets`` gives each worker its own shards of the rank's share (after
``split_dataset_by_node``) and the workers encode and collate; the loader delivers the workers' batches in
a fixed round robin (its own, restored on resume) and pads the rank to its batch count itself, since no
single worker knows how many the others made.
"""

from __future__ import annotations

import itertools
import logging
import random
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    get_worker_info,
)

from seqtasks.data.columns import ColumnStore, pad_flat

log = logging.getLogger(__name__)

REAL = "real"
"""The batch key of the per-row flag: False for a row repeated only to keep the ranks in step."""


class Repeated(int):
    """A dataset index that a distributed sampler repeats to give every rank as many rows as the others."""

    __slots__ = ()


def first_repeated_position(sampler: Sampler[int]) -> int | None:
    """From which of its positions ``sampler`` (this rank's ``DistributedSampler``) yields repeated rows.

    A ``DistributedSampler`` pads the (shuffled or not) index list to ``num_samples * num_replicas`` by
    repeating its head, then gives rank ``r`` positions ``r, r + num_replicas, …``: its ``k``-th index is a
    repeat exactly when ``r + k * num_replicas`` reaches the dataset's length. None for other samplers.
    """
    if not isinstance(sampler, DistributedSampler):
        return None
    rows = len(sampler.dataset)  # type: ignore[arg-type]
    return max(0, -(-(rows - sampler.rank) // sampler.num_replicas))


class EpochRandomSampler(RandomSampler):
    """A random permutation that depends only on ``(seed, epoch)``, so a resumed run sees the same order."""

    def __init__(self, data_source: Sequence[Any], seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed * 100_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class BucketBatchSampler(BatchSampler):
    """Batches of similar length from ``sampler``'s indices.

    Args:
        sampler: yields dataset indices (Lightning replaces it with a DistributedSampler under DDP).
        batch_size: examples per batch.
        drop_last: drop a pool's last short batch (training keeps it by default: no example is lost).
        lengths: length of each dataset example (what a pool is sorted by; tuples compare in order).
        pool_batches: how many batches' worth of indices are sorted together.
        shuffle: shuffle batch order within a pool (training); evaluation keeps it fixed.
        seed: seed of that shuffle, combined with the inner sampler's epoch.
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool = False,
        lengths: Sequence[int] = (),
        pool_batches: int = 50,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        # a plain list: indexing a ``datasets`` column row by row reads Arrow each time (~0.2 ms a row,
        # which cost the NER recipe's loader ~6 ms a batch while it sorted each pool)
        self.lengths = list(lengths)
        self.pool_batches = pool_batches
        self.shuffle = shuffle
        self.seed = seed
        self.skip = 0
        """Batches of the next epoch's order to leave out (a resumed run's first iteration), then 0."""

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        for number, batch in enumerate(self._epoch_batches()):
            if number >= skip:
                yield batch

    def _epoch_batches(self) -> Iterator[list[int]]:
        epoch = getattr(self.sampler, "epoch", 0)
        rng = random.Random(self.seed * 1_000_003 + epoch)
        pool_size = self.batch_size * self.pool_batches
        pool: list[int] = []
        repeats_from = first_repeated_position(self.sampler)
        for position, index in enumerate(self.sampler):
            if repeats_from is not None and position >= repeats_from:
                index = Repeated(index)
            pool.append(index)
            if len(pool) == pool_size:
                yield from self._batches(pool, rng)
                pool = []
        if pool:
            yield from self._batches(pool, rng)

    def _batches(self, pool: list[int], rng: random.Random) -> list[list[int]]:
        pool = sorted(pool, key=lambda i: self.lengths[i])
        batches = [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __len__(self) -> int:
        total = len(self.sampler)  # type: ignore[arg-type]
        pool_size = self.batch_size * self.pool_batches
        full, rest = divmod(total, pool_size)
        per_pool = self.pool_batches
        if self.drop_last:
            return full * per_pool + rest // self.batch_size
        return full * per_pool + -(-rest // self.batch_size)


def bucket_batches(
    lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int, pool_batches: int = 50
) -> BucketBatchSampler:
    """The usual construction: an epoch-seeded random inner sampler for training, sequential otherwise."""
    inner: Sampler[int] = EpochRandomSampler(lengths, seed) if shuffle else SequentialSampler(lengths)
    return BucketBatchSampler(
        inner,
        batch_size,
        drop_last=False,
        lengths=lengths,
        pool_batches=pool_batches,
        shuffle=shuffle,
        seed=seed,
    )


class StreamingBatches(IterableDataset):
    """Length-bucketed batches over one rank's share of a streamed dataset.

    Args:
        stream: a ``datasets.IterableDataset`` already split for this rank; examples are dicts.
        collate: turns a list of examples into a batch.
        batch_size: examples per batch.
        length_key: the example field holding its length.
        pool_batches: batches' worth of examples sorted together.
        shuffle: shuffle the examples of each chunk and the batches of each pool (training).
        seed: seed of those shuffles, combined with the epoch, the reader and the chunk.
        num_batches: when given, the number of batches every rank must yield; a rank with fewer repeats
            its first examples (and says how many) so that DDP does not hang on uneven shards. A batch
            that ``collate`` makes a dict gets ``batch[REAL]``: True per row, False in repeated batches.
            (Iterating this object pads; a :class:`StatefulLoader` pads the rank itself, over its workers.)
        shuffle_buffer: examples per chunk: the stream is read a chunk at a time, the chunk shuffled
            (when ``shuffle``) and cut into pools; 0 makes a chunk one pool.
        rank: with ``world``, for a stream that is not split per rank (its shards do not divide among
            the ranks): every rank reads the whole stream and keeps 1 row in ``world`` of each shuffled
            chunk (the same chunks and shuffles on every rank), so a rank's share changes each epoch.
        world: the number of ranks sharing the stream that way; 1 when ``stream`` is this rank's alone.
    """

    def __init__(
        self,
        stream: Any,
        collate: Callable[[list[dict[str, Any]]], Any],
        batch_size: int,
        length_key: str = "length",
        pool_batches: int = 50,
        shuffle: bool = True,
        seed: int = 0,
        num_batches: int | None = None,
        shuffle_buffer: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.stream = stream
        self.collate = collate
        self.batch_size = batch_size
        self.length_key = length_key
        self.pool_batches = pool_batches
        self.shuffle = shuffle
        self.seed = seed
        self.num_batches = num_batches
        self.shuffle_buffer = shuffle_buffer
        self.rank = rank
        self.world = world
        self.epoch = 0
        self.repeated = 0
        self.resume_from: dict[int, dict[str, Any]] = {}
        """Per reader (worker id, 0 without workers): where the next iteration starts (see
        :meth:`positioned`); set by :class:`StatefulLoader` for a resumed run, used once."""

    def set_epoch(self, epoch: int) -> None:
        """Reorder for ``epoch``: the chunk shuffles, and the stream's shard order (``datasets`` permutes
        its shards by its own epoch, here derived from the seed too; the same on every rank)."""
        self.epoch = epoch
        if hasattr(self.stream, "set_epoch"):
            self.stream.set_epoch(self.seed * 100_003 + epoch)

    @property
    def chunk_size(self) -> int:
        """Rows read per chunk: whole pools for each rank, so only a reader's last batch is short."""
        unit = self.batch_size * self.pool_batches * self.world
        return max(1, -(-self.shuffle_buffer // unit)) * unit

    def __iter__(self) -> Iterator[Any]:
        first: list[dict[str, Any]] = []
        produced = 0
        for _, examples in self.positioned(keep_examples=True):
            if examples is None:
                continue
            if len(first) < self.batch_size:
                first.extend(examples[: self.batch_size - len(first)])
            produced += 1
            yield mark_rows(self.collate(examples), [True] * len(examples))
        self.repeated = 0
        while self.num_batches is not None and produced < self.num_batches and first:
            produced += 1
            self.repeated += len(first)
            yield mark_rows(self.collate(first), [False] * len(first))

    def positioned(self, keep_examples: bool = False) -> Iterator[tuple[dict[str, Any], Any]]:
        """``(position, batch)`` for this reader's batches, then ``(position with "done", None)``.

        A position says where the reader stands once its batch is delivered: the epoch, the reader, the
        stream's state at the start of the batch's chunk (``datasets``' ``state_dict()``, or the number
        of examples read for a stream without one), the chunk's number and how many of its batches are
        delivered. Given back in :attr:`resume_from`, it makes the next iteration continue right after
        that batch, exactly (the chunk is re-read and cut the same way). With ``keep_examples`` the
        batches are the example lists, not collated.
        """
        info = get_worker_info()
        reader = info.id if info is not None else 0
        start = self.resume_from.get(reader)
        self.resume_from = {}  # read once, when the iteration is made (in the worker, or here)
        if start is not None and start["epoch"] != self.epoch:
            start = None
        return self._positioned(reader, start, keep_examples)

    def _positioned(
        self, reader: int, start: dict[str, Any] | None, keep_examples: bool
    ) -> Iterator[tuple[dict[str, Any], Any]]:
        if start is not None and start.get("done"):
            yield {**start, "reader": reader}, None
            return
        stream, state = self.stream, (start["stream"] if start is not None else None)
        chunk, skip = (start["chunk"], start["skip"]) if start is not None else (0, 0)
        stateful = hasattr(stream, "state_dict")
        read = 0
        if state is not None and "datasets" in state:
            stream.load_state_dict(state["datasets"])
        examples = iter(stream)
        if state is not None and "examples" in state:
            read = state["examples"]
            for _ in islice(examples, read):
                pass
        while True:  # ``state``: where the stream stands, the start of chunk number ``chunk``
            rows = list(islice(examples, self.chunk_size))
            if hasattr(stream, "_starting_state_dict"):
                stream._starting_state_dict = None  # applied when the iteration began; not again
            if not rows:
                break
            read += len(rows)
            after = {"datasets": stream.state_dict()} if stateful else {"examples": read}
            rng = random.Random(f"{self.seed}/{self.epoch}/{reader}/{chunk}")
            if self.shuffle:
                rng.shuffle(rows)
            rows = rows[self.rank :: self.world]  # whole chunks before: the same offset in each
            pool_size = self.batch_size * self.pool_batches
            batches = [
                b for i in range(0, len(rows), pool_size) for b in self._batches(rows[i : i + pool_size], rng)
            ]
            for number in range(skip, len(batches)):
                # after a chunk's last batch, the next chunk's start: a resume need not re-read this one
                last = number + 1 == len(batches)
                position = {
                    "epoch": self.epoch,
                    "reader": reader,
                    "stream": after if last else state,
                    "chunk": chunk + 1 if last else chunk,
                    "skip": 0 if last else number + 1,
                }
                batch = batches[number]
                yield (
                    position,
                    (batch if keep_examples else mark_rows(self.collate(batch), [True] * len(batch))),
                )
            chunk, skip, state = chunk + 1, 0, after
        yield {"epoch": self.epoch, "reader": reader, "done": True}, None

    def _batches(self, pool: list[dict[str, Any]], rng: random.Random) -> list[list[dict[str, Any]]]:
        pool = sorted(pool, key=lambda e: e[self.length_key])
        batches = [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("the number of batches of this stream is not known")
        return self.num_batches


class PositionedBatches(IterableDataset):
    """What a :class:`StatefulLoader`'s workers iterate: :meth:`StreamingBatches.positioned`'s pairs."""

    def __init__(self, batches: StreamingBatches) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[tuple[dict[str, Any], Any]]:
        return self.batches.positioned()


def _pair(item: Any) -> Any:
    """The collate of a positioned stream's loader: its items are already batches."""
    return item


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch RNG states, as plain data a ``weights_only`` checkpoint load accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StatefulLoader(DataLoader):
    """A DataLoader whose position in the epoch is part of the checkpoint (see the module docstring).

    Lightning calls :meth:`state_dict` when it saves a checkpoint and :meth:`load_state_dict` before the
    first batch of a run restarted mid-epoch; the next iteration then yields exactly the batches the
    interrupted one had not delivered, and restores the RNG states the run had at that point. Over a
    :class:`PositionedBatches` it also merges the workers' batches in a fixed round robin and pads the
    rank to ``num_batches`` (the module docstring says why).
    """

    def __len__(self) -> int:
        if isinstance(self.dataset, PositionedBatches):  # its items include each reader's end marker
            return len(self.dataset.batches)
        return super().__len__()

    def state_dict(self) -> dict[str, Any]:
        """Every rank's position and RNG states (each rank reads its own share): ``{"ranks": [...]}``.

        Lightning asks every rank for it when it saves (rank 0 writes the file), so the ranks gather here.
        """
        fresh = {"epoch": self._epoch(), "batches": 0, "next": 0, "readers": {}}
        mine = dict(getattr(self, "_position", None) or fresh)
        mine["rng"] = rng_state()
        return {"ranks": _gather(mine)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from this rank's part of ``state`` at the next iteration. It sets the epoch too:
        Lightning does not call ``on_train_epoch_start`` (where a streamed set learns its epoch) in an
        epoch it resumes."""
        rank, world = _rank_world()
        ranks = state["ranks"]
        if len(ranks) != world:
            warnings.warn(
                f"the checkpoint holds the data position of {len(ranks)} process(es), this run has {world}: "
                "the ranks' shares differ, so the interrupted epoch starts again from its beginning",
                stacklevel=2,
            )
            return
        self._pending = ranks[rank]
        if isinstance(self.dataset, PositionedBatches):
            self.dataset.batches.set_epoch(self._pending["epoch"])
        elif hasattr(getattr(self.batch_sampler, "sampler", None), "set_epoch"):
            self.batch_sampler.sampler.set_epoch(self._pending["epoch"])

    def _epoch(self) -> int:
        if isinstance(self.dataset, PositionedBatches):
            return self.dataset.batches.epoch
        return getattr(getattr(self.batch_sampler, "sampler", None), "epoch", 0)

    def _take_pending(self) -> dict[str, Any] | None:
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is not None and pending["epoch"] != self._epoch():
            log.warning("resume state of epoch %s ignored in epoch %s", pending["epoch"], self._epoch())
            return None
        return pending

    def __iter__(self) -> Iterator[Any]:
        if isinstance(self.dataset, PositionedBatches):
            return self._stream_batches()
        return self._map_batches()

    def _map_batches(self) -> Iterator[Any]:
        pending = self._take_pending()
        delivered = pending["batches"] if pending else 0
        if pending and isinstance(self.batch_sampler, BucketBatchSampler):
            self.batch_sampler.skip = delivered
        elif pending and hasattr(self.dataset, "skip"):  # an iterable that can start later (LM windows)
            self.dataset.skip = delivered
        iterator = super().__iter__()
        if pending:
            set_rng_state(pending["rng"])
        self._position = {"epoch": self._epoch(), "batches": delivered}
        for batch in iterator:
            delivered += 1
            self._position = {"epoch": self._epoch(), "batches": delivered}
            yield batch

    def _stream_batches(self) -> Iterator[Any]:
        batches = self.dataset.batches
        readers = max(1, self.num_workers)
        pending = self._take_pending()
        positions: dict[int, dict[str, Any]] = {}
        delivered, expected = 0, 0
        if pending:
            positions = {int(r): p for r, p in pending["readers"].items()}
            delivered, expected = pending["batches"], pending["next"]
        batches.resume_from = dict(positions)
        iterator = super().__iter__()
        batches.resume_from = {}
        if pending:
            set_rng_state(pending["rng"])
        held: dict[int, deque] = {r: deque() for r in range(readers)}
        done = {r for r, p in positions.items() if p.get("done")}
        last: Any = None  # the padding repeats the rank's last real batch: the same after a resume

        def remember() -> None:
            self._position = {
                "epoch": batches.epoch,
                "batches": delivered,
                "next": expected,
                "readers": {str(r): p for r, p in positions.items()},
            }

        remember()
        items = iter(iterator)
        while len(done) < readers:
            if held[expected]:  # the reader whose turn it is has a batch (or its end) waiting
                position, batch = held[expected].popleft()
                positions[expected] = position
                if batch is None:
                    done.add(expected)
                expected = (expected + 1) % readers
                if batch is not None:
                    delivered += 1
                    self._check_count(delivered, batches.num_batches)
                    last = batch
                    remember()
                    yield batch
                else:
                    remember()
                continue
            if expected in done:
                expected = (expected + 1) % readers
                continue
            try:
                position, batch = next(items)
            except StopIteration:
                raise RuntimeError(f"reader {expected} of the stream ended without saying so") from None
            held[position["reader"]].append((position, batch))
        while batches.num_batches is not None and delivered < batches.num_batches:
            if last is None:  # resumed inside the padding (not exact then): a batch of this rank
                last = next(b for _, b in batches._positioned(0, None, False) if b is not None)
            delivered += 1
            remember()
            yield mark_rows(dict(last), [False] * _rows(last)) if isinstance(last, dict) else last

    @staticmethod
    def _check_count(delivered: int, most: int | None) -> None:
        if most is not None and delivered > most:
            raise RuntimeError(
                f"this rank's stream gave more than the {most} batches every rank must give; the other "
                "ranks would wait for it (DDP hangs): the batch count was computed for other shards"
            )


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _gather(state: dict[str, Any]) -> list[dict[str, Any]]:
    """``state`` of every rank, in rank order (this one's alone without a process group)."""
    _, world = _rank_world()
    if world == 1:
        return [state]
    ranks: list[Any] = [None] * world
    torch.distributed.all_gather_object(ranks, state)
    return ranks


def _rows(batch: dict[str, Any]) -> int:
    real = batch.get(REAL)
    if real is not None:
        return int(real.size(0))
    return next(int(v.size(0)) for v in batch.values() if isinstance(v, torch.Tensor) and v.dim() > 0)


def stream_loader(batches: StreamingBatches, num_workers: int = 0) -> StatefulLoader:
    """The streamed loader: :class:`StatefulLoader` over ``batches``, reading and collating in workers."""
    return StatefulLoader(
        PositionedBatches(batches), batch_size=None, collate_fn=_pair, num_workers=num_workers
    )


def mark_rows(batch: Any, real: list[bool]) -> Any:
    """``batch`` with ``batch[REAL]``, the boolean flag of each row, when it is a dict; else as it is."""
    if isinstance(batch, dict):
        batch[REAL] = torch.tensor(real, dtype=torch.bool)
    return batch


class MarkedRows(Dataset):
    """A map-style dataset whose items are ``(example, real)``: ``real`` is False for a :class:`Repeated`
    index (the :class:`BucketBatchSampler` marks them), so :class:`MarkedCollate` can flag the row."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, bool]:
        return self.data[int(index)], not isinstance(index, Repeated)

    def __getitems__(self, indices: list[int]) -> list[tuple[Any, bool]] | tuple[Any, list[bool]]:
        plain = [int(i) for i in indices]
        real = [not isinstance(i, Repeated) for i in indices]
        if isinstance(self.data, ColumnStore):  # the rows' columns, gathered in numpy
            return self.data.gather(plain), real
        if getattr(self.data, "format", {}).get("type") == "arrow":  # one table of the rows, in order
            return self.data[plain], real
        getitems = getattr(self.data, "__getitems__", None)
        examples = getitems(plain) if getitems is not None else [self.data[i] for i in plain]
        return list(zip(examples, real, strict=True))


class MarkedCollate:
    """Collate the examples of :class:`MarkedRows` items with ``collate`` and add ``batch[REAL]``."""

    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, items: list[tuple[Any, bool]] | tuple[Any, list[bool]]) -> Any:
        if isinstance(items, tuple):  # a table of the rows and their flags (MarkedRows)
            table, real = items
            return mark_rows(self.collate(table), real)
        return mark_rows(self.collate([example for example, _ in items]), [real for _, real in items])


def bucket_loader(
    data: Any, batch_sampler: BucketBatchSampler, collate: Callable[[list[Any]], Any], num_workers: int = 0
) -> StatefulLoader:
    """The map-style loader: ``collate``'s batches plus ``batch[REAL]`` (see the module docstring).

    Lightning rebuilds it under DDP around a ``DistributedSampler``, keeping the dataset and collate.
    """
    return StatefulLoader(
        MarkedRows(data),
        batch_sampler=batch_sampler,
        collate_fn=MarkedCollate(collate),
        num_workers=num_workers,
    )


def real_rows(batch: dict[str, Any]) -> dict[str, Any] | None:
    """The rows of ``batch`` that count in metrics: those not flagged as repeated in ``batch[REAL]``.

    The batch itself when every row is real (or it has no flag), None when none is; otherwise a copy
    with every per-row value (a tensor or list whose first dimension is the batch size) cut to the real
    rows. Validation and test evaluate this, so under DDP each row of a split is counted exactly once.
    """
    real = batch.get(REAL)
    if real is None or bool(real.all()):
        return batch
    if not bool(real.any()):
        return None
    size, keep = real.size(0), real.tolist()
    rows: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.size(0) == size:
            rows[key] = value[real.to(value.device)]
        elif isinstance(value, (list, tuple)) and len(value) == size:
            rows[key] = [item for item, flag in zip(value, keep, strict=True) if flag]
        else:
            rows[key] = value
    return rows


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad_value: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad integer sequences: ``(B, T)`` tensor and ``(B,)`` lengths."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    if any(isinstance(seq, torch.Tensor) for seq in sequences):
        out = torch.full((len(sequences), int(lengths.max())), pad_value, dtype=torch.long)
        for row, seq in enumerate(sequences):
            if len(seq):
                out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        return out, torch.from_numpy(lengths)
    # lists: one array of all ids, written into the real positions in row order (one call, not B)
    flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64)
    return pad_flat(flat, lengths, pad_value)
