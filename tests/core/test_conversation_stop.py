"""``Interrupt(message_id=...)``: a client's stop names a reply, which may already be finished."""

from __future__ import annotations

import asyncio

from parley.core import store
from parley.core.conversation_commands import Interrupt, UserTurn
from parley.core.events import Interrupted, MessageStarted
from parley.core.inbound import Inbound

from .test_conversation import Recorder, _live


async def test_a_finished_latest_reply_is_marked_under_the_lock(make_engine, llm):
    llm.push("First answer.")
    llm.push("Second answer.")
    live, conversation = await _live(make_engine)
    seen = Recorder()
    live.subscribe(seen)
    assert await live.submit(UserTurn(Inbound(text="one"))) == "done"
    first = next(e.message_id for e in seen.events if isinstance(e, MessageStarted))
    played = {"interrupted_by": "client", "sentences_played": 1}

    # While another turn holds the conversation's lock, the stop waits for it.
    async with live.engine.locks.hold(conversation.id):
        stop = live.submit(Interrupt(metadata=played, message_id=first, origin="tab-1"))
        await asyncio.sleep(0.05)
        assert not stop.done()
        assert (await store.get_message(first)).status == "complete"
    assert await stop == first
    stored = await store.get_message(first)
    assert (stored.status, stored.content) == ("interrupted", "First answer.")
    assert stored.metadata["sentences_played"] == 1
    assert [e.origin for e in seen.envelopes if e.event == Interrupted(first)] == ["tab-1"]

    # Already interrupted, or no longer the latest reply: nothing changes.
    assert await live.submit(Interrupt(message_id=first)) is None
    assert await live.submit(UserTurn(Inbound(text="two"))) == "done"
    second = [e.message_id for e in seen.events if isinstance(e, MessageStarted)][-1]
    assert await live.submit(Interrupt(message_id=first, origin="tab-1")) is None
    assert seen.events.count(Interrupted(first)) == 1
    assert (await store.get_message(second)).status == "complete"
