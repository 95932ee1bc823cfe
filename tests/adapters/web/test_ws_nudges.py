"""Silence on ``/ws``: the nudge prompt, then the timeout prompt that ends the conversation."""

from __future__ import annotations

from parley.core import store
from parley.core.providers import LiveTranscript, SpeechStarted
from parley.testing import FakeLiveSTT, ToneTTS

NUDGY = {
    "templates": {
        "nudgy": {"personas": ["alex"], "nudge_after": 0.2, "timeout_after": 0.2},
        # A timeout far beyond the test: a second nudge can only come from a reset clock.
        "patient": {"personas": ["alex"], "nudge_after": 0.2, "timeout_after": 600},
        "strict": {"personas": ["alex"], "timeout_after": 0.2},
    },
    "languages": {"en": {"prompts": {"timeout": "Talk soon!"}}},
}


def _said(frames):
    return [f["text"] for f in frames if isinstance(f, dict) and f["type"] == "message_complete"]


async def test_silence_nudges_then_times_out_and_a_message_starts_over(serve):
    async with serve(NUDGY) as web, web.ws(template_id="nudgy") as socket:
        conversation_id = (await web.start_chat(socket))[0]["conversation_id"]
        nudge = await web.recv_until(socket, "message_complete")
        assert [f["type"] for f in nudge] == ["message_started", "llm_chunk", "message_complete"]
        assert nudge[-1]["text"] == "Still there?" and nudge[-1]["character_id"] == "alex"
        # Silence after the nudge: the timeout prompt, and the conversation ends.
        frames = await web.recv_until(socket, "turn_complete")
        assert _said(frames) == ["Talk soon!"]
        assert frames[-2:] == [
            {"type": "conversation_ended", "conversation_id": conversation_id, "reason": "timeout"},
            {
                "type": "turn_complete",
                "turn_count": 0,
                "conversation_ended": True,
                "reason": "timeout",
                "conversation_id": conversation_id,
            },
        ]
        conversation = await store.get_conversation(conversation_id)
        assert (conversation.status, conversation.reason_ended) == ("ended", "timeout")
        stored = await store.list_messages(conversation_id)
        assert [m.content for m in stored] == ["Hi there!", "Still there?", "Talk soon!"]
        # The next message starts a new conversation (with its own silence clock).
        await web.send(socket, "user_message", text="I'm back")
        frames = await web.recv_until(socket, "turn_complete")
        assert frames[0]["type"] == "conversation_started"
        assert frames[0]["conversation_id"] != conversation_id


async def test_timeout_alone_counts_from_the_start_of_the_silence(serve):
    async with serve(NUDGY) as web, web.ws(template_id="strict") as socket:
        await web.start_chat(socket)
        frames = await web.recv_until(socket, "turn_complete")
        assert _said(frames) == ["Talk soon!"]
        assert frames[-1]["reason"] == "timeout"


async def test_a_message_starts_the_silence_over(serve):
    async with serve(NUDGY) as web, web.ws(template_id="patient") as socket:
        await web.start_chat(socket)
        assert _said(await web.recv_until(socket, "message_complete")) == ["Still there?"]
        # Without the reset the next prompt would be the timeout, 600 s away.
        await web.send(socket, "user_message", text="yes, sorry")
        assert _said(await web.recv_until(socket, "turn_complete")) == ["ok"]
        assert _said(await web.recv_until(socket, "message_complete")) == ["Still there?"]


async def test_speech_starts_the_silence_over_and_nudges_are_spoken(serve):
    stt = FakeLiveSTT([LiveTranscript("um", is_final=False)])
    async with (
        serve(NUDGY, stt=stt, tts=ToneTTS()) as web,
        web.ws(template_id="patient") as socket,
    ):
        await web.start_chat(socket)
        assert _said(await web.recv_until(socket, "message_complete")) == ["Still there?"]
        await web.send(socket, "start_listening")
        await web.recv_until(socket, "audio_format")
        # The user starts to speak (no finished utterance): the clock starts over from the nudge,
        # which is now spoken (audio replies are on while listening).
        await socket.send(b"\x00\x00" * 160)
        assert await web.recv(socket) == {"type": "transcription_update", "text": "um"}
        frames = await web.recv_mixed(socket, "audio_complete")
        assert _said(frames) == ["Still there?"]
        assert any(isinstance(f, bytes) for f in frames)
        stt.sessions[0].push(SpeechStarted())
        assert await web.recv(socket) == {"type": "speech_started"}
        assert _said(await web.recv_mixed(socket, "audio_complete")) == ["Still there?"]


async def test_no_nudges_without_the_template_settings(serve, llm):
    llm.push("one")
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "user_message", text="hi")
        frames = await web.recv_until(socket, "turn_complete")
        assert _said(frames) == ["one"]
        session = next(iter(web.runtime.adapters["web"].sockets))
        assert session.nudges.delay() is None
