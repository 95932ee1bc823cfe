"""Live STT results joined into utterances."""

from __future__ import annotations

from parley.core.listening import Heard, Utterances
from parley.core.providers import LiveTranscript, SpeechStarted, UtteranceEnd


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
