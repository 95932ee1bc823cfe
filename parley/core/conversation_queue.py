"""The FIFO of a live conversation: commands run one at a time, the reply in flight can be cut.

:class:`CommandQueue` is the part of :class:`~parley.core.conversation.LiveConversation` that
runs queued commands in order, each in a task of its own, and interrupts the running reply
(the engine stores it ``interrupted``; subscribers get :class:`~parley.core.events.Interrupted`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from parley.core.background import BackgroundTasks
from parley.core.bus import EventBus
from parley.core.conversation_commands import Command
from parley.core.conversation_run import merge_metadata
from parley.core.events import Interrupted

__all__ = ["CommandQueue", "Job"]

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Job:
    """One queued command and the future its submitter holds."""

    command: Command
    future: asyncio.Future[Any]
    origin: str | None = None
    replying: bool = False
    """A reply (a turn, a prompt): interrupt and barge-in may cut it short."""
    spoken: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class CommandQueue:
    """Runs queued commands in order; subclasses say how (:meth:`_execute`)."""

    def __init__(self, bus: EventBus, conversation_id: str) -> None:
        self.bus = bus
        self.id = conversation_id
        self.queue: deque[Job] = deque()
        self.current: Job | None = None
        self.streaming: str | None = None
        self.announced: str | None = None
        """Id of the latest reply started in any process and not yet complete (its row may not
        be stored yet: a reply is inserted once its LLM request has left)."""
        """Id of the message whose text or audio is being produced (None between messages)."""
        self._worker: asyncio.Task[None] | None = None
        self._cut: asyncio.Task[None] | None = None
        self._cut_metadata: dict[str, Any] | None = None
        self._tasks = BackgroundTasks(f"conversation {conversation_id}")
        """Work settled outside the FIFO (:meth:`_settle`), each in a task of its own."""

    async def _execute(self, job: Job) -> None:
        raise NotImplementedError

    def barge_in_allowed(self, spoken: bool) -> bool:
        """Whether the user may cut the reply in flight short (it is ``spoken``...)."""
        return spoken

    def _busy(self) -> None:
        """A command starts."""

    def _idle(self) -> None:
        """Nothing runs or waits any more."""

    def _maybe_drop(self) -> None:
        """Something that kept the conversation live is over."""

    def _enqueue(self, job: Job) -> None:
        self.queue.append(job)
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"conversation-{self.id}")

    def _settle(self, future: asyncio.Future[Any] | None, work: Any) -> None:
        """Run ``work`` now (a task of its own) and settle ``future`` with its result (None:
        nobody waits; a failure is logged)."""
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_log_failure)

        async def run() -> None:
            try:
                result = await work
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                self._maybe_drop()

        self._tasks.spawn(run())

    @property
    def replying(self) -> bool:
        """A reply (a turn, a prompt) is running: interrupt may cut it short."""
        job = self.current
        return job is not None and job.replying and job.task is not None and not job.task.done()

    async def interrupt(
        self, metadata: dict[str, Any] | None = None, *, barge_in: bool = False
    ) -> str | None:
        """Cut the reply in flight short; queued commands go on.

        A reply cut mid-stream is stored as ``interrupted`` with its text so far and subscribers
        get :class:`~parley.core.events.Interrupted` before anything of the next command.
        Returns that message id, or None when no reply was running (or, with ``barge_in``, when
        it is not spoken or the template forbids barge-in). ``metadata`` is merged into the cut
        message's stored metadata.
        """
        job = self.current
        if job is None or job.task is None or job.task.done() or not job.replying:
            return None
        if barge_in and not self.barge_in_allowed(job.spoken):
            return None
        message_id = self.streaming
        if self._cut is not job.task:  # cancel once: a second cancel would cut the clean-up short
            self._cut = job.task
            self._cut_metadata = metadata
            job.task.cancel()
        try:
            await asyncio.wait({job.task})
        finally:
            self._cut_metadata = None
        return message_id

    # -- the FIFO --------------------------------------------------------------------------

    async def _work(self) -> None:
        try:
            while self.queue:
                job = self.queue.popleft()
                if job.future.done():
                    continue
                self._busy()
                self.current = job
                job.task = asyncio.create_task(self._run(job))
                try:
                    await asyncio.wait({job.task})
                except asyncio.CancelledError:
                    job.task.cancel()
                    with suppress(asyncio.CancelledError):
                        await job.task
                    raise
                finally:
                    self.current = None
                    if not job.future.done():
                        job.future.set_result("interrupted")
        finally:
            self._worker = None
            self._idle()
            self._maybe_drop()

    async def _run(self, job: Job) -> None:
        try:
            await self._execute(job)
        except asyncio.CancelledError:
            message_id, self.streaming = self.streaming, None
            if message_id is not None:
                metadata = self._cut_metadata if self._cut is job.task else None
                if metadata:
                    with suppress(LookupError):
                        await merge_metadata(message_id, metadata)
                await self.bus.publish(self.id, Interrupted(message_id), job.origin)
            if not job.future.done():
                job.future.set_result("interrupted")
            raise
        except Exception as exc:
            if not job.future.done():
                job.future.set_exception(exc)
        else:
            if not job.future.done():
                job.future.set_result("done")
        finally:
            self.streaming = None


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("conversation runtime: background work failed", exc_info=future.exception())
