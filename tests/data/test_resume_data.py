"""The loaders' position is part of the checkpoint: a loader resumed from ``state_dict()`` continues the
epoch exactly (same remaining batches, same RNG states), map-style and streamed, with and without workers.

The end-to-end check (a fit killed with ``kill -9`` mid-epoch, resumed with ``--ckpt_path``) is
``tests/data/test_resume_fit.py``.
"""

from __future__ import annotations

import random
from typing import Any

import datasets
import pytest
import torch

from seqtasks.data.batching import REAL, StreamingBatches, bucket_batches, bucket_loader, stream_loader

LENGTHS = [(i * 7) % 13 + 1 for i in range(90)]


def _collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"index": torch.tensor([e["index"] for e in examples])}


def _rows(batches: list[dict[str, Any]]) -> list[list[int]]:
    return [b["index"].tolist() for b in batches]


def _map_loader(epoch: int, workers: int = 0) -> Any:
    data = [{"index": i, "length": n} for i, n in enumerate(LENGTHS)]
    sampler = bucket_batches(LENGTHS, batch_size=4, shuffle=True, seed=3, pool_batches=3)
    sampler.sampler.set_epoch(epoch)
    return bucket_loader(data, sampler, _collate, num_workers=workers)


def _stream(shards: int) -> datasets.IterableDataset:
    rows = [{"index": i, "length": n} for i, n in enumerate(LENGTHS)]
    return datasets.Dataset.from_list(rows).to_iterable_dataset(num_shards=shards)


def _stream_loader(workers: int, epoch: int, shards: int = 3, num_batches: int | None = None) -> Any:
    batches = StreamingBatches(
        _stream(shards), _collate, 4, pool_batches=2, seed=5, shuffle_buffer=20, num_batches=num_batches
    )
    batches.set_epoch(epoch)
    return stream_loader(batches, num_workers=workers)


def _interrupted(make: Any, stop: int) -> tuple[list[list[int]], list[list[int]]]:
    """Rows of an uninterrupted epoch's batches, and of one stopped after ``stop`` batches then resumed
    by a new loader from the first one's ``state_dict()``."""
    whole = _rows(list(make()))
    first = make()
    before = []
    for batch in first:
        before.append(batch)
        if len(before) == stop:
            state = first.state_dict()
            break
    del first
    resumed = make()
    resumed.load_state_dict(state)
    return whole, _rows(before) + _rows(list(resumed))


@pytest.mark.parametrize(("stop", "workers"), [(1, 0), (7, 0), (17, 0), (7, 2)])
def test_map_loader_resumes_the_epoch_exactly(stop: int, workers: int) -> None:
    whole, resumed = _interrupted(lambda: _map_loader(epoch=2, workers=workers), stop)
    assert resumed == whole
    assert sorted(i for b in resumed for i in b) == list(range(90))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("stop", [1, 6, 13])
def test_stream_loader_resumes_the_epoch_exactly(workers: int, stop: int) -> None:
    whole, resumed = _interrupted(lambda: _stream_loader(workers, epoch=1), stop)
    assert resumed == whole
    assert sorted(i for b in resumed for i in b) == list(range(90))


def test_resumed_loader_restores_the_rng_states() -> None:
    """Dropout after the resume draws what it would have drawn: torch and python RNG as at the save."""
    loader = _map_loader(epoch=0)
    torch.manual_seed(1)
    random.seed(1)
    iterator = iter(loader)
    next(iterator)
    state = loader.state_dict()
    expected = torch.rand(4), random.random()
    torch.manual_seed(77)
    random.seed(77)
    resumed = _map_loader(epoch=0)
    resumed.load_state_dict(state)
    next(iter(resumed))  # the iterator is made (it draws a seed), then the states come back
    assert torch.equal(torch.rand(4), expected[0])
    assert random.random() == expected[1]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_resumed_loader_takes_its_epoch_from_the_state(streamed: bool) -> None:
    """Lightning does not call ``on_train_epoch_start`` (where a stream learns its epoch) in an epoch it
    resumes: the state carries the epoch, so a loader made for epoch 0 continues epoch 3."""
    make = (lambda epoch: _stream_loader(0, epoch)) if streamed else _map_loader
    whole = _rows(list(make(3)))
    first = make(3)
    iterator = iter(first)
    before = [next(iterator) for _ in range(4)]
    state = first.state_dict()
    resumed = make(0)
    resumed.load_state_dict(state)
    assert _rows(before) + _rows(list(resumed)) == whole


def test_stream_loader_pads_to_its_count_over_workers() -> None:
    """Two workers cut a short batch each; the loader, not a worker, pads the rank to ``num_batches``."""
    batches = _rows_and_real(_stream_loader(2, epoch=0, num_batches=26))
    assert len(batches) == 26
    real = [i for rows, flags in batches for i, f in zip(rows, flags, strict=True) if f]
    assert sorted(real) == list(range(90))
    assert not all(f for _, flags in batches for f in flags)


def _rows_and_real(loader: Any) -> list[tuple[list[int], list[bool]]]:
    return [(b["index"].tolist(), b[REAL].tolist()) for b in loader]


def test_stream_loader_refuses_more_batches_than_its_count() -> None:
    """A rank that would give more batches than the others would hang DDP: it stops with an error."""
    with pytest.raises(RuntimeError, match="more than the 5 batches"):
        list(_stream_loader(0, epoch=0, num_batches=5))


def test_each_rank_resumes_from_its_own_position(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under DDP every rank's position is in the checkpoint (gathered at the save) and each rank takes
    its own back; a checkpoint of another world size restarts the epoch, with a warning."""
    from seqtasks.data import batching

    loaders = [_stream_loader(0, epoch=1) for _ in range(2)]
    iterators = [iter(loader) for loader in loaders]
    for rank, iterator in enumerate(iterators):
        for _ in range(2 + 3 * rank):  # the two ranks at different places of their streams
            next(iterator)
    own = [loader.state_dict()["ranks"][0] for loader in loaders]
    monkeypatch.setattr(batching, "_gather", lambda state: own)
    monkeypatch.setattr(batching, "_rank_world", lambda: (1, 2))
    state = loaders[0].state_dict()
    assert [r["batches"] for r in state["ranks"]] == [2, 5]
    resumed = _stream_loader(0, epoch=0)
    resumed.load_state_dict(state)
    whole = _rows(list(_stream_loader(0, epoch=1)))
    assert _rows(list(resumed)) == whole[5:]
    monkeypatch.setattr(batching, "_rank_world", lambda: (0, 3))
    with pytest.warns(UserWarning, match="starts again"):
        _stream_loader(0, epoch=1).load_state_dict(state)
