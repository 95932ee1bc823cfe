"""The speech pipeline: sentences spoken while the LLM streams, audio strictly in order."""

from __future__ import annotations

import asyncio
import random
from contextlib import aclosing

import pytest

from parley.core import store
from parley.core.events import (
    AudioChunk,
    AudioCompleted,
    ErrorEvent,
    MessageCompleted,
    Sentence,
    TextDelta,
    Transcript,
    TurnStarted,
)
from parley.core.inbound import Inbound
from parley.core.providers import LLMChunk, ProviderUnavailable
from parley.core.speech import SpeechOptions
from parley.testing import FakeSTT, Step, collect


class RecordingTTS:
    """A TTS provider with random latency that records when requests start, run and stop."""

    name = "recording"

    def __init__(self, *, fail_on: str | None = None, seed: int = 7, parts: int = 2) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.fail_on = fail_on
        self.random = random.Random(seed)
        self.parts = parts
        self.running = 0
        self.max_running = 0
        self.first_started = asyncio.Event()
        self.hold: asyncio.Event | None = None

    async def synthesize(self, text, *, voice=None, output_format=None):
        self.started.append(text)
        self.first_started.set()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.fail_on is not None and self.fail_on in text:
                raise ProviderUnavailable("TTS is down", provider="recording")
            for part in range(self.parts):
                await asyncio.sleep(self.random.uniform(0, 0.02))
                yield f"{text}|{part}|{voice}|{output_format}".encode()
                if self.hold is not None:
                    await self.hold.wait()
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.append(text)
            raise
        finally:
            self.running -= 1


class GatedLLM:
    """Streams its first pieces, then waits for ``gate`` before the rest; records closing.

    Pieces start with their space, as LLM tokens do: a sentence is known to be complete when
    the next word begins.
    """

    name = "gated"

    def __init__(self, first: list[str], rest: list[str], gate: asyncio.Event) -> None:
        self.first, self.rest, self.gate = first, rest, gate
        self.closed = False
        self.finished = False

    async def stream(self, request):
        try:
            for piece in self.first:
                yield LLMChunk(text=piece)
            await asyncio.wait_for(self.gate.wait(), timeout=5)
            for piece in self.rest:
                await asyncio.sleep(0.005)
                yield LLMChunk(text=piece)
            self.finished = True
        finally:
            self.closed = True


async def _conversation(engine, template_id=None):
    user = await store.get_or_create_user("test", "speaker")
    return (await engine.open(user.id, "test", template_id=template_id)).conversation


def _of(events, kind):
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("seed", range(6))
async def test_audio_strictly_in_order_with_random_tts_delays(make_engine, llm, seed):
    engine = make_engine()
    engine.tts = tts = RecordingTTS(seed=seed, parts=3)
    conv = await _conversation(engine)
    text = ["One is first. ", "Two comes next! ", "Three? ", "Four is here. ", "Five ends it."]
    llm.push(Step(text, delay=0.01))
    events = await collect(
        engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions("pcm_16000", concurrency=3))
    )
    sentences = _of(events, Sentence)
    assert [s.text for s in sentences] == [t.strip() for t in text]
    assert [s.index for s in sentences] == list(range(5))
    chunks = _of(events, AudioChunk)
    message_id = sentences[0].message_id
    assert {c.message_id for c in chunks} == {message_id}
    assert [(c.sentence_index, c.chunk_index) for c in chunks] == [
        (i, j) for i in range(5) for j in range(3)
    ]
    assert chunks[0].data == b"One is first.|0|None|pcm_16000" and chunks[0].format == "pcm_16000"
    assert all(c.data.startswith(sentences[c.sentence_index].text.encode()) for c in chunks)
    assert 1 < tts.max_running <= 3
    # Each sentence is announced before its first chunk; audio completes after the text.
    for s in sentences:
        first = next(c for c in chunks if c.sentence_index == s.index)
        assert events.index(s) < events.index(first)
    done = _of(events, MessageCompleted)[0]
    completed = _of(events, AudioCompleted)
    assert [c.message_id for c in completed] == [message_id]
    assert events.index(done) < events.index(completed[0]) == events.index(chunks[-1]) + 1


