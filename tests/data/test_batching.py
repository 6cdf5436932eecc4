"""Length-bucketed batching (map-style and streaming) and padding."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import datasets
import pytest
import torch
from datasets.distributed import split_dataset_by_node
from lightning.fabric.utilities.data import _replace_dunder_methods
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler

from seqtasks.data.batching import (
    BucketBatchSampler,
    EpochRandomSampler,
    StreamingBatches,
    bucket_batches,
    pad_sequences,
)

# distinct lengths, so "sorted by length" has exactly one answer
LENGTHS = random.Random(0).sample(range(1, 500), 103)


def _flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def test_epoch_random_sampler_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    """Each epoch is a permutation that a resumed run (same seed, same epoch) reproduces."""
    sampler = EpochRandomSampler(LENGTHS, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(len(LENGTHS)))
    assert list(EpochRandomSampler(LENGTHS, seed=3)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(EpochRandomSampler(LENGTHS, seed=4)) != first


@pytest.mark.parametrize("shuffle", [True, False])
def test_bucket_sampler_yields_every_index_once_per_epoch(shuffle: bool) -> None:
    """No example is lost or repeated, in training (shuffled) or evaluation order, over several epochs."""
    sampler = bucket_batches(LENGTHS, batch_size=8, shuffle=shuffle, seed=0, pool_batches=3)
    for epoch in range(3):
        if shuffle:
            sampler.sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(_flat(batches)) == list(range(len(LENGTHS)))
        assert all(1 <= len(batch) <= 8 for batch in batches)


@pytest.mark.parametrize("shuffle", [True, False])
def test_bucket_sampler_sorts_each_pool_by_length(shuffle: bool) -> None:
    """Each pool of the inner order is sorted by length and cut into batches: little padding per batch."""
    batch_size, pool_batches = 4, 3
    sampler = bucket_batches(
        LENGTHS, batch_size=batch_size, shuffle=shuffle, seed=0, pool_batches=pool_batches
    )
    order = list(sampler.sampler)
    batches = list(sampler)
    pool_size = batch_size * pool_batches
    start = 0
    for offset in range(0, len(order), pool_size):
        pool = order[offset : offset + pool_size]
        group = batches[start : start + math.ceil(len(pool) / batch_size)]
        start += len(group)
        # the pool's batches, put back in length order, are exactly the pool sorted by length
        assert _flat(sorted(group, key=lambda b: LENGTHS[b[0]])) == sorted(pool, key=LENGTHS.__getitem__)
    assert start == len(batches)


def test_bucket_sampler_shuffles_batches_within_a_pool() -> None:
    """Training does not see batches in increasing length order (that would bias every epoch)."""
    sampler = bucket_batches(LENGTHS, batch_size=4, shuffle=True, seed=0, pool_batches=10)
    first_lengths = [LENGTHS[batch[0]] for batch in sampler][:10]
    assert first_lengths != sorted(first_lengths)


@pytest.mark.parametrize(
    ("size", "batch_size", "pool_batches", "drop_last"),
    [
        (103, 8, 3, False),
        (103, 8, 3, True),
        (96, 8, 3, False),
        (96, 8, 4, True),
        (5, 8, 50, False),
        (7, 8, 2, True),
    ],
)
def test_bucket_sampler_len_matches_batches(
    size: int, batch_size: int, pool_batches: int, drop_last: bool
) -> None:
    """``len()`` is what Lightning uses for progress and schedulers: it must equal the batches yielded."""
    lengths = LENGTHS[:size]
    sampler = BucketBatchSampler(
        SequentialSampler(lengths),
        batch_size,
        drop_last=drop_last,
        lengths=lengths,
        pool_batches=pool_batches,
    )
    batches = list(sampler)
    assert len(sampler) == len(batches)
    if drop_last:
        assert all(len(batch) == batch_size for batch in batches)


def test_bucket_sampler_order_depends_only_on_seed_and_epoch() -> None:
    """Same (seed, epoch) → same batches, on a fresh sampler too; another epoch or seed → another order."""

    def batches(seed: int, epoch: int) -> list[list[int]]:
        sampler = bucket_batches(LENGTHS, batch_size=4, shuffle=True, seed=seed, pool_batches=3)
        sampler.sampler.set_epoch(epoch)
        return list(sampler)

    sampler = bucket_batches(LENGTHS, batch_size=4, shuffle=True, seed=7, pool_batches=3)
    sampler.sampler.set_epoch(2)
    assert list(sampler) == list(sampler) == batches(7, 2)
    assert batches(7, 3) != batches(7, 2)
    assert batches(8, 2) != batches(7, 2)


@pytest.mark.parametrize("size", [100, 101])
def test_bucket_sampler_over_distributed_sampler_shards_once(size: int) -> None:
    """Under DDP each rank buckets only its share: shares cover the data, are disjoint when the size divides,
    and every rank yields the same number of batches (an uneven count hangs DDP)."""
    lengths = LENGTHS[:size]
    per_rank = []
    counts = []
    for rank in range(2):
        inner = DistributedSampler(lengths, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler = BucketBatchSampler(inner, 8, lengths=lengths, pool_batches=3)
        batches = list(sampler)
        assert len(sampler) == len(batches)
        per_rank.append(_flat(batches))
        counts.append(len(batches))
    assert counts[0] == counts[1]
    assert set(per_rank[0]) | set(per_rank[1]) == set(range(size))
    if size % 2 == 0:
        assert not set(per_rank[0]) & set(per_rank[1])
        assert len(per_rank[0]) + len(per_rank[1]) == size


def test_bucket_sampler_follows_distributed_sampler_epoch() -> None:
    """Lightning calls ``set_epoch`` on the inner sampler; the bucketing shuffle must follow it too."""
    inner = DistributedSampler(LENGTHS, num_replicas=2, rank=0, shuffle=False)
    sampler = BucketBatchSampler(inner, 4, lengths=LENGTHS, pool_batches=3, seed=0)
    first = list(sampler)
    inner.set_epoch(1)  # same indices (no inner shuffle): only the batch order may change
    second = list(sampler)
    assert sorted(map(tuple, first)) == sorted(map(tuple, second))
    assert first != second


def test_lightning_injects_a_distributed_sampler_and_keeps_lengths() -> None:
    """Lightning rebuilds our batch sampler around its DistributedSampler from the saved init arguments;
    lengths, pool size and seed must survive, or DDP training crashes or loses the bucketing."""
    lengths = LENGTHS[:100]
    with _replace_dunder_methods(BatchSampler):  # what Lightning does around the *_dataloader hooks
        batch_sampler = bucket_batches(lengths, batch_size=8, shuffle=True, seed=5, pool_batches=3)
    loader = DataLoader(list(range(100)), batch_sampler=batch_sampler)
    seen = []
    for rank in range(2):
        distributed = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        rebuilt = _update_dataloader(loader, distributed).batch_sampler
        assert isinstance(rebuilt, BucketBatchSampler) and rebuilt.sampler is distributed
        assert (rebuilt.lengths, rebuilt.pool_batches, rebuilt.seed) == (lengths, 3, 5)
        seen.append(_flat(list(rebuilt)))
    assert sorted(seen[0] + seen[1]) == list(range(100))


def _stream(size: int, offset: int = 0) -> list[dict[str, Any]]:
    return [{"index": offset + i, "length": LENGTHS[offset + i]} for i in range(size)]


def _collate(examples: list[dict[str, Any]]) -> list[int]:
    return [example["index"] for example in examples]


def test_streaming_batches_yield_every_example_once_sorted_within_pools() -> None:
    """Without padding to a count, a stream's examples each appear once, in length-sorted batches."""
    batches = list(StreamingBatches(_stream(50), _collate, batch_size=4, pool_batches=3, seed=0))
    assert sorted(_flat(batches)) == list(range(50))
    for batch in batches:
        assert [LENGTHS[i] for i in batch] == sorted(LENGTHS[i] for i in batch)
    pools = [_flat(sorted(batches[i : i + 3], key=lambda b: LENGTHS[b[0]])) for i in range(0, 12, 3)]
    for pool_number, pool in enumerate(pools):
        assert sorted(pool) == list(range(12 * pool_number, 12 * pool_number + 12))
        assert [LENGTHS[i] for i in pool] == sorted(LENGTHS[i] for i in pool)


