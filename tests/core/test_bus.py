"""The event bus: the codec's stable form, in-process fan-out, and Redis between two buses."""

from __future__ import annotations

import asyncio
import os

import msgspec
import pytest
import redis.asyncio as redis

from parley.core import store
from parley.core.bus import EventBus, RedisEventBus
from parley.core.event_codec import VERSION, CodecError, Envelope, decode, encode
from parley.core.events import AudioChunk, MessageCompleted, TextDelta, TurnCompleted
from parley.core.inbound import Inbound
from parley.testing import Step, collect
from parley.testing_services import TcpProxy

REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_the_codec_round_trips_every_field_and_keeps_audio_as_bytes():
    chunk = AudioChunk("m-1", 2, 3, b"\x00\xff" * 10, "pcm_16000", "alex")
    envelope = Envelope("c-1", chunk, "socket-1", "node-1")
    raw = encode(envelope)
    assert decode(raw) == envelope
    value = msgspec.msgpack.decode(raw)
    assert value == {
        "v": VERSION,
        "conversation_id": "c-1",
        "origin": "socket-1",
        "node": "node-1",
        "type": "AudioChunk",
        "event": {
            "message_id": "m-1",
            "sentence_index": 2,
            "chunk_index": 3,
            "data": b"\x00\xff" * 10,
            "format": "pcm_16000",
            "character_id": "alex",
        },
    }


def test_the_codec_ignores_unknown_fields_and_refuses_what_it_cannot_read():
    later = {
        "v": VERSION,
        "conversation_id": "c",
        "origin": None,
        "node": "n",
        "type": "TurnCompleted",
        "event": {"conversation_id": "c", "turn_count": 3, "added_later": True},
    }
    assert decode(msgspec.msgpack.encode(later)).event == TurnCompleted("c", 3)
    for bad in (
        b"not msgpack \xc1",
        msgspec.msgpack.encode([1, 2]),
        msgspec.msgpack.encode({**later, "v": VERSION + 1}),
        msgspec.msgpack.encode({**later, "type": "Nope"}),
        msgspec.msgpack.encode({**later, "event": {"conversation_id": 5, "turn_count": 1}}),
    ):
        with pytest.raises(CodecError):
            decode(bad)


async def test_local_subscribers_get_events_in_order_and_a_failing_one_is_skipped():
    bus = EventBus()
    seen: list[str] = []

    async def good(envelope):
        seen.append(envelope.event.text)

    async def bad(envelope):
        raise RuntimeError("boom")

    bus.subscribe("c", bad)
    subscription = bus.subscribe("c", good)
    bus.subscribe("other", good)
    for text in ("a", "b", "c"):
        await bus.publish("c", TextDelta("m", text))
    assert seen == ["a", "b", "c"]
    subscription.close()
    subscription.close()
    await bus.publish("c", TextDelta("m", "d"))
    assert seen == ["a", "b", "c"]
    assert bus.subscribers("c") == 1


async def test_redis_carries_events_to_the_other_process_only(redis_prefix):
    here = RedisEventBus(REDIS_URL, prefix=redis_prefix)
    there = RedisEventBus(REDIS_URL, prefix=redis_prefix)
    await here.start()
    await there.start()
    try:
        local: list = []
        remote: list = []
        arrived = asyncio.Event()

        async def on_here(envelope):
            local.append(envelope)

        async def on_there(envelope):
            remote.append(envelope)
            if isinstance(envelope.event, MessageCompleted):
                arrived.set()

        here.subscribe("c", on_here)
        subscription = there.subscribe("c", on_there)
        await there.ready("c")
        await here.publish("c", TextDelta("m", "hel"), origin="socket-1")
        await here.publish("c", MessageCompleted("m", "hello", "complete"))
        await asyncio.wait_for(arrived.wait(), 5)
        assert [e.event for e in remote] == [
            TextDelta("m", "hel"),
            MessageCompleted("m", "hello", "complete"),
        ]
        assert remote[0].origin == "socket-1" and remote[0].node == here.node
        assert [e.event for e in local] == [e.event for e in remote]  # once each, not echoed
        subscription.close()
        for _ in range(100):  # unsubscribed on Redis once the last local subscriber left
            if not there._watching:
                break
            await asyncio.sleep(0.01)
        assert not there._watching
    finally:
        await here.close()
        await there.close()


