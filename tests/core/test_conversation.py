"""The conversation runtime through a real engine: FIFO, interrupt, silence, say, end, model
settings, and fan-out to every subscriber."""

from __future__ import annotations

import asyncio

import pytest

from parley.core import store
from parley.core.bus import EventBus
from parley.core.conversation_commands import End, Interrupt, ModelSettings, Say, UserTurn
from parley.core.conversation_registry import Conversations
from parley.core.events import (
    ConversationEnded,
    Interrupted,
    MessageCompleted,
    MessageStarted,
    TextDelta,
    TurnCompleted,
    TurnStarted,
)
from parley.core.inbound import Inbound
from parley.testing import Step

SILENT = {
    "templates": {"nudgy": {"personas": ["alex"], "nudge_after": 0.1, "timeout_after": 0.1}},
    "languages": {"en": {"prompts": {"timeout": "Talk soon!"}}},
}


class Recorder:
    """A subscriber: every envelope it was handed."""

    def __init__(self) -> None:
        self.envelopes = []
        self.arrived = asyncio.Event()

    async def __call__(self, envelope) -> None:
        self.envelopes.append(envelope)
        self.arrived.set()

    @property
    def events(self):
        return [e.event for e in self.envelopes]

    async def until(self, kind, count=1):
        while sum(isinstance(e, kind) for e in self.events) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 5)


async def _opened(make_engine, extra=None, template_id=None):
    """A registry over a fresh engine and bus, a new conversation, and its live runtime."""
    engine = make_engine(extra)
    bus = EventBus()
    engine.bus = bus
    conversations = Conversations(engine, bus)
    user = await store.get_or_create_user("test", "live")
    opened = await engine.open(user.id, "web", template_id=template_id)
    return conversations, conversations.get(opened.conversation.id), opened.conversation


async def _live(make_engine, extra=None, template_id=None):
    _, live, conversation = await _opened(make_engine, extra, template_id)
    return live, conversation


def _texts(events):
    return [e.text for e in events if isinstance(e, MessageCompleted)]


async def test_turns_run_in_order_and_reach_every_subscriber(make_engine, llm):
    llm.push("first reply")
    llm.push("second reply")
    live, conversation = await _live(make_engine)
    one, two = Recorder(), Recorder()
    live.subscribe(one)
    live.subscribe(two)
    first = live.submit(UserTurn(Inbound(text="one"), origin="tab-1"))
    second = live.submit(UserTurn(Inbound(text="two"), origin="tab-2"))
    assert await first == "done" and await second == "done"
    assert _texts(one.events) == ["first reply", "second reply"]
    assert one.events == two.events
    origins = [e.origin for e in one.envelopes if isinstance(e.event, TurnStarted)]
    assert origins == ["tab-1", "tab-2"]
    stored = await store.list_messages(conversation.id)
    assert [m.content for m in stored] == ["Hi there!", "one", "first reply", "two", "second reply"]


async def test_a_turn_outside_the_runtime_reaches_subscribers(make_engine, llm):
    """REST and webhooks call Engine.turn directly: the engine publishes what it yields."""
    live, conversation = await _live(make_engine)
    seen = Recorder()
    live.subscribe(seen)
    async for _ in live.engine.turn(conversation.id, Inbound(text="from REST")):
        pass
    assert [type(e) for e in seen.events][:2] == [TurnStarted, MessageStarted]
    assert seen.envelopes[0].origin is None
    assert isinstance(seen.events[-1], TurnCompleted)


async def test_interrupt_cuts_the_reply_and_the_queue_goes_on(make_engine, llm):
    llm.push(Step(["cut ", "short"]))
    llm.push("next reply")
    live, _conversation = await _live(make_engine)
    seen = Recorder()
    live.subscribe(seen)
    llm.gate = asyncio.Event()
    first = live.submit(UserTurn(Inbound(text="tell me a story")))
    second = live.submit(UserTurn(Inbound(text="something else")))
    await seen.until(MessageStarted)
    message_id = next(e.message_id for e in seen.events if isinstance(e, MessageStarted))
    cut = live.submit(Interrupt(metadata={"interrupted_by": "client"}))
    assert await cut == message_id
    assert await first == "interrupted"
    assert Interrupted(message_id) in seen.events
    stored = await store.get_message(message_id)
    assert stored.status == "interrupted" and stored.metadata["interrupted_by"] == "client"
    llm.gate.set()
    assert await second == "done"
    assert _texts(seen.events)[-1] == "next reply"
    assert await live.interrupt() is None  # nothing in progress


