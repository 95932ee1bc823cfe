"""Background work that must never delay a turn, and must not be lost at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["BackgroundTasks"]

log = logging.getLogger(__name__)


class BackgroundTasks:
    """A set of tracked tasks: :meth:`spawn` starts one, :meth:`drain` finishes them all."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._graces: dict[asyncio.Task[Any], float] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def running(self) -> list[asyncio.Task[Any]]:
        """The tasks not finished yet."""
        return list(self._tasks)

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str | None = None,
        grace: float | None = None,
    ) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; an exception it raises is logged. ``grace``: the
        seconds it gets to finish when :meth:`drain` is given none."""
        task = asyncio.get_running_loop().create_task(coro, name=name or self.name)
        self._tasks.add(task)
        if grace is not None:
            self._graces[task] = grace
        task.add_done_callback(self._done)
        return task

    @contextmanager
    def holding(self, task: asyncio.Task[Any] | None) -> Iterator[None]:
        """Count ``task`` (one this set did not start: a framework's handler) as running while
        the block runs, so :meth:`drain` waits for it (and cancels it after the grace)."""
        if task is None:
            yield
            return
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._graces.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: background task failed", self.name, exc_info=task.exception())

    async def wait(self) -> None:
        """Wait until no task is running (tasks spawned meanwhile included)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def drain(self, grace: float | None = None) -> None:
        """Give running tasks ``grace`` seconds to finish, then cancel the rest and wait.

        ``grace`` None: the longest grace the running tasks were spawned with (0 for none).
        """
        if not self._tasks:
            return
        if grace is None:
            grace = max(self._graces.values(), default=0.0)
        _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
        if pending:
            log.warning("%s: cancelling %d unfinished task(s) at shutdown", self.name, len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
