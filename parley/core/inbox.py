"""The durable inbox: what adapters receive is stored first, then claimed and answered by one
process under a lease.

An adapter calls :meth:`Inbox.put` (stored, keyed for idempotency: a repeat of the key is not
stored again) and only then acknowledges the platform. Every process runs the same claim loop:
it claims items of the channels it has a handler for (:meth:`Inbox.register`), runs the handler,
renews its leases every ``lease / 3`` seconds while it runs, and marks the item ``done``. When a
process dies its leases expire and another process claims the items again (``attempts`` counts
the tries; past ``max_attempts`` an item is ``failed``). Only the oldest unfinished item of a lane
is claimable, so a chat's or a sender's messages are answered one at a time, in order.

Jobs (pruning old items, sweeping crash leftovers) are inbox items too (channel ``job``, one key
per period): whichever process claims one runs it, so each runs once, not once per process.

One process on SQLite runs the same code: claims are then simply in-process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from msgspec import Meta

from parley.core import store
from parley.core.background import BackgroundTasks
from parley.core.outages import describe
from parley.core.store.records import InboxRecord

__all__ = ["JOB_CHANNEL", "Handler", "Inbox", "InboxSettings"]

log = logging.getLogger(__name__)

JOB_CHANNEL = "job"

Handler = Callable[[InboxRecord], Awaitable[dict[str, Any] | None]]
"""Answers one claimed item; returns the item's ``result`` (what a repeat of its key gets)."""


@dataclass(slots=True)
class InboxSettings:
    """The durable inbox (section ``[inbox]``)."""

    lease: Annotated[float, Meta(ge=1, le=3600)] = 30.0
    """Seconds a claim outlives a holder that stopped renewing it (died): then another process
    answers the item. Renewed every ``lease / 3`` seconds while the holder runs."""
    poll_interval: Annotated[float, Meta(ge=0.05, le=60)] = 1.0
    """Seconds between claim rounds when nothing woke the loop (items put by other processes)."""
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = 5
    """Claims of one item before it is given up as ``failed`` (a message that crashes its turn)."""
    concurrency: Annotated[int, Meta(ge=1, le=10_000)] = 64
    """Items one process answers at the same time (each of a different lane)."""
    keep_days: Annotated[float, Meta(ge=0.01, le=3650)] = 7.0
    """Days a finished item (and its key) is kept: a repeat within them gets the first answer."""
    abandon_after: Annotated[float, Meta(ge=10, le=86_400)] = 600.0
    """Seconds after which a reply still ``pending`` outside any claim is a crash leftover (it
    becomes ``interrupted``)."""


@dataclass(slots=True)
class _Job:
    every: float
    run: Callable[[], Awaitable[Any]]
    last_bucket: int = -1


