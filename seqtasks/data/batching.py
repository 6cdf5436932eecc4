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
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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
)

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
        lengths: length of each dataset example.
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
        self.lengths = lengths
        self.pool_batches = pool_batches
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self) -> Iterator[list[int]]:
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
        num_batches: when given, the number of batches every rank must yield; a rank with fewer repeats
            its first examples (and says how many) so that DDP does not hang on uneven shards. A batch
            that ``collate`` makes a dict gets ``batch[REAL]``: True per row, False in repeated batches.
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
    ) -> None:
        self.stream = stream
        self.collate = collate
        self.batch_size = batch_size
        self.length_key = length_key
        self.pool_batches = pool_batches
        self.shuffle = shuffle
        self.seed = seed
        self.num_batches = num_batches
        self.epoch = 0
        self.repeated = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.stream, "set_epoch"):
            self.stream.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        pool_size = self.batch_size * self.pool_batches
        pool: list[dict[str, Any]] = []
        first: list[dict[str, Any]] = []
        produced = 0
        for example in self.stream:
            if len(first) < self.batch_size:
                first.append(example)
            pool.append(example)
            if len(pool) == pool_size:
                for batch in self._batches(pool, rng):
                    produced += 1
                    yield mark_rows(self.collate(batch), [True] * len(batch))
                pool = []
        if pool:
            for batch in self._batches(pool, rng):
                produced += 1
                yield mark_rows(self.collate(batch), [True] * len(batch))
        self.repeated = 0
        while self.num_batches is not None and produced < self.num_batches and first:
            produced += 1
            self.repeated += len(first)
            yield mark_rows(self.collate(first), [False] * len(first))

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

    def __getitems__(self, indices: list[int]) -> list[tuple[Any, bool]]:
        plain = [int(i) for i in indices]
        getitems = getattr(self.data, "__getitems__", None)
        examples = getitems(plain) if getitems is not None else [self.data[i] for i in plain]
        return [(e, not isinstance(i, Repeated)) for e, i in zip(examples, indices, strict=True)]


class MarkedCollate:
    """Collate the examples of :class:`MarkedRows` items with ``collate`` and add ``batch[REAL]``."""

    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, items: list[tuple[Any, bool]]) -> Any:
        return mark_rows(self.collate([example for example, _ in items]), [real for _, real in items])


def bucket_loader(
    data: Any, batch_sampler: BucketBatchSampler, collate: Callable[[list[Any]], Any], num_workers: int = 0
) -> DataLoader:
    """The map-style loader: ``collate``'s batches plus ``batch[REAL]`` (see the module docstring).

    Lightning rebuilds it under DDP around a ``DistributedSampler``, keeping the dataset and collate.
    """
    return DataLoader(
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
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    width = int(lengths.max()) if len(sequences) else 0
    out = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out, lengths
