"""Micro-batching: concurrent requests to one model answered by one predictor call.

A request puts its items (texts) on the batcher's asyncio queue and awaits their results. The batcher's
loop takes the first waiting request, then keeps collecting until ``max_batch`` items are gathered or
``max_wait_ms`` has passed since the first one arrived, runs the predictor once on all of them in the
model's worker thread (one thread per model, so a model never runs two batches at once and the event loop
keeps serving), and hands each request its slice of the results.

If a batch fails (one input the predictor refuses), each request of it is run again on its own, so only
the request at fault gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BatchStats:
    """What a batcher did: requests and items answered, predictor calls (batches) run, the largest batch."""

    requests: int = 0
    items: int = 0
    batches: int = 0
    largest_batch: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "items": self.items,
            "batches": self.batches,
            "largest_batch": self.largest_batch,
        }


@dataclass
class _Pending:
    items: Sequence[Any]
    future: asyncio.Future


class MicroBatcher:
    """Collects items for ``predict`` (a list of items → a list of results, in order).

    Args:
        predict: the batched predictor call; runs in ``executor``.
        executor: the model's worker thread.
        max_batch: at most this many items per call (a request larger than that runs alone).
        max_wait_ms: how long the first request of a batch waits for others; 0 takes only those already
            waiting (they queue up while the previous batch runs), so a lone request never waits.
    """

    def __init__(
        self,
        predict: Callable[[list[Any]], list[Any]],
        executor: Executor,
        max_batch: int = 32,
        max_wait_ms: float = 0.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.predict = predict
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        """The results of ``items`` (raises what the predictor raised for them)."""
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        future = asyncio.get_running_loop().create_future()
        assert self._queue is not None
        await self._queue.put(_Pending(list(items), future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        carried: _Pending | None = None  # a request too large to join the previous batch starts the next
        while True:
            batch = [carried if carried is not None else await queue.get()]
            carried = None
            size = len(batch[0].items)
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    pending = queue.get_nowait() if left <= 0 else await asyncio.wait_for(queue.get(), left)
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if size + len(pending.items) > self.max_batch:
                    carried = pending
                    break
                batch.append(pending)
                size += len(pending.items)
            await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        items = [item for pending in batch for item in pending.items]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.predict, items)
        except Exception:
            if len(batch) == 1:
                await self._answer_alone(batch[0])
            else:
                for pending in batch:  # find the request at fault: each alone
                    await self._answer_alone(pending)
            return
        self._count(batch, len(items))
        start = 0
        for pending in batch:
            end = start + len(pending.items)
            if not pending.future.done():
                pending.future.set_result(results[start:end])
            start = end

    async def _answer_alone(self, pending: _Pending) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.predict, list(pending.items))
        except Exception as error:
            if not pending.future.done():
                pending.future.set_exception(error)
            return
        self._count([pending], len(pending.items))
        if not pending.future.done():
            pending.future.set_result(results)

    def _count(self, batch: list[_Pending], items: int) -> None:
        stats = self.stats
        stats.requests += len(batch)
        stats.items += items
        stats.batches += 1
        stats.largest_batch = max(stats.largest_batch, items)
        stats.sizes[items] = stats.sizes.get(items, 0) + 1