async def test_a_redis_outage_costs_only_live_events_and_the_bus_recovers(redis_prefix):
    async with TcpProxy(REDIS_URL) as proxy:
        here = RedisEventBus(REDIS_URL, prefix=redis_prefix)
        there = RedisEventBus(proxy.url, prefix=redis_prefix)
        there.RETRY = 0.05
        await here.start()
        await there.start()
        try:
            remote: list[str] = []
            local: list[str] = []

            async def on_there(envelope):
                remote.append(envelope.event.text)

            async def on_here(envelope):
                local.append(envelope.event.text)

            there.subscribe("c", on_there)
            here.subscribe("c", on_here)
            await there.ready("c")
            await here.publish("c", TextDelta("m", "before"))
            for _ in range(200):
                if remote:
                    break
                await asyncio.sleep(0.01)
            assert remote == ["before"]
            await proxy.cut()
            # Publishing through a dead connection does not fail the turn; local subscribers
            # still get it.
            await there.publish("c", TextDelta("m", "during"))
            await proxy.restore()
            for _ in range(300):  # the reader reconnects and subscribes again
                await here.publish("c", TextDelta("m", "after"))
                if "after" in remote:
                    break
                await asyncio.sleep(0.02)
            assert "after" in remote
            assert "during" in remote and "during" not in local  # it never left the cut process
        finally:
            await here.close()
            await there.close()


async def test_a_stuck_subscriber_holds_up_only_its_own_conversation(redis_prefix):
    here = RedisEventBus(REDIS_URL, prefix=redis_prefix)
    there = RedisEventBus(REDIS_URL, prefix=redis_prefix)
    await here.start()
    await there.start()
    stuck = asyncio.Event()
    arrived = asyncio.Event()
    try:

        async def hang(envelope):
            await stuck.wait()

        async def note(envelope):
            arrived.set()

        there.subscribe("slow", hang)
        there.subscribe("fine", note)
        await there.ready("slow")
        await there.ready("fine")
        await here.publish("slow", TextDelta("m", "one"))
        await here.publish("slow", TextDelta("m", "two"))
        await here.publish("fine", TextDelta("m", "hello"))
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        stuck.set()
        await here.close()
        await there.close()


async def test_a_redis_that_hangs_does_not_hang_a_publisher():
    """A server that accepts and never answers (a black hole): the turn goes on; publishing
    queues, and flush (and close) give up after PUBLISH_TIMEOUT."""

    async def swallow(reader, writer):
        while await reader.read(1024):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    class Quick(RedisEventBus):
        PUBLISH_TIMEOUT = 0.2

    bus = Quick(f"redis://127.0.0.1:{port}/0")
    seen = []

    async def note(envelope):
        seen.append(envelope.event)

    bus.subscribe("c", note)
    try:
        await asyncio.wait_for(bus.publish("c", TextDelta("m", "still here")), 10)
        assert seen == [TextDelta("m", "still here")]
        async with asyncio.timeout(10):
            for i in range(100):
                await bus.publish("c", TextDelta("m", str(i)))
            await bus.flush()
        assert len(seen) == 101
    finally:
        await bus.close()
        server.close()


