"""Barge-in on ``/ws``: the user cuts a spoken reply short; without it, messages wait their turn."""

from __future__ import annotations

import asyncio
import json

import pytest

from parley.adapters.web.frames import parse_audio_frame
from parley.core import store
from parley.core.providers import LiveTranscript, SpeechStarted
from parley.testing import FakeLiveSTT, ToneTTS

from .conftest import STORY, HeldLLM


async def _until_audio(web, socket) -> tuple[str, list]:
    """Frames until the first binary one: the held reply is being spoken. (message id, frames)"""
    frames = []
    while True:
        frame = await asyncio.wait_for(socket.recv(), 5)
        if isinstance(frame, bytes):
            message_id = next(f["message_id"] for f in frames if f["type"] == "message_started")
            assert parse_audio_frame(frame)[0] == message_id
            return message_id, frames
        frames.append(json.loads(frame))


async def _assert_cut(web, socket, message_id: str) -> None:
    """The rest of the held reply: maybe more audio, then ``interrupted``; stored interrupted."""
    while True:
        frame = await asyncio.wait_for(socket.recv(), 5)
        if isinstance(frame, bytes):
            assert parse_audio_frame(frame)[0] == message_id
            continue
        decoded = json.loads(frame)
        if decoded["type"] == "speech_started" or decoded["type"] == "transcription_update":
            continue
        assert decoded == {"type": "interrupted", "message_id": message_id}
        break
    stored = await store.get_message(message_id)
    assert (stored.status, stored.content) == ("interrupted", "".join(STORY))


@pytest.mark.parametrize(
    "cut_in",
    [SpeechStarted(at=2.0), LiveTranscript("wait", is_final=False)],
    ids=["speech_started", "interim_transcript"],
)
async def test_speaking_cuts_a_spoken_reply_short(serve, cut_in):
    llm = HeldLLM()
    stt = FakeLiveSTT([LiveTranscript("tell me a story", is_final=True, speech_final=True)])
    async with serve(provider=llm, stt=stt, tts=ToneTTS()) as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "start_listening")
        await web.recv_until(socket, "audio_format")
        await socket.send(b"\x00\x00" * 160)
        assert (await web.recv(socket))["type"] == "transcription_finished"
        message_id, _ = await _until_audio(web, socket)
        session = stt.sessions[0]
        session.push(cut_in)
        await _assert_cut(web, socket, message_id)
        session.push(LiveTranscript("wait, stop", is_final=True, speech_final=True))
        frames = await web.recv_mixed(socket, "turn_complete")
        texts = [
            f["text"] for f in frames if isinstance(f, dict) and f["type"] == "message_complete"
        ]
        assert texts == ["Sure, go ahead."]
        assert llm.requests[-1].messages[-1]["content"] == "wait, stop"


async def test_a_typed_message_cuts_a_spoken_reply_short(serve):
    llm = HeldLLM()
    async with serve(provider=llm, tts=ToneTTS()) as web, web.ws() as socket:
        conversation_id = (await web.start_chat(socket))[0]["conversation_id"]
        await web.send(socket, "audio_settings", enabled=True)
        await web.recv(socket)
        await web.send(socket, "user_message", text="tell me a story")
        message_id, _ = await _until_audio(web, socket)
        await web.send(socket, "user_message", text="actually, never mind")
        await _assert_cut(web, socket, message_id)
        frames = [f for f in await web.recv_mixed(socket, "turn_complete") if isinstance(f, dict)]
        assert frames[0]["type"] == "turn_started"
        assert [f["text"] for f in frames if f["type"] == "message_complete"] == ["Sure, go ahead."]
        stored = await store.list_messages(conversation_id)
        assert [(m.role, m.content, m.status) for m in stored][1:] == [
            ("user", "tell me a story", "complete"),
            ("assistant", "".join(STORY), "interrupted"),
            ("user", "actually, never mind", "complete"),
            ("assistant", "Sure, go ahead.", "complete"),
        ]


async def test_without_barge_in_messages_wait_for_the_spoken_reply(serve, llm):
    llm.push("First answer.")
    llm.push("Second answer.")
    llm.gate = asyncio.Event()
    settings = {"templates": {"calm": {"personas": ["alex"], "barge_in": False}}}
    async with (
        serve(settings, tts=ToneTTS()) as web,
        web.ws(template_id="calm") as socket,
    ):
        await web.start_chat(socket)
        await web.send(socket, "audio_settings", enabled=True)
        await web.recv(socket)
        await web.send(socket, "user_message", text="one")
        await web.recv_until(socket, "message_started")
        await web.send(socket, "user_message", text="two")
        llm.gate.set()
        frames = await web.recv_mixed(socket, "turn_complete")
        frames += await web.recv_mixed(socket, "turn_complete")
        kinds = [f["type"] for f in frames if isinstance(f, dict)]
        assert "interrupted" not in kinds
        completed = [f for f in frames if isinstance(f, dict) and f["type"] == "message_complete"]
        assert [(f["text"], f["status"]) for f in completed] == [
            ("First answer.", "complete"),
            ("Second answer.", "complete"),
        ]
        assert kinds.count("audio_complete") == 2
