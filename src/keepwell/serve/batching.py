"""Adaptive micro-batching: concurrent requests for one model run as one model call.

Each model has a queue. A worker takes the first waiting request, then everything else already
queued, up to ``max_batch``. It waits for more, up to ``max_wait_ms``, only while other
requests for the model are still being parsed (so a lone client pays no waiting). Two workers
per model let one batch be scored while the previous one is being synced to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["MicroBatcher", "Pending"]

T = TypeVar("T")


@dataclass
class Pending(Generic[T]):
    """One request waiting in a batch queue, and the future its answer goes to."""

    payload: T
    future: asyncio.Future[Any]
    received: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[T]):
    """Feeds batches of ``Pending`` items to ``run_batch``, which resolves their futures."""

    def __init__(self, run_batch: Callable[[list[Pending[T]]], Awaitable[None]], *,
                 max_batch: int = 64, max_wait_ms: float = 2.0, workers: int = 2) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue: asyncio.Queue[Pending[T]] = asyncio.Queue()
        self.arriving = 0  # requests admitted but not yet queued (still being parsed)
        self._tasks = [asyncio.get_running_loop().create_task(self._work())
                       for _ in range(workers)]

    async def submit(self, payload: T) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.queue.put(Pending(payload, future))
        return await future

    @contextlib.contextmanager
    def admitting(self) -> Any:
        """Mark a request as on its way, so that a forming batch may wait for it."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    async def _collect(self) -> list[Pending[T]]:
        batch = [await self.queue.get()]
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if self.arriving == 0 or remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            try:
                await self.run_batch(batch)
            except Exception as exc:  # noqa: BLE001  (each waiting request gets the error)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
