"""The engine against a real SQLite database and a scripted LLM provider."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from datetime import UTC, datetime, timedelta

from parley.core import store
from parley.core.events import (
    ConversationEnded,
    ErrorEvent,
    MessageCompleted,
    MessageStarted,
    TextDelta,
    TurnCompleted,
    TurnStarted,
)
from parley.core.inbound import Inbound
from parley.core.providers import ProviderAuthError, ProviderUnavailable
from parley.testing import Step, collect


async def _open(engine, template_id=None, external_id="u1"):
    user = await store.get_or_create_user("test", external_id)
    return await engine.open(user.id, "test", template_id=template_id)


async def test_open_stores_greeting(make_engine):
    engine = make_engine()
    opened = await _open(engine)
    assert opened.greeting is not None
    assert opened.greeting.content == "Hi there!"
    assert opened.greeting.character_id == "alex"
    stored = await store.list_messages(opened.conversation.id)
    assert [(m.role, m.content) for m in stored] == [("assistant", "Hi there!")]


async def test_no_greeting_without_start_prompt(make_engine):
    engine = make_engine({"languages": {"en": {"prompts": {"start": None}}}})
    opened = await _open(engine)
    assert opened.greeting is None
    assert await store.count_messages(opened.conversation.id) == 0


async def test_turn_streams_and_stores(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    llm.push("Hello you there")
    events = await collect(engine.turn(conv.id, Inbound(text="hi")))
    kinds = [type(e) for e in events]
    assert kinds[0] is TurnStarted and kinds[1] is MessageStarted
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello ", "you ", "there"]
    done = next(e for e in events if isinstance(e, MessageCompleted))
    assert (done.text, done.status, done.character_id) == ("Hello you there", "complete", "alex")
    assert isinstance(events[-1], TurnCompleted) and events[-1].turn_count == 1
    messages = await store.list_messages(conv.id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("assistant", "Hi there!", "complete"),
        ("user", "hi", "complete"),
        ("assistant", "Hello you there", "complete"),
    ]
    reply = messages[-1]
    assert reply.tokens_out == 3 and reply.tokens_in is not None
    assert "llm_first_token_ms" in reply.metadata and "llm_ms" in reply.metadata
    request = llm.requests[0]
    assert request.messages[0] == {"role": "system", "content": "You are Alex."}
    assert request.messages[-1] == {"role": "user", "content": "hi"}
    assert request.model.temperature == 0.9 and request.model.model == "test-model"


async def test_user_message_stored_before_llm_call(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    llm.gate = asyncio.Event()
    task = asyncio.create_task(collect(engine.turn(conv.id, Inbound(text="remember me"))))
    for _ in range(500):
        if llm.requests:
            break
        await asyncio.sleep(0.01)
    stored = await store.list_messages(conv.id)
    assert any(m.role == "user" and m.content == "remember me" for m in stored)
    llm.gate.set()
    await task


async def test_history_window(make_engine, llm):
    engine = make_engine({"conversation": {"history_window": 3}})
    conv = (await _open(engine)).conversation
    for i in range(3):
        llm.push(f"answer {i}")
        await collect(engine.turn(conv.id, Inbound(text=f"question {i}")))
    last = llm.requests[-1].messages
    assert last[0]["role"] == "system"
    assert [m["content"] for m in last[1:]] == ["question 1", "answer 1", "question 2"]


async def test_termination_phrase_ends_without_llm(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    events = await collect(engine.turn(conv.id, Inbound(text="Bye!")))
    assert llm.requests == []
    assert any(isinstance(e, MessageCompleted) and e.text == "Take care!" for e in events)
    assert any(isinstance(e, ConversationEnded) and e.reason == "user_ended" for e in events)
    assert events[-1].conversation_ended and events[-1].reason == "user_ended"
    ended = await store.get_conversation(conv.id)
    assert (ended.status, ended.reason_ended) == ("ended", "user_ended")
    again = await collect(engine.turn(conv.id, Inbound(text="hello?")))
    assert [e.code for e in again if isinstance(e, ErrorEvent)] == ["conversation_ended"]


async def test_max_turns(make_engine, llm):
    engine = make_engine({"templates": {"solo": {"max_turns": 2}}})
    conv = (await _open(engine)).conversation
    first = await collect(engine.turn(conv.id, Inbound(text="one")))
    assert not first[-1].conversation_ended
    second = await collect(engine.turn(conv.id, Inbound(text="two")))
    assert second[-1].conversation_ended and second[-1].reason == "max_turns"
    assert len(llm.requests) == 2  # the second turn was answered before ending
    ended = await store.get_conversation(conv.id)
    assert ended.reason_ended == "max_turns" and ended.turn_count == 2


async def test_conversation_max_turns_default(make_engine, llm):
    engine = make_engine({"conversation": {"max_turns": 1}})
    conv = (await _open(engine)).conversation
    events = await collect(engine.turn(conv.id, Inbound(text="one")))
    assert events[-1].reason == "max_turns"


async def test_ttl_expiry_starts_new_conversation(make_engine, llm):
    engine = make_engine()
    user = await store.get_or_create_user("test", "u1")
    first = await engine.resume_or_open(user.id, "test")
    assert not first.resumed
    again = await engine.resume_or_open(user.id, "test")
    assert again.resumed and again.conversation.id == first.conversation.id
    past = datetime.now(UTC) - timedelta(seconds=1)
    await store.update_conversation(first.conversation.id, expires_at=past)
    fresh = await engine.resume_or_open(user.id, "test")
    assert fresh.conversation.id != first.conversation.id
    old = await store.get_conversation(first.conversation.id)
    assert (old.status, old.reason_ended) == ("ended", "expired")


async def test_turn_on_expired_conversation(make_engine):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    await store.update_conversation(conv.id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    events = await collect(engine.turn(conv.id, Inbound(text="hi")))
    assert isinstance(events[0], ConversationEnded) and events[0].reason == "expired"
    assert (await store.get_conversation(conv.id)).reason_ended == "expired"


async def test_activity_extends_expiry(make_engine):
    engine = make_engine({"conversation": {"session_ttl": 100}})
    conv = (await _open(engine)).conversation
    await collect(engine.turn(conv.id, Inbound(text="hi")))
    after = await store.get_conversation(conv.id)
    remaining = (after.expires_at - datetime.now(UTC)).total_seconds()
    assert 90 < remaining <= 100


async def test_concurrent_turns_run_in_arrival_order(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    for i in range(4):
        llm.push(Step([f"reply {i}"], delay=0.02 * (4 - i)))
    tasks = []
    for i in range(4):
        tasks.append(asyncio.create_task(collect(engine.turn(conv.id, Inbound(text=f"m{i}")))))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    messages = await store.list_messages(conv.id)
    assert [m.content for m in messages[1:]] == [
        "m0", "reply 0", "m1", "reply 1", "m2", "reply 2", "m3", "reply 3"
    ]  # fmt: skip
    assert len(engine.locks) == 0


async def test_provider_error_is_reported_and_stored(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    error = ProviderAuthError("LLM authentication failed (401): check llm.api_key")
    llm.push(Step(["partial "], error=error))
    events = await collect(engine.turn(conv.id, Inbound(text="hello")))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors and errors[0].code == "provider_auth" and "llm.api_key" in errors[0].message
    completed = next(e for e in events if isinstance(e, MessageCompleted))
    assert completed.status == "failed"
    messages = await store.list_messages(conv.id)
    assert [(m.role, m.content, m.status) for m in messages[1:]] == [
        ("user", "hello", "complete"),
        ("assistant", "partial ", "failed"),
    ]
    assert messages[-1].metadata["error"] == "provider_auth"
    # the failed reply is not sent back to the LLM next time
    llm.push("fine")
    await collect(engine.turn(conv.id, Inbound(text="again")))
    contents = [m["content"] for m in llm.requests[-1].messages]
    assert "partial " not in contents and contents[-2:] == ["hello", "again"]


async def test_failed_turn_does_not_count_towards_max_turns_end(make_engine, llm):
    engine = make_engine({"templates": {"solo": {"max_turns": 1}}})
    conv = (await _open(engine)).conversation
    llm.push(Step([], error=ProviderUnavailable("down")))
    events = await collect(engine.turn(conv.id, Inbound(text="hello")))
    assert not events[-1].conversation_ended


async def test_interrupted_reply_is_stored(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    llm.push(Step(["one ", "two ", "three"], delay=0.01))
    async with aclosing(engine.turn(conv.id, Inbound(text="talk"))) as events:
        async for event in events:
            if isinstance(event, TextDelta) and event.text == "two ":
                break
    messages = await store.list_messages(conv.id)
    assert (messages[-1].content, messages[-1].status) == ("one two ", "interrupted")
    assert len(engine.locks) == 0


async def test_cancelled_turn_task_stores_interrupted(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    llm.push(Step(["a ", "b ", "c ", "d"], delay=0.05))
    first_text = asyncio.Event()

    async def run() -> None:
        async for event in engine.turn(conv.id, Inbound(text="talk")):
            if isinstance(event, TextDelta):
                first_text.set()

    task = asyncio.create_task(run())
    await first_text.wait()  # cancelled mid-reply, however slowly the machine runs
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    messages = await store.list_messages(conv.id)
    assert (messages[-1].content, messages[-1].status) == ("a ", "interrupted")


async def test_images_become_image_parts(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    inbound = Inbound(text="what is this?", image_urls=["https://example.org/cat.png"])
    await collect(engine.turn(conv.id, inbound))
    assert llm.requests[0].messages[-1]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}},
    ]


async def test_model_settings_layering(make_engine, llm):
    engine = make_engine({"templates": {"solo": {"max_tokens": 30}}})
    conv = (await _open(engine)).conversation
    await store.update_conversation(conv.id, state={"model_settings": {"temperature": 0.2}})
    await collect(engine.turn(conv.id, Inbound(text="hi")))
    model = llm.requests[0].model
    assert (model.model, model.temperature, model.max_tokens) == ("test-model", 0.2, 30)


async def test_multi_character_everyone_answers_in_order(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine, "duo")).conversation
    llm.push("I am Maya")
    llm.push("I am Leo")
    events = await collect(engine.turn(conv.id, Inbound(text="hello all")))
    started = [e for e in events if isinstance(e, MessageStarted)]
    assert [(e.character_id, e.character_name) for e in started] == [
        ("maya", "Maya"),
        ("leo", "Leo"),
    ]
    assert len({e.message_id for e in started}) == 2
    leo_request = llm.requests[1].messages
    assert leo_request[0]["content"] == "You are Leo."
    assert leo_request[-1] == {"role": "user", "content": "[Maya]: I am Maya"}


async def test_multi_character_mention(make_engine, llm):
    engine = make_engine()
    conv = (await _open(engine, "duo")).conversation
    events = await collect(engine.turn(conv.id, Inbound(text="@Leo what do you think?")))
    started = [e.character_id for e in events if isinstance(e, MessageStarted)]
    assert started == ["leo"]
    events = await collect(engine.turn(conv.id, Inbound(text="maya, and you?")))
    assert [e.character_id for e in events if isinstance(e, MessageStarted)] == ["maya"]


async def test_default_responders(make_engine, llm):
    engine = make_engine({"templates": {"duo": {"default_responders": ["leo"]}}})
    conv = (await _open(engine, "duo")).conversation
    events = await collect(engine.turn(conv.id, Inbound(text="anyone?")))
    assert [e.character_id for e in events if isinstance(e, MessageStarted)] == ["leo"]


async def test_end_stores_farewell_and_is_idempotent(make_engine):
    engine = make_engine()
    conv = (await _open(engine)).conversation
    ended = await engine.end(conv.id, "user_ended")
    assert ended.status == "ended" and ended.reason_ended == "user_ended"
    assert (await store.list_messages(conv.id))[-1].content == "Take care!"
    again = await engine.end(conv.id, "timeout")
    assert again.reason_ended == "user_ended"
    assert await store.count_messages(conv.id) == 2


async def test_concurrent_ends_announce_the_end_once(make_engine):
    """Two callers end the conversation at once (a socket's End and a REST delete): one wins,
    its reason is kept, and ConversationEnded is published once."""
    engine = make_engine()
    conv = (await _open(engine)).conversation
    seen = []

    async def deliver(envelope) -> None:
        seen.append(envelope.event)

    subscription = engine.bus.subscribe(conv.id, deliver)
    try:
        await asyncio.gather(
            engine.end(conv.id, "new_conversation", farewell=False),
            engine.end(conv.id, "deleted", farewell=False),
        )
    finally:
        subscription.close()
    ends = [e for e in seen if isinstance(e, ConversationEnded)]
    assert len(ends) == 1
    assert (await store.get_conversation(conv.id)).reason_ended == ends[0].reason


async def test_turn_on_a_message_stored_ahead(make_engine, llm):
    """An adapter stored messages as ``pending`` before their turns (WhatsApp does)."""
    engine = make_engine({"languages": {"en": {"prompts": {"start": None}}}})
    conv = (await _open(engine)).conversation
    first = await store.add_message(
        conv.id, "user", "first", status="pending", channel="test", platform_message_id="p1"
    )
    second = await store.add_message(
        conv.id, "user", "second", status="pending", channel="test", platform_message_id="p2"
    )
    await store.add_message(conv.id, "user", "", status="failed")  # e.g. STT failed on it
    llm.push("one")
    llm.push("two")
    inbound = Inbound(text="first", metadata={"kept": True}, user_message_id=first.id)
    events = await collect(engine.turn(conv.id, inbound))
    assert next(e for e in events if isinstance(e, TurnStarted)).user_message_id == first.id
    # The later pending message and the failed one are not part of the first turn's context.
    assert [m["content"] for m in llm.requests[0].messages[1:]] == ["first"]
    await collect(engine.turn(conv.id, Inbound(text="second", user_message_id=second.id)))
    # Each message was placed where it was answered; none was stored twice.
    assert [m["content"] for m in llm.requests[1].messages[1:]] == ["first", "one", "second"]
    messages = [m for m in await store.list_messages(conv.id) if m.status != "failed"]
    assert [(m.content, m.status) for m in messages] == [
        ("first", "complete"),
        ("one", "complete"),
        ("second", "complete"),
        ("two", "complete"),
    ]
    assert messages[0].metadata == {"kept": True}
    assert await store.pending_messages("test") == []


async def test_spoken_message_is_stored_once_with_its_transcript(make_engine, llm):
    from parley.testing import FakeSTT

    engine = make_engine()
    engine.stt = FakeSTT("hello from a recording")
    conv = (await _open(engine)).conversation
    llm.gate = asyncio.Event()
    task = asyncio.create_task(
        collect(engine.turn(conv.id, Inbound(audio=b"RIFF0000", audio_mime="audio/wav")))
    )
    for _ in range(500):  # stored before the LLM is called
        if llm.requests:
            break
        await asyncio.sleep(0.01)
    users = [m for m in await store.list_messages(conv.id) if m.role == "user"]
    assert [(m.content, m.status) for m in users] == [("hello from a recording", "complete")]
    llm.gate.set()
    await task
    users = [m for m in await store.list_messages(conv.id) if m.role == "user"]
    assert len(users) == 1
    assert users[0].metadata["audio"] == {"mime": "audio/wav", "bytes": 8}
    assert "stt_ms" in users[0].metadata


async def test_concurrent_resume_or_open_gives_one_conversation(make_engine):
    engine = make_engine()
    user = await store.get_or_create_user("test", "many-tabs")
    opened = await asyncio.gather(*(engine.resume_or_open(user.id, "test") for _ in range(8)))
    assert len({o.conversation.id for o in opened}) == 1
    assert sum(not o.resumed for o in opened) == 1
    assert len(engine.locks) == 0