async def test_a_burst_goes_to_redis_in_order_in_a_few_writes(redis_prefix):
    """Publishing queues: one task sends what waits together, so 300 events (a long reply's
    deltas) need a few exchanges with Redis, not 300 round trips."""
    async with TcpProxy(REDIS_URL) as proxy:
        here = RedisEventBus(proxy.url, prefix=redis_prefix)
        there = RedisEventBus(REDIS_URL, prefix=redis_prefix)
        await here.start()
        await there.start()
        remote: list[str] = []
        arrived = asyncio.Event()

        async def on_there(envelope):
            remote.append(envelope.event.text)
            if len(remote) == 301:
                arrived.set()

        try:
            there.subscribe("c", on_there)
            await there.ready("c")
            await here.publish("c", TextDelta("m", "connect"))
            await here.flush()
            before = proxy.chunks_sent
            for i in range(300):
                await here.publish("c", TextDelta("m", str(i)))
            await here.flush()
            writes = proxy.chunks_sent - before
            await asyncio.wait_for(arrived.wait(), 10)
            assert remote == ["connect", *(str(i) for i in range(300))]
            assert writes <= 10, writes
        finally:
            await here.close()
            await there.close()


async def _before_marker(channel: str, act) -> list[bytes]:
    """What a raw subscriber of ``channel`` reads before a marker that ``act(mark)`` publishes
    by awaiting ``mark()`` (on a connection of its own, straight to Redis): Redis runs commands
    in arrival order, so whatever reached it before comes first."""
    reader = redis.from_url(REDIS_URL)
    pubsub = reader.pubsub()
    await pubsub.subscribe(channel)

    async def mark() -> None:
        await reader.publish(channel, b"marker")

    try:
        await act(mark)
        seen: list[bytes] = []
        async with asyncio.timeout(10):
            async for message in pubsub.listen():
                if message["type"] == "message":
                    if message["data"] == b"marker":
                        return seen
                    seen.append(message["data"])
    finally:
        await pubsub.aclose()
        await reader.aclose()
    raise AssertionError("the marker never came")


async def test_flush_returns_once_redis_has_every_queued_event(redis_prefix):
    async with TcpProxy(REDIS_URL) as slow:
        slow.delay = 0.05  # the bus's way to Redis is slow; the marker's is not
        bus = RedisEventBus(slow.url, prefix=redis_prefix)

        async def publish_and_flush(mark):
            for i in range(50):
                await bus.publish("c", TextDelta("m", str(i)))
            await bus.flush()
            await mark()

        try:
            seen = await _before_marker(redis_prefix + "c", publish_and_flush)
        finally:
            await bus.close()
    assert [decode(raw).event.text for raw in seen] == [str(i) for i in range(50)]


async def test_a_turn_releases_its_lock_once_its_events_left(make_engine, llm, redis_prefix):
    """The next turn (here: whoever takes the lock next, publishing a marker) cannot overtake
    this turn's events on Redis, however slow this process's way to Redis is."""
    engine = make_engine()
    llm.push(Step([f"{i} " for i in range(30)], delay=0.01))
    user = await store.get_or_create_user("test", "someone")
    conversation = (await engine.open(user.id, "test")).conversation
    running = asyncio.Event()

    async def on_event(envelope):
        running.set()

    async def turn_then_next(mark):
        engine.bus.subscribe(conversation.id, on_event)
        turn = asyncio.create_task(collect(engine.turn(conversation.id, Inbound(text="talk"))))
        await running.wait()  # the turn holds the lock now
        async with engine.locks.hold(conversation.id):  # granted once the turn let go
            await mark()
        await turn

    async with TcpProxy(REDIS_URL) as slow:
        slow.delay = 0.05  # the engine's way to Redis is slow; the marker's is not
        engine.bus = RedisEventBus(slow.url, prefix=redis_prefix)
        try:
            raws = await _before_marker(redis_prefix + conversation.id, turn_then_next)
        finally:
            await engine.bus.close()
    seen = [decode(raw).event for raw in raws]
    assert [e.text for e in seen if isinstance(e, TextDelta)] == [f"{i} " for i in range(30)]
    assert isinstance(seen[-1], TurnCompleted)
