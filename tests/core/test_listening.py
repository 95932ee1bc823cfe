"""Live STT results joined into utterances."""

from __future__ import annotations

from parley.core.listening import Heard, Utterances
from parley.core.providers import (
    LiveSession,
    LiveSTTProvider,
    LiveTranscript,
    SpeechStarted,
    UtteranceEnd,
)
from parley.testing import FakeLiveSTT


def test_interim_then_finals_then_speech_final():
    u = Utterances()
    assert u.add(SpeechStarted()) is None
    assert u.add(LiveTranscript("hel", is_final=False)) == Heard("hel", False)
    assert u.add(LiveTranscript("hello there", is_final=True)) == Heard("hello there", False)
    assert u.add(LiveTranscript("how", is_final=False)) == Heard("hello there how", False)
    assert u.pending == "hello there how"
    assert u.add(LiveTranscript("how are you", True, True)) == Heard(
        "hello there how are you", True
    )
    assert u.pending == "" and u.add(UtteranceEnd()) is None


def test_utterance_end_closes_an_utterance_without_speech_final():
    u = Utterances()
    u.add(LiveTranscript("noisy room", is_final=True))
    assert u.add(UtteranceEnd(last_word_end=1.0)) == Heard("noisy room", True)


def test_silence_gives_nothing():
    u = Utterances()
    assert u.add(LiveTranscript("", is_final=False)) is None
    assert u.add(LiveTranscript("", is_final=True, speech_final=True)) is None
    assert u.flush() is None


def test_flush_keeps_the_interim_tail():
    u = Utterances()
    u.add(LiveTranscript("stop", is_final=True))
    u.add(LiveTranscript("listening now", is_final=False))
    assert u.flush() == Heard("stop listening now", True)


async def test_fake_live_stt_with_utterances():
    stt = FakeLiveSTT(
        [
            SpeechStarted(),
            LiveTranscript("what", is_final=False),
            LiveTranscript("what time is it", is_final=True, speech_final=True),
        ],
        after_bytes=640,
    )
    assert isinstance(stt, LiveSTTProvider)
    utterances = Utterances()
    heard: list[Heard] = []
    async with await stt.live(language="en") as session:
        assert isinstance(session, LiveSession)
        await session.send(b"\0" * 320)
        await session.send(b"\0" * 320)
        await session.close()
        async for result in session:
            if (h := utterances.add(result)) is not None:
                heard.append(h)
    assert heard == [Heard("what", False), Heard("what time is it", True)]
    assert len(stt.sessions[0].audio) == 640 and stt.sessions[0].language == "en"
