"""Event fan-out: every event of a conversation reaches every subscriber of that conversation.

:class:`EventBus` serves one process: :meth:`~EventBus.publish` awaits each local subscriber in
turn, so a subscriber sees a conversation's events in order, and a publisher is paced by its
slowest subscriber (a socket's send), as a reply streamed straight to a socket would be.

:class:`RedisEventBus` (setting ``redis.url``) also carries them between processes through Redis
pub/sub, one channel per conversation (``<prefix><conversation id>``), encoded by
:mod:`parley.core.event_codec`. A process subscribes to a conversation's channel only while it
has a local subscriber of it, and skips what it published itself. Publishing does not wait for
Redis: one task sends the events in order, those waiting together in one pipeline. The engine
waits for them (:meth:`~EventBus.flush`, at most PUBLISH_TIMEOUT) before it releases a
conversation's lock, so on Redis a turn's events come before those of the next turn, whichever
process runs it (while Redis answers in time). Pub/sub is fire-and-forget: a
subscriber that attaches mid-turn sees the rest of the turn; while Redis is unreachable other
processes miss events (logged) and turns go on (the store stays the source of truth).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from itertools import count
from typing import Any

from parley.core.event_codec import CodecError, Envelope, decode, encode
from parley.core.events import Event

__all__ = ["Deliver", "Envelope", "EventBus", "RedisEventBus", "Subscription"]

log = logging.getLogger(__name__)

Deliver = Callable[[Envelope], Awaitable[None]]
"""A subscriber: called with each envelope, in order."""


class Subscription:
    """One subscriber of one conversation; :meth:`close` ends it (idempotent)."""

    def __init__(self, bus: EventBus, conversation_id: str, key: int) -> None:
        self.bus = bus
        self.conversation_id = conversation_id
        self.key = key
        self.closed = False

    def close(self) -> None:
        """Stop receiving this conversation's events."""
        if not self.closed:
            self.closed = True
            self.bus._unsubscribe(self)


class EventBus:
    """In-process fan-out of conversation events."""

    def __init__(self) -> None:
        self.node = uuid.uuid4().hex
        """This process's id on the bus."""
        self._subscribers: dict[str, dict[int, Deliver]] = {}
        self._keys = count()

    def subscribe(self, conversation_id: str, deliver: Deliver) -> Subscription:
        """Call ``deliver`` with every later event of the conversation (from any process)."""
        first = conversation_id not in self._subscribers
        key = next(self._keys)
        self._subscribers.setdefault(conversation_id, {})[key] = deliver
        if first:
            self._watch(conversation_id)
        return Subscription(self, conversation_id, key)

    def subscribers(self, conversation_id: str) -> int:
        """How many local subscribers the conversation has."""
        return len(self._subscribers.get(conversation_id, {}))

    def _unsubscribe(self, subscription: Subscription) -> None:
        delivers = self._subscribers.get(subscription.conversation_id)
        if delivers is None:
            return
        delivers.pop(subscription.key, None)
        if not delivers:
            del self._subscribers[subscription.conversation_id]
            self._unwatch(subscription.conversation_id)

    async def publish(self, conversation_id: str, event: Event, origin: str | None = None) -> None:
        """Hand ``event`` to every subscriber of the conversation, here and elsewhere."""
        envelope = Envelope(conversation_id, event, origin, self.node)
        await self._deliver(envelope)
        await self._send(envelope)

    async def _deliver(self, envelope: Envelope) -> None:
        """Local subscribers, one after the other; one that fails is logged and skipped."""
        for deliver in list(self._subscribers.get(envelope.conversation_id, {}).values()):
            try:
                await deliver(envelope)
            except Exception:
                log.exception("an event subscriber failed")

    # -- across processes (RedisEventBus) --------------------------------------------------

    async def _send(self, envelope: Envelope) -> None:
        """Carry the envelope to other processes (nothing to do in one process)."""

    def _watch(self, conversation_id: str) -> None:
        """The first local subscriber of a conversation arrived."""

    def _unwatch(self, conversation_id: str) -> None:
        """The last local subscriber of a conversation left."""

    async def ready(self, conversation_id: str) -> None:
        """Return once events of the conversation from other processes reach this one."""

    async def flush(self) -> None:
        """Return once what was published before went to the other processes (or failed to, or
        a time limit passed); the engine calls it before it releases a conversation's lock."""

    async def start(self) -> None:
        """Start receiving from other processes."""

    async def close(self) -> None:
        """Stop; forget every subscriber."""
        self._subscribers.clear()


