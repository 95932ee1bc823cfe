"""Engine.say and Engine.replay: fixed prompts outside a turn, as reply events, spoken if asked."""

from __future__ import annotations

from parley import hookimpl
from parley.core import store
from parley.core.events import (
    AudioChunk,
    AudioCompleted,
    ConversationEnded,
    MessageCompleted,
    MessageStarted,
    Sentence,
    TextDelta,
)
from parley.core.speech import SpeechOptions
from parley.testing import ToneTTS, collect


async def _open(engine, template_id=None):
    user = await store.get_or_create_user("test", "saying")
    return await engine.open(user.id, "web", template_id=template_id)


async def test_say_stores_the_prompt_and_yields_it_like_a_reply(make_engine):
    engine = make_engine()
    conversation = (await _open(engine)).conversation
    events = await collect(engine.say(conversation.id, "Still there?"))
    assert [type(e) for e in events] == [MessageStarted, TextDelta, MessageCompleted]
    message = await store.get_message(events[0].message_id)
    assert (message.role, message.content, message.character_id) == (
        "assistant",
        "Still there?",
        "alex",
    )
    assert (events[-1].text, events[-1].status) == ("Still there?", "complete")
    assert (await store.get_conversation(conversation.id)).turn_count == 0


async def test_say_with_an_end_reason_ends_the_conversation(make_engine):
    ended = []

    class Plugin:
        @hookimpl
        def conversation_ended(self, conversation, reason):
            ended.append((conversation.status, reason))

    engine = make_engine(plugins=(Plugin(),))
    conversation = (await _open(engine)).conversation
    events = await collect(engine.say(conversation.id, "Bye for now.", end_reason="timeout"))
    assert isinstance(events[-1], ConversationEnded) and events[-1].reason == "timeout"
    stored = await store.get_conversation(conversation.id)
    assert (stored.status, stored.reason_ended) == ("ended", "timeout")
    assert ended == [("ended", "timeout")]
    # An ended conversation hears nothing more.
    assert await collect(engine.say(conversation.id, "Hello?")) == []
    assert [m.content for m in await store.list_messages(conversation.id)] == [
        "Hi there!",
        "Bye for now.",
    ]


async def test_say_and_replay_are_spoken_with_speech_options(make_engine):
    engine = make_engine()
    engine.tts = tts = ToneTTS()
    opened = await _open(engine, "duo")
    speech = SpeechOptions(output_format="pcm_16000")
    events = await collect(engine.replay(opened.greeting, speech=speech))
    assert isinstance(events[1], TextDelta) and events[1].text == "Hi there!"
    assert [e.text for e in events if isinstance(e, Sentence)] == ["Hi there!"]
    assert [e.chunk_index for e in events if isinstance(e, AudioChunk)] == [0, 1]
    assert isinstance(events[-1], AudioCompleted)
    events = await collect(engine.say(opened.conversation.id, "Still there?", speech=speech))
    assert sum(isinstance(e, AudioChunk) for e in events) == 2
    assert tts.requests == [
        ("Hi there!", None, "pcm_16000"),
        ("Still there?", None, "pcm_16000"),
    ]