async def test_tts_of_sentence_one_starts_before_the_llm_finishes(make_engine):
    engine = make_engine()
    engine.tts = tts = RecordingTTS()
    # The LLM does not go on until the first sentence's audio has reached the consumer: without
    # streaming TTS it would wait forever (and time out).
    heard = asyncio.Event()
    engine.llm = GatedLLM(["Hello", " there.", " And"], [" the", " rest."], heard)
    conv = await _conversation(engine)
    events = []
    async for event in engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions()):
        events.append(event)
        if isinstance(event, AudioChunk):
            heard.set()
    assert engine.llm.finished
    assert tts.started == ["Hello there.", "And the rest."]
    first_audio = _of(events, AudioChunk)[0]
    last_text = _of(events, TextDelta)[-1]
    assert first_audio.sentence_index == 0
    assert events.index(first_audio) < events.index(last_text)


async def test_tts_request_starts_before_the_text_that_ended_the_sentence_is_handed_on(
    make_engine,
):
    engine = make_engine()
    engine.tts = tts = RecordingTTS()
    go = asyncio.Event()
    go.set()  # each piece after the first arrives after a pause, as from a socket
    engine.llm = GatedLLM(["Hello"], [" there.", " And", " the", " rest."], go)
    conv = await _conversation(engine)
    asked_when_seen = {}
    async for event in engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions()):
        if isinstance(event, (TextDelta, Sentence)) and event.message_id:
            key = event.text if isinstance(event, TextDelta) else f"sentence {event.index}"
            asked_when_seen.setdefault(key, list(tts.started))
    # " And" makes "Hello there." certain: its TTS request is already running when the consumer
    # gets " And" (the audio, not the text on screen, is what the user waits for).
    assert asked_when_seen[" there."] == []
    assert asked_when_seen[" And"] == ["Hello there."]
    assert asked_when_seen["sentence 0"] == ["Hello there."]


async def test_head_sentence_audio_passes_through_as_it_arrives(make_engine, llm):
    engine = make_engine()
    engine.tts = tts = RecordingTTS(parts=2)
    tts.hold = asyncio.Event()
    conv = await _conversation(engine)
    llm.push(Step(["Only one sentence."]))
    seen = []
    async for event in engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions()):
        seen.append(event)
        if isinstance(event, AudioChunk) and event.chunk_index == 0:
            tts.hold.set()  # the second chunk cannot exist before the first was handed on
    assert [(c.sentence_index, c.chunk_index) for c in _of(seen, AudioChunk)] == [(0, 0), (0, 1)]


async def test_tts_failure_still_delivers_and_stores_the_text(make_engine, llm):
    engine = make_engine()
    engine.tts = RecordingTTS(fail_on="Second")
    conv = await _conversation(engine)
    llm.push(Step(["First one. ", "Second one. ", "Third one."], delay=0.01))
    events = await collect(engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions()))
    errors = _of(events, ErrorEvent)
    assert [(e.code, e.retryable) for e in errors] == [("tts_failed", True)]
    assert "TTS is down" in errors[0].message
    done = _of(events, MessageCompleted)[0]
    assert (done.text, done.status) == ("First one. Second one. Third one.", "complete")
    # Audio stops at the failure (no gap in the speech), and its end is still announced.
    assert {c.sentence_index for c in _of(events, AudioChunk)} == {0}
    assert len(_of(events, AudioCompleted)) == 1
    assert [s.text for s in _of(events, Sentence)] == ["First one.", "Second one.", "Third one."]
    stored = (await store.list_messages(conv.id))[-1]
    assert (stored.content, stored.status) == ("First one. Second one. Third one.", "complete")
    assert stored.metadata["tts_error"] == "provider_unavailable"


async def test_tts_failing_on_every_sentence_reports_once(make_engine, llm):
    engine = make_engine()
    engine.tts = RecordingTTS(fail_on="")
    conv = await _conversation(engine)
    llm.push(Step(["Hello. ", "World."]))
    events = await collect(engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions()))
    assert [e.code for e in _of(events, ErrorEvent)] == ["tts_failed"]
    assert not _of(events, AudioChunk)
    assert (await store.list_messages(conv.id))[-1].content == "Hello. World."


