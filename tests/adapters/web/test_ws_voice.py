"""Voice over ``/ws``: listening, transcripts, tagged binary audio, audio settings, failures."""

from __future__ import annotations

import math
import struct
import uuid

from parley import hookimpl
from parley.adapters.web.frames import parse_audio_frame
from parley.core import store
from parley.core.providers import LiveTranscript, ProviderUnavailable, SpeechStarted
from parley.testing import FakeLiveSTT, Step, ToneTTS


def pcm(seconds: float, rate: int = 16000) -> bytes:
    """A 220 Hz tone as mono PCM16, like a microphone would send."""
    n = int(seconds * rate)
    return struct.pack(
        f"<{n}h", *(int(6000 * math.sin(2 * math.pi * 220 * i / rate)) for i in range(n))
    )


def split(frames):
    """(JSON frames, binary frames) of a mixed list."""
    return [f for f in frames if isinstance(f, dict)], [f for f in frames if isinstance(f, bytes)]


async def test_a_spoken_conversation_end_to_end(serve, llm):
    """PCM in -> transcription_update/finished -> streamed text -> tagged audio -> audio_complete."""
    script = [
        SpeechStarted(at=0.1),
        LiveTranscript("hello", is_final=False),
        LiveTranscript("hello there", is_final=True, speech_final=True, start=0.1, duration=0.8),
    ]
    microphone = pcm(1.0)  # 32,000 bytes; the fake provider answers once it has all of it
    stt = FakeLiveSTT(script, after_bytes=len(microphone))
    tts = ToneTTS()
    llm.push(Step(["Hello ", "you. ", "How are ", "you today?"]))
    async with serve(stt=stt, tts=tts) as web, web.ws() as socket:
        conversation_id = (await web.start_chat(socket))[0]["conversation_id"]
        await web.send(socket, "start_listening", format="pcm16", sample_rate=16000)
        assert await web.recv(socket) == {
            "type": "listening_started",
            "format": "pcm16",
            "sample_rate": 16000,
        }
        assert await web.recv(socket) == {
            "type": "audio_format",
            "enabled": True,
            "output_format": "pcm_24000",
            "encoding": "pcm_s16le",
            "sample_rate": 24000,
            "channels": 1,
        }
        for start in range(0, len(microphone), 3200):  # 100 ms frames
            await socket.send(microphone[start : start + 3200])
        heard = await web.recv_until(socket, "transcription_finished")
        assert heard == [
            {"type": "speech_started"},
            {"type": "transcription_update", "text": "hello"},
            {"type": "transcription_finished", "text": "hello there"},
        ]
        frames, audio = split(await web.recv_mixed(socket, "turn_complete"))
        kinds = [f["type"] for f in frames]
        assert kinds[:2] == ["turn_started", "message_started"]
        assert kinds[-3:] == ["message_complete", "audio_complete", "turn_complete"]
        message_id = frames[1]["message_id"]
        assert "".join(f["text"] for f in frames if f["type"] == "llm_chunk") == (
            "Hello you. How are you today?"
        )
        assert frames[-2] == {
            "type": "audio_complete",
            "message_id": message_id,
            "character_id": "alex",
        }
        # Every binary frame: 16 bytes of message id, sentence index, chunk index, then audio.
        tagged = [parse_audio_frame(frame) for frame in audio]
        assert {t[0] for t in tagged} == {message_id}
        assert [(t[1], t[2]) for t in tagged] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (1, 3)]
        assert all(len(t[3]) == 2 * 24000 // 20 for t in tagged)  # 50 ms of 24 kHz PCM16 a word
        assert audio[0][:16] == uuid.UUID(message_id).bytes
        assert [(text, fmt) for text, _, fmt in tts.requests] == [
            ("Hello you.", "pcm_24000"),
            ("How are you today?", "pcm_24000"),
        ]
        # The provider got the microphone audio as sent, in the encoding asked for.
        session = stt.sessions[0]
        assert (session.encoding, session.sample_rate, session.language) == ("pcm16", 16000, "en")
        assert bytes(session.audio) == microphone
        # The user message holds the transcript and what was heard how.
        user = await store.get_message(frames[0]["user_message_id"])
        assert (user.role, user.content, user.conversation_id) == (
            "user",
            "hello there",
            conversation_id,
        )
        assert user.metadata["audio"]["format"] == "pcm16"
        assert user.metadata["audio"]["sample_rate"] == 16000
        assert user.metadata["audio"]["stt_provider"] == "fake-live-stt"
        assert user.metadata["stt_ms"] == 100  # 1.0 s streamed, the words ended at 0.9 s
        reply = await store.get_message(message_id)
        assert (reply.status, reply.content) == ("complete", "Hello you. How are you today?")
        assert reply.metadata["stt_ms"] == 100 and "first_audio_ms" in reply.metadata
        # stop_listening: audio replies go off with it.
        await web.send(socket, "stop_listening")
        assert await web.recv(socket) == {"type": "listening_stopped", "reason": "stopped"}
        assert (await web.recv(socket))["enabled"] is False
        assert session.closed


async def test_stop_listening_answers_an_unfinished_utterance(serve, llm):
    stt = FakeLiveSTT([LiveTranscript("what time", is_final=True)])
    async with serve(stt=stt) as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "start_listening", format="webm")
        assert await web.recv(socket) == {
            "type": "listening_started",
            "format": "webm",
            "sample_rate": None,
        }
        assert (await web.recv(socket))["enabled"] is False  # no TTS provider: text replies
        await socket.send(b"\x1a\x45\xdf\xa3webm")
        assert await web.recv(socket) == {"type": "transcription_update", "text": "what time"}
        await web.send(socket, "stop_listening")
        frames = await web.recv_until(socket, "turn_complete")
        assert frames[0] == {"type": "transcription_finished", "text": "what time"}
        # The turn runs in its own job: its frames and the stop's may interleave.
        kinds = [f["type"] for f in frames]
        assert {"type": "listening_stopped", "reason": "stopped"} in frames
        assert kinds.index("turn_started") < kinds.index("message_started")
        assert llm.requests[-1].messages[-1]["content"] == "what time"
        assert stt.sessions[0].encoding == "webm" and stt.sessions[0].sample_rate is None