async def test_barge_in_cuts_only_spoken_replies(make_engine, llm):
    from parley.core.speech import SpeechOptions
    from parley.testing import ToneTTS

    live, _conversation = await _live(make_engine)
    seen = Recorder()
    live.subscribe(seen)
    llm.gate = asyncio.Event()
    text_only = live.submit(UserTurn(Inbound(text="hi")))
    await seen.until(TurnStarted)
    assert await live.interrupt(barge_in=True) is None  # a text reply is not cut by barge-in
    llm.gate.set()
    assert await text_only == "done"
    live.engine.tts = ToneTTS()
    llm.gate = asyncio.Event()
    spoken = live.submit(UserTurn(Inbound(text="talk"), speech=SpeechOptions("pcm_16000")))
    await seen.until(TurnStarted, 2)
    llm.push("unused")
    barging = live.submit(UserTurn(Inbound(text="wait!"), barge_in=True))
    assert await spoken == "interrupted"
    llm.gate.set()
    assert await barging == "done"


async def test_say_and_end_are_queued_after_the_turn(make_engine, llm):
    live, conversation = await _live(make_engine)
    seen = Recorder()
    live.subscribe(seen)
    turn = live.submit(UserTurn(Inbound(text="hi")))
    said = live.submit(Say("A word from our sponsor."))
    ended = live.submit(End("user_ended"))
    assert [await turn, await said, await ended] == ["done", "done", "done"]
    assert _texts(seen.events) == ["ok", "A word from our sponsor.", "Take care!"]
    assert seen.events[-2:] == [
        ConversationEnded(conversation.id, "user_ended"),
        TurnCompleted(conversation.id, 1, True, "user_ended"),
    ]
    stored = await store.get_conversation(conversation.id)
    assert (stored.status, stored.reason_ended) == ("ended", "user_ended")


async def test_end_without_farewell(make_engine):
    live, conversation = await _live(make_engine)
    seen = Recorder()
    live.subscribe(seen)
    assert await live.submit(End("new_conversation", farewell=False)) == "done"
    assert seen.events == [ConversationEnded(conversation.id, "new_conversation")]
    assert [m.content for m in await store.list_messages(conversation.id)] == ["Hi there!"]


async def test_the_record_follows_the_end_and_a_stale_copy_does_not_undo_it(make_engine, llm):
    """A transport skips the read before a turn while the live conversation knows it is open; a
    tab that read it as open just before the end must not make it look open again."""
    live, conversation = await _live(make_engine)
    live.subscribe(Recorder(), conversation=conversation)
    assert live.open_record() == conversation
    assert await live.submit(UserTurn(Inbound(text="hi"))) == "done"
    assert live.open_record().turn_count == 1  # followed from TurnCompleted, nothing read
    assert await live.submit(End("user_ended", farewell=False)) == "done"
    assert live.open_record() is None
    live.subscribe(Recorder(), conversation=conversation)  # the stale open copy
    assert live.open_record() is None


async def test_model_settings_apply_from_the_next_reply(make_engine, llm):
    live, _conversation = await _live(make_engine)
    stored = await live.submit(ModelSettings({"temperature": 0.1}))
    assert stored.state["model_settings"] == {"temperature": 0.1}
    assert await live.submit(UserTurn(Inbound(text="hi"))) == "done"
    assert llm.requests[-1].model.temperature == 0.1