def test_streaming_batches_order_follows_epoch() -> None:
    """Same epoch → same batches; ``set_epoch`` changes the order (Lightning does not do it for us)."""
    batches = StreamingBatches(_stream(60), _collate, batch_size=4, pool_batches=5, seed=0)
    first = list(batches)
    assert list(batches) == first
    batches.set_epoch(1)
    assert list(batches) != first
    assert sorted(_flat(list(batches))) == list(range(60))


def test_streaming_batches_pad_a_short_rank_to_num_batches() -> None:
    """A rank with fewer examples repeats its first ones up to ``num_batches``, counted in ``repeated``."""
    batches = StreamingBatches(_stream(10), _collate, batch_size=4, pool_batches=2, num_batches=5)
    out = list(batches)
    assert len(out) == len(batches) == 5
    assert set(_flat(out)) == set(range(10))
    counts = Counter(_flat(out))
    assert sum(counts.values()) == 10 + batches.repeated
    assert batches.repeated == 2 * 4  # two extra batches of the first 4 examples


def test_streaming_batches_without_count_have_no_len() -> None:
    """An unknown batch count is an error, not a guess."""
    with pytest.raises(TypeError, match="not known"):
        len(StreamingBatches(_stream(3), _collate, batch_size=2))


def test_streaming_batches_split_by_node_give_equal_counts_and_cover_all() -> None:
    """Two ranks over ``split_dataset_by_node`` of an odd-sized stream: equal batch counts, every example."""
    size, batch_size = 21, 5
    stream = datasets.Dataset.from_list(_stream(size)).to_iterable_dataset(num_shards=1)
    shares = [split_dataset_by_node(stream, rank=rank, world_size=2) for rank in range(2)]
    most = max(sum(1 for _ in share) for share in shares)
    num_batches = math.ceil(most / batch_size)
    outputs = []
    for share in shares:
        batches = StreamingBatches(share, _collate, batch_size, pool_batches=2, num_batches=num_batches)
        outputs.append(list(batches))
    assert len(outputs[0]) == len(outputs[1]) == num_batches
    assert set(_flat(outputs[0])) | set(_flat(outputs[1])) == set(range(size))
    assert not set(_flat(outputs[0])) & set(_flat(outputs[1]))


def test_pad_sequences_right_pads_and_returns_lengths() -> None:
    """Rows are right-padded with ``pad_value``; lengths are the true lengths (empty rows allowed)."""
    tokens, lengths = pad_sequences([[5, 6, 7], [8], []], pad_value=0)
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0]
    assert tokens.dtype == lengths.dtype == torch.long
    tokens, _ = pad_sequences([[1], [2, 3]], pad_value=9)
    assert tokens.tolist() == [[1, 9], [2, 3]]
    tokens, lengths = pad_sequences([])
    assert tokens.shape == (0, 0) and lengths.shape == (0,)