async def test_interruption_while_streaming_cancels_tts_and_stores_interrupted(make_engine):
    engine = make_engine()
    engine.tts = tts = RecordingTTS(parts=3)
    tts.hold = asyncio.Event()  # sentence audio never completes on its own
    never = asyncio.Event()
    engine.llm = llm = GatedLLM(["Spoken first.", " Also queued.", " And"], [" never"], never)
    conv = await _conversation(engine)

    async def barge_in() -> None:
        async with aclosing(
            engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions(concurrency=2))
        ) as events:
            async for event in events:
                if isinstance(event, AudioChunk):
                    break  # barge-in

    # The held audio never completes: closing the turn must not wait for it (it would hang).
    consumer = asyncio.create_task(barge_in())
    try:
        done, _ = await asyncio.wait({consumer}, timeout=10)
        assert consumer in done, "closing the turn waited for the held audio"
    finally:
        consumer.cancel()
    consumer.result()
    assert llm.closed and not llm.finished
    assert sorted(tts.cancelled) == ["Also queued.", "Spoken first."]
    assert tts.running == 0
    reply = (await store.list_messages(conv.id))[-1]
    assert (reply.role, reply.status) == ("assistant", "interrupted")
    assert reply.content == "Spoken first. Also queued. And"
    assert reply.metadata["sentences_spoken"] == 0
    assert "first_audio_ms" in reply.metadata


async def test_interruption_while_only_audio_plays_marks_the_reply_interrupted(make_engine, llm):
    engine = make_engine()
    engine.tts = tts = RecordingTTS(parts=2)
    conv = await _conversation(engine)
    llm.push(Step(["One. ", "Two. ", "Three."]))
    tts.hold = asyncio.Event()
    async with aclosing(engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions())) as events:
        async for event in events:
            if isinstance(event, MessageCompleted):
                assert event.status == "complete"  # the text is done; audio is not
                break
    await asyncio.sleep(0)
    assert tts.running == 0
    reply = (await store.list_messages(conv.id))[-1]
    assert (reply.status, reply.content) == ("interrupted", "One. Two. Three.")


async def test_timings_are_merged_into_the_reply_metadata(make_engine, llm):
    engine = make_engine()
    engine.stt = FakeSTT("tell me something")
    engine.tts = RecordingTTS()
    conv = await _conversation(engine)
    llm.push(Step(["Sure thing. ", "Here it is."], delay=0.01))
    events = await collect(
        engine.turn(conv.id, Inbound(audio=b"RIFF", audio_mime="audio/wav"), speech=SpeechOptions())
    )
    assert _of(events, Transcript)[0].text == "tell me something"
    user, reply = (await store.list_messages(conv.id))[-2:]
    assert user.content == "tell me something" and "stt_ms" in user.metadata
    meta = reply.metadata
    keys = ("stt_ms", "llm_first_token_ms", "first_sentence_ms", "tts_first_byte_ms")
    assert all(isinstance(meta[k], int) for k in (*keys, "first_audio_ms", "llm_ms"))
    assert meta["stt_ms"] <= meta["llm_first_token_ms"] <= meta["first_sentence_ms"]
    assert meta["first_sentence_ms"] <= meta["tts_first_byte_ms"] <= meta["first_audio_ms"]


