"""The speech pipeline: sentences spoken while the LLM streams, audio strictly in order."""

from __future__ import annotations

import asyncio
import random

from parley.core import store
from parley.core.events import (
    AudioChunk,
    AudioCompleted,
    ErrorEvent,
    MessageCompleted,
    Sentence,
    TextDelta,
)
from parley.core.inbound import Inbound
from parley.core.speech import SentenceSplitter, SpeechOptions
from parley.testing import Step, collect


class RecordingTTS:
    """A TTS provider with random latency that records when each request started."""

    name = "recording"

    def __init__(self, *, fail: bool = False, seed: int = 7) -> None:
        self.started: list[str] = []
        self.fail = fail
        self.random = random.Random(seed)

    async def synthesize(self, text, *, voice=None, output_format=None):
        self.started.append(text)
        if self.fail:
            raise RuntimeError("TTS is down")
        for part in range(2):
            await asyncio.sleep(self.random.uniform(0, 0.03))
            yield f"{text}|{part}|{voice}".encode()


def test_splitter_cuts_as_text_arrives():
    splitter = SentenceSplitter()
    assert splitter.feed("Hello there. How") == ["Hello there."]
    assert splitter.feed(" are you? I am fine") == ["How are you?"]
    assert splitter.flush() == ["I am fine"]
    assert SentenceSplitter().feed("Ask Dr. Smith now. Ok ") == ["Ask Dr. Smith now."]


async def test_audio_in_order_and_spoken_while_streaming(make_engine, llm):
    engine = make_engine()
    tts = RecordingTTS()
    engine.tts = tts
    user = await store.get_or_create_user("test", "speaker")
    conv = (await engine.open(user.id, "test")).conversation
    text = ["One is first. ", "Two comes next! ", "Three? ", "Four ends it."]
    llm.push(Step(text, delay=0.02))
    seen_before_done = []
    events = []
    async for event in engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions("pcm_16000")):
        events.append(event)
        if isinstance(event, TextDelta) and event.text.startswith("Four"):
            seen_before_done = list(tts.started)
    assert seen_before_done[:1] == ["One is first."]  # TTS began before the LLM finished
    sentences = [e for e in events if isinstance(e, Sentence)]
    assert [s.text for s in sentences] == [
        "One is first.",
        "Two comes next!",
        "Three?",
        "Four ends it.",
    ]
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    message_id = sentences[0].message_id
    assert {c.message_id for c in chunks} == {message_id}
    assert [(c.sentence_index, c.chunk_index) for c in chunks] == [
        (i, j) for i in range(4) for j in range(2)
    ]
    assert chunks[0].data == b"One is first.|0|None" and chunks[0].format == "pcm_16000"
    assert [e.message_id for e in events if isinstance(e, AudioCompleted)] == [message_id]
    done = next(e for e in events if isinstance(e, MessageCompleted))
    assert events.index(done) < events.index(
        next(e for e in events if isinstance(e, AudioCompleted))
    )


async def test_tts_failure_still_delivers_text(make_engine, llm):
    engine = make_engine()
    engine.tts = RecordingTTS(fail=True)
    user = await store.get_or_create_user("test", "speaker")
    conv = (await engine.open(user.id, "test")).conversation
    llm.push(Step(["Hello. ", "World."]))
    events = await collect(engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions()))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.code for e in errors] == ["tts_failed"]
    done = next(e for e in events if isinstance(e, MessageCompleted))
    assert done.text == "Hello. World." and done.status == "complete"
    assert not any(isinstance(e, AudioChunk) for e in events)
    assert (await store.list_messages(conv.id))[-1].content == "Hello. World."


async def test_persona_voice_is_used(make_engine, llm):
    engine = make_engine()
    engine.tts = RecordingTTS()
    user = await store.get_or_create_user("test", "speaker")
    conv = (await engine.open(user.id, "test", template_id="duo")).conversation
    events = await collect(engine.turn(conv.id, Inbound(text="@Leo hi"), speech=SpeechOptions()))
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert chunks and all(c.data.endswith(b"|leo-voice") for c in chunks)
    assert {c.character_id for c in chunks} == {"leo"}