async def test_silence_nudges_then_times_out_for_subscribers_who_want_it(make_engine):
    live, conversation = await _live(make_engine, SILENT, "nudgy")
    seen = Recorder()
    attachment = live.subscribe(seen, conversation=conversation)
    assert live.silence.delay() is None  # nobody asked for prompts: silence leads to nothing
    attachment.enable_silence()
    assert live.silence.delay() == 0.1  # now the nudge is due after nudge_after
    await seen.until(TurnCompleted)
    assert _texts(seen.events) == ["Still there?", "Talk soon!"]
    assert seen.events[-2:] == [
        ConversationEnded(conversation.id, "timeout"),
        TurnCompleted(conversation.id, 0, True, "timeout"),
    ]
    assert live.silence.delay() is None  # ended: no more prompts


async def test_a_user_turn_starts_the_silence_over(make_engine, llm):
    patient = {"personas": ["alex"], "nudge_after": 0.2, "timeout_after": 600}
    extra = {"templates": {"nudgy": patient}}
    live, conversation = await _live(make_engine, {**SILENT, **extra}, "nudgy")
    seen = Recorder()
    live.subscribe(seen, conversation=conversation).enable_silence()
    await seen.until(MessageCompleted)
    assert _texts(seen.events) == ["Still there?"]
    live.touch()
    assert await live.submit(UserTurn(Inbound(text="yes"))) == "done"
    await seen.until(MessageCompleted, 3)
    assert _texts(seen.events) == ["Still there?", "ok", "Still there?"]


async def test_the_runtime_is_dropped_when_idle_and_alone(make_engine, llm):
    conversations, live, conversation = await _opened(make_engine)
    attachment = live.subscribe(Recorder())
    done = live.submit(UserTurn(Inbound(text="hi")))
    assert len(conversations) == 1
    assert await done == "done"
    assert conversations.find(conversation.id) is live
    attachment.close()
    for _ in range(100):  # the worker winds down after the last command
        if conversations.find(conversation.id) is None:
            break
        await asyncio.sleep(0.01)
    assert conversations.find(conversation.id) is None
    assert live.bus.subscribers(conversation.id) == 0


async def test_a_leaving_submitter_cuts_its_reply_when_alone(make_engine, llm):
    live, _conversation = await _live(make_engine)
    seen = Recorder()
    attachment = live.subscribe(seen)
    llm.gate = asyncio.Event()
    turn = live.submit(UserTurn(Inbound(text="hi"), origin="socket-1"))
    queued = live.submit(UserTurn(Inbound(text="again"), origin="socket-1"))
    await seen.until(MessageStarted)
    message_id = next(e.message_id for e in seen.events if isinstance(e, MessageStarted))
    attachment.close()
    await live.leave("socket-1")
    assert await queued == "dropped"
    assert await turn == "interrupted"
    assert (await store.get_message(message_id)).status == "interrupted"
    assert [e for e in seen.events if isinstance(e, TextDelta)] == []


class Ears:
    """A hearer: what the listening session reported."""

    def __init__(self) -> None:
        self.utterances = []
        self.started = 0
        self.ended = None
        self.changed = asyncio.Event()

    async def speech_started(self, listening):
        self.started += 1
        self.changed.set()

    async def heard(self, listening, heard, metadata):
        self.utterances.append((heard.text, heard.final, metadata))
        self.changed.set()

    async def failed(self, listening, exc):
        self.ended = exc.code
        self.changed.set()

    async def closed(self, listening):
        self.ended = "closed"
        self.changed.set()

    async def until(self, check):
        while not check():
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 5)


async def test_live_listening_hears_utterances_and_speech_cuts_a_spoken_reply(make_engine, llm):
    from parley.core.providers import LiveTranscript, SpeechStarted
    from parley.core.speech import SpeechOptions
    from parley.testing import FakeLiveSTT, ToneTTS

    live, conversation = await _live(make_engine)
    stt = FakeLiveSTT([LiveTranscript("tell me", is_final=True, speech_final=True)])
    live.engine.stt, live.engine.tts = stt, ToneTTS()
    seen = Recorder()
    live.subscribe(seen, conversation=conversation)
    ears = Ears()
    listening = await live.listen(ears, encoding="pcm16", sample_rate=16000)
    assert stt.sessions[0].language == "en"
    await listening.send(b"\x00\x00" * 160)
    await ears.until(lambda: ears.utterances)
    text, final, metadata = ears.utterances[0]
    assert (text, final, metadata["audio"]["live"]) == ("tell me", True, True)
    # A spoken reply is in flight; the user starts to speak: barge-in cuts it.
    llm.gate = asyncio.Event()
    reply = live.submit(UserTurn(Inbound(text=text), speech=SpeechOptions("pcm_16000")))
    await seen.until(TurnStarted)
    stt.sessions[0].push(SpeechStarted())
    assert await asyncio.wait_for(reply, 5) == "interrupted"
    assert ears.started == 1
    await listening.stop()
    llm.gate.set()
    assert live.listenings == set()