async def test_audio_settings_turn_spoken_replies_on_and_off(serve, llm):
    tts = ToneTTS()
    async with serve(tts=tts) as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "audio_settings", enabled=True, output_format="pcm_16000")
        assert await web.recv(socket) == {
            "type": "audio_format",
            "enabled": True,
            "output_format": "pcm_16000",
            "encoding": "pcm_s16le",
            "sample_rate": 16000,
            "channels": 1,
        }
        llm.push("Spoken words.")
        await web.send(socket, "user_message", text="speak")
        frames, audio = split(await web.recv_mixed(socket, "turn_complete"))
        assert [parse_audio_frame(a)[1:3] for a in audio] == [(0, 0), (0, 1)]
        assert all(len(parse_audio_frame(a)[3]) == 1600 for a in audio)
        assert "audio_complete" in [f["type"] for f in frames]
        # Invalid settings change nothing.
        for data, code in (
            ({"enabled": True, "output_format": "pcm_44100"}, "invalid_audio_settings"),
            ({"enabled": "yes"}, "invalid_frame"),
        ):
            await web.send(socket, "audio_settings", **data)
            assert (await web.recv(socket))["code"] == code
        await web.send(socket, "audio_settings", enabled=False)
        assert (await web.recv(socket))["enabled"] is False
        llm.push("Quiet words.")
        await web.send(socket, "user_message", text="write")
        frames, audio = split(await web.recv_mixed(socket, "turn_complete"))
        assert audio == [] and "audio_complete" not in [f["type"] for f in frames]
        assert [text for text, _, _ in tts.requests] == ["Spoken words."]


async def test_listening_errors_leave_the_socket_usable(serve, llm):
    stt = FakeLiveSTT([LiveTranscript("half", is_final=False)])
    async with serve(stt=stt) as web, web.ws() as socket:
        await web.start_chat(socket)
        await socket.send(b"audio before listening")
        assert (await web.recv(socket))["code"] == "not_listening"
        # The provider cannot open a session.
        stt.open_error = ProviderUnavailable("deepgram is down")
        await web.send(socket, "start_listening")
        error = await web.recv(socket)
        assert (error["code"], error["retryable"]) == ("stt_failed", True)
        stt.open_error = None
        # A second start while listening; then the connection to the provider drops.
        await web.send(socket, "start_listening")
        assert (await web.recv(socket))["type"] == "listening_started"
        await web.recv(socket)  # audio_format
        await web.send(socket, "start_listening")
        assert (await web.recv(socket))["code"] == "already_listening"
        await socket.send(b"\x00\x01")
        assert (await web.recv(socket))["type"] == "transcription_update"
        stt.sessions[-1].drop(ProviderUnavailable("connection lost"))
        error = await web.recv(socket)
        assert (error["type"], error["code"]) == ("error", "stt_failed")
        assert await web.recv(socket) == {"type": "listening_stopped", "reason": "error"}
        await web.recv(socket)  # audio_format
        await socket.send(b"\x00\x01")
        assert (await web.recv(socket))["code"] == "not_listening"
        await web.send(socket, "user_message", text="typing still works")
        assert (await web.recv_until(socket, "turn_complete"))[-1]["turn_count"] == 1


class TranscribedSpy:
    """Records every call of the ``transcribed`` hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def transcribed(self, conversation, text):
        self.calls.append((conversation.id, text))


async def test_transcribed_fires_once_per_live_utterance(serve, llm):
    """The runtime fires ``transcribed`` as a live utterance becomes a turn: once each, and not
    for typed messages."""
    spy = TranscribedSpy()
    stt = FakeLiveSTT()
    llm.push("One.")
    llm.push("Two.")
    llm.push("Three.")
    async with serve(stt=stt, plugins=(spy,)) as web, web.ws() as socket:
        conversation_id = (await web.start_chat(socket))[0]["conversation_id"]
        await web.send(socket, "start_listening", format="pcm16", sample_rate=16000)
        await web.recv_until(socket, "audio_format")
        await socket.send(pcm(0.1))
        for text in ("first words", "second words"):
            stt.sessions[0].push(LiveTranscript(text, is_final=True, speech_final=True))
            await web.recv_until(socket, "turn_complete")
        await web.send(socket, "user_message", text="typed")
        await web.recv_until(socket, "turn_complete")
    assert spy.calls == [(conversation_id, "first words"), (conversation_id, "second words")]