async def test_stt_failure_is_an_error_and_no_turn(make_engine, llm):
    engine = make_engine()
    engine.stt = FakeSTT(error=ProviderUnavailable("Deepgram is down", provider="deepgram"))
    engine.tts = RecordingTTS()
    conv = await _conversation(engine)
    before = await store.count_messages(conv.id)
    events = await collect(
        engine.turn(conv.id, Inbound(audio=b"OggS", audio_mime="audio/ogg"), speech=SpeechOptions())
    )
    assert [(type(e), e.code) for e in events] == [(ErrorEvent, "stt_failed")]
    assert events[0].message == "Deepgram is down" and events[0].retryable
    assert not llm.requests
    # The user's message is on record (stored before STT was called), marked failed.
    assert await store.count_messages(conv.id) == before + 1
    heard = (await store.list_messages(conv.id))[-1]
    assert (heard.role, heard.status) == ("user", "failed")
    assert heard.metadata["error"] == {"code": "stt_failed", "message": "Deepgram is down"}
    assert heard.metadata["audio"] == {"mime": "audio/ogg", "bytes": 4}
    assert (await store.get_conversation(conv.id)).turn_count == 0


async def test_silence_is_no_turn(make_engine, llm):
    engine = make_engine()
    engine.stt = FakeSTT("  ")
    conv = await _conversation(engine)
    events = await collect(engine.turn(conv.id, Inbound(audio=b"OggS")))
    assert [e.code for e in events if isinstance(e, ErrorEvent)] == ["stt_empty"]
    assert not any(isinstance(e, TurnStarted) for e in events)
    assert not llm.requests
    assert [m.status for m in await store.list_messages(conv.id) if m.role == "user"] == ["failed"]


async def test_markdown_and_emojis_are_not_spoken(make_engine, llm):
    engine = make_engine()
    engine.tts = tts = RecordingTTS()
    conv = await _conversation(engine)
    llm.push(Step(["**Great** question! 🎉 ", "Dr. Who is on at 3.30 pm. ", "😀"]))
    events = await collect(engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions()))
    assert [s.text for s in _of(events, Sentence)] == [
        "Great question!",
        "Dr. Who is on at 3.30 pm.",
    ]
    assert tts.started == ["Great question!", "Dr. Who is on at 3.30 pm."]
    assert _of(events, MessageCompleted)[0].text.startswith("**Great** question! 🎉")


async def test_persona_voice_wins_then_options_voice(make_engine, llm):
    engine = make_engine()
    engine.tts = RecordingTTS()
    conv = await _conversation(engine, "duo")
    options = SpeechOptions(voice="channel-voice")
    events = await collect(engine.turn(conv.id, Inbound(text="@Leo hi"), speech=options))
    chunks = _of(events, AudioChunk)
    assert chunks and all(b"|leo-voice|" in c.data for c in chunks)
    assert {c.character_id for c in chunks} == {"leo"}
    events = await collect(engine.turn(conv.id, Inbound(text="@Maya hi"), speech=options))
    assert all(b"|channel-voice|" in c.data for c in _of(events, AudioChunk))


async def test_format_defaults_to_the_providers_own(make_engine, llm):
    engine = make_engine()
    engine.tts = RecordingTTS()
    engine.tts.output_format = "opus_48000_64"
    conv = await _conversation(engine)
    events = await collect(engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions()))
    assert {c.format for c in _of(events, AudioChunk)} == {"opus_48000_64"}


async def test_tts_failure_does_not_keep_a_conversation_past_max_turns(make_engine, llm):
    engine = make_engine({"templates": {"solo": {"max_turns": 1}}})
    engine.tts = RecordingTTS(fail_on="")
    conv = await _conversation(engine)
    llm.push(Step(["Last words."]))
    events = await collect(engine.turn(conv.id, Inbound(text="go"), speech=SpeechOptions()))
    assert [e.code for e in _of(events, ErrorEvent)] == ["tts_failed"]
    assert events[-1].conversation_ended and events[-1].reason == "max_turns"


async def test_live_transcription_time_from_the_adapter_is_kept(make_engine, llm):
    engine = make_engine()
    engine.tts = RecordingTTS()
    conv = await _conversation(engine)
    inbound = Inbound(text="heard live", metadata={"stt_ms": 42, "audio": {"format": "pcm16"}})
    await collect(engine.turn(conv.id, inbound, speech=SpeechOptions()))
    user, reply = (await store.list_messages(conv.id))[-2:]
    assert user.metadata == {"stt_ms": 42, "audio": {"format": "pcm16"}}
    assert reply.metadata["stt_ms"] == 42 and "first_audio_ms" in reply.metadata