async def test_listening_without_a_live_provider_is_refused(make_engine):
    from parley.core.conversation import ListeningUnavailable

    live, _ = await _live(make_engine)
    with pytest.raises(ListeningUnavailable):
        await live.listen(Ears(), encoding="pcm16", sample_rate=16000)


async def test_an_interrupt_asked_on_another_process_cuts_the_reply_there(
    make_engine, llm, redis_prefix
):
    """Two runtimes, each with its own bus on one Redis (two processes), one database."""
    import os

    from parley.core.bus import RedisEventBus

    url = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    sides = []
    for _ in range(2):
        engine, bus = make_engine(), RedisEventBus(url, prefix=redis_prefix)
        engine.bus = bus
        await bus.start()
        sides.append(Conversations(engine, bus))
    here, there = sides
    try:
        user = await store.get_or_create_user("test", "two-processes")
        conversation = (await here.engine.open(user.id, "web")).conversation
        live_here, live_there = here.get(conversation.id), there.get(conversation.id)
        seen = Recorder()
        live_here.subscribe(seen)
        live_there.subscribe(Recorder())
        await live_here.ready()
        await live_there.ready()
        llm.gate = asyncio.Event()
        turn = live_there.submit(UserTurn(Inbound(text="a long story, please")))
        await seen.until(MessageStarted)  # through Redis
        message_id = next(e.message_id for e in seen.events if isinstance(e, MessageStarted))
        assert await live_here.interrupt() is None  # nothing runs here
        await live_here.request_interrupt(message_id)
        assert await asyncio.wait_for(turn, 5) == "interrupted"
        await seen.until(Interrupted)
        stored = await store.get_message(message_id)
        assert (stored.status, stored.metadata["interrupted_by"]) == ("interrupted", "client")
    finally:
        llm.gate.set()
        for side in sides:
            await side.close()
            await side.bus.close()


async def test_two_processes_watching_one_conversation_nudge_once(make_engine, redis_prefix):
    import os

    from parley.core.bus import RedisEventBus
    from parley.core.conversation_silence import TIMEOUT
    from parley.core.locks import RedisLocks

    url = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    patient = {"personas": ["alex"], "nudge_after": 0.2, "timeout_after": 600}
    sides = []
    for _ in range(2):
        engine, bus = (
            make_engine({"templates": {"patient": patient}}),
            RedisEventBus(url, prefix=redis_prefix),
        )
        engine.bus = bus
        engine.locks = RedisLocks(url, prefix=f"{redis_prefix}lock:")  # as across processes
        await bus.start()
        sides.append(Conversations(engine, bus))
    try:
        user = await store.get_or_create_user("test", "nudged-once")
        conversation = (
            await sides[0].engine.open(user.id, "web", template_id="patient")
        ).conversation
        lives = [side.get(conversation.id) for side in sides]
        for live in lives:
            live.subscribe(Recorder(), conversation=conversation).enable_silence()
        for _ in range(500):  # both clocks ran out and both prompt commands have run
            if all(live.silence.phase == TIMEOUT and live._worker is None for live in lives):
                break
            await asyncio.sleep(0.01)
        assert all(live.silence.phase == TIMEOUT for live in lives)
        said = [m.content for m in await store.list_messages(conversation.id)]
        assert said == ["Hi there!", "Still there?"]
    finally:
        for side in sides:
            await side.close()
            await side.bus.close()
            await side.engine.locks.close()