class Inbox:
    """One process's side of the inbox: puts, the claim loop, leases, jobs."""

    def __init__(self, settings: InboxSettings | None = None, *, holder: str | None = None):
        self.settings = settings or InboxSettings()
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        """This process's name on its claims."""
        self.handlers: dict[str, Handler] = {}
        self.jobs: dict[str, _Job] = {}
        self._held: dict[int, asyncio.Task[Any]] = {}
        self._running = BackgroundTasks("inbox")
        """The items answered from the claim loop, each spawned with its channel's ``drain``."""
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._drains: dict[str, float] = {}
        self.register(JOB_CHANNEL, self._run_job, drain=0.0)

    # -- registration ----------------------------------------------------------------------

    def register(self, channel: str, handler: Handler, *, drain: float = 5.0) -> None:
        """Answer the items of ``channel`` with ``handler`` (one per channel); at shutdown running
        items get ``drain`` seconds (the longest of all channels) before they are given back."""
        self.handlers[channel] = handler
        self._drains[channel] = drain
        self.wake()

    def job(self, name: str, every: float, run: Callable[[], Awaitable[Any]]) -> None:
        """Run ``run`` once per ``every`` seconds across all processes (the first claim wins)."""
        self.jobs[name] = _Job(every, run)
        self.wake()

    # -- putting ---------------------------------------------------------------------------

    async def put(
        self,
        channel: str,
        key: str,
        lane: str,
        *,
        payload: dict[str, Any] | None = None,
        conversation_id: str | None = None,
        user_message_id: str | None = None,
        claim: bool = False,
    ) -> tuple[InboxRecord, bool]:
        """Store an item (``created`` False: a repeat of ``key``, nothing stored).

        With ``claim`` a new item is held by this process at once (the caller answers it inline,
        inside :meth:`hold`); otherwise the claim loop answers it.
        """
        item, created = await store.put_inbox(
            channel,
            key,
            lane,
            payload=payload,
            conversation_id=conversation_id,
            user_message_id=user_message_id,
            claim_for=self.holder if claim else None,
            lease=self.settings.lease,
        )
        if created and not claim:
            self.wake()
        return item, created

    async def take_over(self, item: InboxRecord) -> InboxRecord | None:
        """Claim ``item`` when its holder's lease expired; None when it is held or finished."""
        return await store.claim_inbox_item(item.id, self.holder, lease=self.settings.lease)

    @asynccontextmanager
    async def hold(self, item: InboxRecord) -> AsyncIterator[None]:
        """Renew this process's lease on ``item`` while the block runs; when the lease is lost
        (the process stalled past it and another took the item) the block's task is cancelled."""
        task = asyncio.current_task()
        assert task is not None
        self._held[item.id] = task
        try:
            yield
        finally:
            self._held.pop(item.id, None)

    async def finish(
        self, item: InboxRecord, result: dict[str, Any] | None = None, *, status: str = "done"
    ) -> None:
        """Mark a held item ``done`` (or ``failed``) with its result; wakes the lane's next item."""
        await asyncio.shield(store.finish_inbox(item.id, self.holder, status=status, result=result))
        self.wake()

    async def wait(self, item: InboxRecord) -> InboxRecord:
        """Poll until ``item`` is finished or its lease has expired (its holder died); return it
        (bound it with ``asyncio.timeout``)."""
        delay = 0.05
        while True:
            current = await store.get_inbox(item.channel, item.key)
            if current is None:
                raise LookupError(f"inbox item {item.channel}:{item.key} vanished")
            if current.finished or _expired(current):
                return current
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    # -- the loop --------------------------------------------------------------------------

    def wake(self) -> None:
        """Run a claim round now (an item was put or finished here)."""
        self._wake.set()

    async def start(self) -> None:
        """Start claiming (and renewing leases) in the background."""
        if self._loop_task is not None:
            return
        self._stopping = False
        self._loop_task = asyncio.create_task(self._loop(), name="inbox-claims")
        self._renew_task = asyncio.create_task(self._renew_loop(), name="inbox-leases")

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming; give running items ``grace`` seconds (default: the longest ``drain`` of
        their channels), then give the rest back to the inbox (``queued``)."""
        self._stopping = True
        for task in (self._loop_task, self._renew_task):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self._loop_task = self._renew_task = None
        await self._running.drain(grace)

    @property
    def busy(self) -> int:
        """Items this process is answering from its claim loop now."""
        return len(self._running)

    async def idle(self) -> None:
        """Until no item of a registered channel is unfinished (bound it with ``asyncio.timeout``)."""
        channels = set(self.handlers) - {JOB_CHANNEL}
        while True:
            unfinished = [
                item
                for status in ("queued", "claimed")
                for item in await store.inbox_items(status=status)
                if item.channel in channels
            ]
            if not unfinished and not self._running:
                return
            self.wake()
            await asyncio.sleep(0.05)

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._put_jobs()
                await self._claim_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down: try again next round
                log.warning("inbox: claim round failed: %s: %s", type(exc).__name__, exc)
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # arrives as the wait times out, and the loop would then never stop.
            with suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self._wake.wait()

    async def _claim_round(self) -> None:
        free = self.settings.concurrency - len(self._running)
        if free <= 0:
            return
        items = await store.claim_inbox(
            self.holder, list(self.handlers), lease=self.settings.lease, limit=free
        )
        for item in items:
            self._running.spawn(
                self._run(item),
                name=f"inbox:{item.channel}:{item.id}",
                grace=self._drains[item.channel],
            )

    async def _run(self, item: InboxRecord) -> None:
        if item.attempts > self.settings.max_attempts:
            log.error(
                "inbox: %s %s failed %d times: given up", item.channel, item.key, item.attempts - 1
            )
            await self.finish(item, {"error": "too_many_attempts"}, status="failed")
            return
        handler = self.handlers[item.channel]
        try:
            async with self.hold(item):
                result = await handler(item)
        except asyncio.CancelledError:
            if self._stopping:
                with suppress(Exception):
                    await asyncio.shield(store.release_inbox(item.id, self.holder))
            raise
        except Exception as exc:
            if (outage := describe(exc)) is not None:  # database or Redis down: one line
                log.warning("inbox: %s %s cut: %s unavailable", item.channel, item.key, outage.part)
                # An outage is not the message's fault: it does not count towards max_attempts
                # (with the database down too, the refund fails and one attempt is spent).
                with suppress(Exception):
                    await store.refund_attempt(item.id, self.holder)
            else:
                log.exception("inbox: answering %s %s failed", item.channel, item.key)
            # Left claimed: claimed again once the lease expires (attempts counts the tries).
            return
        await self.finish(item, result)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease / 3)
            ids = list(self._held)
            if not ids:
                continue
            try:
                held = await store.renew_inbox(ids, self.holder, lease=self.settings.lease)
            except Exception as exc:
                log.warning("inbox: could not renew leases: %s: %s", type(exc).__name__, exc)
                continue
            for item_id in set(ids) - held:
                task = self._held.pop(item_id, None)
                if task is not None:
                    log.warning("inbox: lost the lease on item %s: stopping its turn", item_id)
                    task.cancel()

    # -- jobs ------------------------------------------------------------------------------

    async def _put_jobs(self) -> None:
        now = time.time()
        for name, job in self.jobs.items():
            bucket = int(now // job.every)
            if bucket == job.last_bucket:
                continue
            await store.put_inbox(
                JOB_CHANNEL, f"{name}:{bucket}", f"job:{name}", payload={"name": name}
            )
            job.last_bucket = bucket

    async def _run_job(self, item: InboxRecord) -> dict[str, Any]:
        job = self.jobs.get(str(item.payload.get("name")))
        if job is None:
            return {"skipped": "no such job here"}
        outcome = await job.run()
        return {"outcome": outcome} if outcome is not None else {}


def _expired(item: InboxRecord) -> bool:
    return (
        item.status == "claimed"
        and item.lease_until is not None
        and item.lease_until < datetime.now(UTC)
    )