class RedisEventBus(EventBus):
    """Fan-out within this process and, through Redis pub/sub, to every other process."""

    RETRY = 1.0
    """Seconds between reconnection attempts while Redis is unreachable."""

    READY_TIMEOUT = 2.0
    """Longest :meth:`ready` waits for Redis to confirm a subscription."""

    PUBLISH_TIMEOUT = 2.0
    """Seconds a publish (or a connection attempt) may take before it is given up (logged)."""

    SEND_QUEUE = 1_000
    """Events at most waiting to be sent to Redis (audio chunks among them); past it, publishing
    waits (a Redis that stalls slows the turns down instead of filling the memory)."""

    def __init__(self, url: str, *, prefix: str = "parley:events:") -> None:
        super().__init__()
        import redis.asyncio as redis

        # A Redis that hangs must not hang a turn: publishing gives up after PUBLISH_TIMEOUT.
        self.client: Any = redis.from_url(
            url, socket_timeout=self.PUBLISH_TIMEOUT, socket_connect_timeout=self.PUBLISH_TIMEOUT
        )
        self.reader: Any = redis.from_url(url, socket_connect_timeout=self.PUBLISH_TIMEOUT)
        self.prefix = prefix
        self.pubsub: Any = self.reader.pubsub()
        self._reader: asyncio.Task[None] | None = None
        self._changes: asyncio.Queue[tuple[bool, str]] = asyncio.Queue()
        self._watching: set[str] = set()
        self._ready: dict[str, asyncio.Event] = {}
        self._pumps: dict[str, _Pump] = {}
        self._send_failed = False
        self._outgoing: asyncio.Queue[tuple[str, bytes] | asyncio.Future[None]] = asyncio.Queue(
            self.SEND_QUEUE
        )
        """Events (channel, message) to send, in order, and :meth:`flush`'s markers."""
        self._sender: asyncio.Task[None] | None = None
        self._closed = False
        self._leaving: dict[bytes, int] = {}
        """Channels unsubscribed whose confirmation is not read yet: a message read before it
        was sent before (it would reach a later subscriber of the channel, stale)."""

    async def _send(self, envelope: Envelope) -> None:
        """Queue the envelope for Redis: publishing does not wait for the round trip. One task
        sends the queue in order, everything waiting in one pipeline (a streamed reply's events
        cost Redis one exchange per batch instead of one each)."""
        try:
            message = (self.prefix + envelope.conversation_id, encode(envelope))
        except Exception as exc:
            self._failed(exc)
            return
        if not self._closed:  # else stopping: this process's subscribers got it
            await self._enqueue(message)

    async def flush(self) -> None:
        """Wait, at most PUBLISH_TIMEOUT, until every event queued so far was sent (or failed
        to be); past that, what is still queued is sent later."""
        if self._sender is None:
            return
        done = asyncio.get_running_loop().create_future()
        with suppress(TimeoutError):
            async with asyncio.timeout(self.PUBLISH_TIMEOUT):
                await self._enqueue(done)
                await asyncio.shield(done)

    async def _enqueue(self, item: tuple[str, bytes] | asyncio.Future[None]) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_queued(), name="parley-event-bus-send")
        await self._outgoing.put(item)

    async def _send_queued(self) -> None:
        while True:
            batch = [await self._outgoing.get()]
            while not self._outgoing.empty():
                batch.append(self._outgoing.get_nowait())
            messages = [item for item in batch if isinstance(item, tuple)]
            try:
                if len(messages) == 1:
                    await self.client.publish(*messages[0])
                elif messages:
                    pipeline = self.client.pipeline(transaction=False)
                    for channel, message in messages:
                        pipeline.publish(channel, message)
                    await pipeline.execute()
            except Exception as exc:  # Redis down: this process's subscribers still got them
                self._failed(exc)
            else:
                if messages:
                    self._send_failed = False
            finally:
                for item in batch:
                    if isinstance(item, asyncio.Future) and not item.done():
                        item.set_result(None)

    def _failed(self, exc: Exception) -> None:
        if not self._send_failed:
            log.warning("event fan-out to other processes failed: %s", exc)
        self._send_failed = True

    def _watch(self, conversation_id: str) -> None:
        self._ready.setdefault(conversation_id, asyncio.Event())
        self._changes.put_nowait((True, conversation_id))

    def _unwatch(self, conversation_id: str) -> None:
        self._changes.put_nowait((False, conversation_id))

    async def ready(self, conversation_id: str) -> None:
        """Wait (boundedly) until Redis confirmed the subscription to the conversation."""
        event = self._ready.get(conversation_id)
        if event is not None and self._reader is not None:
            with suppress(TimeoutError):
                async with asyncio.timeout(self.READY_TIMEOUT):
                    await event.wait()

    async def start(self) -> None:
        """Start the task that subscribes and reads from Redis."""
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="parley-event-bus")

    async def _apply_changes(self) -> None:
        while not self._changes.empty():
            watch, conversation_id = self._changes.get_nowait()
            channel = self.prefix + conversation_id
            if watch and conversation_id in self._subscribers:
                await self.pubsub.subscribe(channel)
                self._watching.add(conversation_id)
                self._ready.setdefault(conversation_id, asyncio.Event()).set()
            elif not watch and conversation_id not in self._subscribers:
                self._ready.pop(conversation_id, None)
                if conversation_id in self._watching:
                    self._watching.discard(conversation_id)
                    key = channel.encode()
                    self._leaving[key] = self._leaving.get(key, 0) + 1
                    await self.pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        failing = False
        while True:
            try:
                await self._apply_changes()
                if not self._watching:
                    change = await self._changes.get()
                    self._changes.put_nowait(change)
                    continue
                message = await self.pubsub.get_message(timeout=0.05)
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("event bus: Redis unreachable (%s); retrying", exc)
                failing = True
                await self._resubscribe_later()
                continue
            if message is not None:
                await self._read_message(message)

    async def _read_message(self, message: dict[str, Any]) -> None:
        kind, channel = message.get("type"), message.get("channel")
        leaving = self._leaving.get(channel, 0)
        if kind == "unsubscribe" and leaving:
            if leaving == 1:
                del self._leaving[channel]
            else:
                self._leaving[channel] = leaving - 1
        elif kind == "message" and not leaving:
            await self._receive(message["data"])

    async def _resubscribe_later(self) -> None:
        """Wait, then subscribe again to everything watched (a new connection)."""
        await asyncio.sleep(self.RETRY)
        with suppress(Exception):
            await self.pubsub.aclose()
        self.pubsub = self.reader.pubsub()
        self._leaving.clear()  # a new connection: nothing of the old one arrives
        for conversation_id in list(self._watching):
            self._watching.discard(conversation_id)
            self._ready[conversation_id] = asyncio.Event()
            self._changes.put_nowait((True, conversation_id))

    async def _receive(self, raw: bytes) -> None:
        try:
            envelope = decode(raw)
        except CodecError as exc:
            log.warning("event bus: dropped a message: %s", exc)
            return
        if envelope.node == self.node or envelope.conversation_id not in self._subscribers:
            return
        # One delivery task per conversation: its order holds, and a slow subscriber (a socket
        # on a bad network) holds up its own conversation only, not the reader.
        conversation_id = envelope.conversation_id
        pump = self._pumps.get(conversation_id)
        if pump is None:
            pump = self._pumps[conversation_id] = _Pump(self, conversation_id)
        pump.put(envelope)

    async def close(self) -> None:
        """Send what is queued (at most PUBLISH_TIMEOUT), stop reading and close the Redis
        connections; what is published after is delivered in this process only."""
        self._closed = True
        await self.flush()
        if self._sender is not None:
            if left := self._outgoing.qsize():
                log.warning("event bus: %d events not sent to other processes at close", left)
            self._sender.cancel()
            with suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        for pump in list(self._pumps.values()):
            pump.task.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        with suppress(Exception):
            await self.pubsub.aclose()
        await self.client.aclose()
        await self.reader.aclose()
        await super().close()


class _Pump:
    """Delivers one conversation's envelopes from other processes, in order, then ends."""

    def __init__(self, bus: RedisEventBus, conversation_id: str) -> None:
        self.bus = bus
        self.conversation_id = conversation_id
        self.queue: asyncio.Queue[Envelope] = asyncio.Queue()
        self.task = asyncio.create_task(self.run(), name=f"event-bus-{conversation_id}")

    def put(self, envelope: Envelope) -> None:
        self.queue.put_nowait(envelope)

    async def run(self) -> None:
        try:
            while not self.queue.empty():
                await self.bus._deliver(self.queue.get_nowait())
        finally:
            if self.bus._pumps.get(self.conversation_id) is self:
                del self.bus._pumps[self.conversation_id]
