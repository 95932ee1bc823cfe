"""The client's ``interrupt`` frame on ``/ws``: a stop button, or speech over audio still playing."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from parley.adapters.web.frames import parse_audio_frame
from parley.core import store
from parley.testing import ToneTTS

from .conftest import STORY, HeldLLM


async def _settled(web, socket) -> None:
    """Nothing else was answered: the next frame is the answer to a ``model_settings`` sent now."""
    await web.send(socket, "model_settings", temperature=0.5)
    assert (await web.recv(socket))["type"] == "model_settings_updated"


async def _spoken_turn(web, socket, text: str) -> tuple[str, list]:
    """Send ``text`` with audio replies on; the reply's id and its frames up to turn_complete."""
    await web.send(socket, "user_message", text=text)
    frames = await web.recv_mixed(socket, "turn_complete")
    started = [f for f in frames if isinstance(f, dict) and f["type"] == "message_started"]
    return started[-1]["message_id"], frames


@pytest.mark.parametrize("audio", [True, False], ids=["spoken", "text"])
async def test_interrupt_cuts_a_streaming_reply_short(serve, audio):
    llm = HeldLLM()
    async with serve(provider=llm, tts=ToneTTS()) as web, web.ws() as socket:
        await web.start_chat(socket)
        if audio:
            await web.send(socket, "audio_settings", enabled=True)
            await web.recv(socket)
        await web.send(socket, "user_message", text="tell me a story")
        frames = []
        while not any(f.get("type") == "llm_chunk" and "begins" in f["text"] for f in frames):
            raw = await asyncio.wait_for(socket.recv(), 5)
            if isinstance(raw, str):
                frames.append(json.loads(raw))
        message_id = next(f["message_id"] for f in frames if f["type"] == "message_started")
        await web.send(socket, "interrupt", message_id=message_id, played_sentences=0)
        while True:
            raw = await asyncio.wait_for(socket.recv(), 5)
            if isinstance(raw, bytes):
                assert parse_audio_frame(raw)[0] == message_id
                continue
            frame = json.loads(raw)
            if frame["type"] != "llm_chunk":
                break
        assert frame == {"type": "interrupted", "message_id": message_id}
        stored = await store.get_message(message_id)
        assert (stored.status, stored.content) == ("interrupted", "".join(STORY))
        assert stored.metadata["interrupted_by"] == "client"
        assert stored.metadata["sentences_played"] == 0

        # The socket goes on: the next message is answered (the cut turn sent no turn_complete).
        await web.send(socket, "user_message", text="something else")
        frames = [f for f in await web.recv_mixed(socket, "turn_complete") if isinstance(f, dict)]
        assert frames[0]["type"] == "turn_started"
        assert [f["text"] for f in frames if f["type"] == "message_complete"] == ["Sure, go ahead."]


async def test_interrupt_after_all_audio_was_sent_marks_the_played_reply(serve, llm):
    llm.push("First sentence here. Second sentence here. Third one.")
    async with serve(tts=ToneTTS()) as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "audio_settings", enabled=True)
        await web.recv(socket)
        message_id, frames = await _spoken_turn(web, socket, "talk to me")
        assert {"type": "audio_complete"}.items() <= next(
            f for f in frames if isinstance(f, dict) and f["type"] == "audio_complete"
        ).items()
        before = await store.get_message(message_id)
        assert before.status == "complete"

        await web.send(socket, "interrupt", message_id=message_id, played_sentences=1)
        assert await web.recv(socket) == {"type": "interrupted", "message_id": message_id}
        stored = await store.get_message(message_id)
        assert stored.status == "interrupted"
        assert stored.content == before.content  # the text is kept
        assert stored.metadata == {
            **before.metadata,
            "interrupted_by": "client",
            "sentences_played": 1,
        }

        # Again: already interrupted, nothing happens.
        await web.send(socket, "interrupt", message_id=message_id, played_sentences=2)
        await _settled(web, socket)
        assert (await store.get_message(message_id)).metadata["sentences_played"] == 1


async def test_interrupt_of_an_older_reply_changes_nothing(serve, llm):
    llm.push("First answer.")
    llm.push("Second answer.")
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        first, _ = await _spoken_turn(web, socket, "one")
        await _spoken_turn(web, socket, "two")
        await web.send(socket, "interrupt", message_id=first)
        await _settled(web, socket)
        assert (await store.get_message(first)).status == "complete"


async def test_interrupt_of_another_conversations_message_is_refused(serve, llm):
    llm.push("Answer for device b.")
    async with serve() as web:
        async with web.ws(device_id=web.OTHER) as other:
            await web.start_chat(other)
            theirs, _ = await _spoken_turn(web, other, "hi")
        async with web.ws() as socket:
            await web.start_chat(socket)
            await web.send(socket, "interrupt", message_id=theirs)
            frame = await web.recv(socket)
            assert (frame["type"], frame["code"]) == ("error", "unknown_message")
            await _settled(web, socket)  # the socket stays usable
        assert (await store.get_message(theirs)).status == "complete"


@pytest.mark.parametrize(
    "message_id", [str(uuid.uuid4()), "not-a-uuid"], ids=["unknown", "not-a-uuid"]
)
async def test_interrupt_of_an_unknown_message_is_refused(serve, message_id):
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "interrupt", message_id=message_id)
        frame = await web.recv(socket)
        assert (frame["type"], frame["code"]) == ("error", "unknown_message")
        await _settled(web, socket)


@pytest.mark.parametrize(
    "data",
    [{"played_sentences": -1}, {"played_sentences": "2"}, {"cause": "boredom"}, {"message_id": 3}],
)
async def test_a_bad_interrupt_frame_is_an_error(serve, data):
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "interrupt", **data)
        frame = await web.recv(socket)
        assert (frame["type"], frame["code"]) == ("error", "invalid_frame")
        await _settled(web, socket)


async def test_without_barge_in_only_the_stop_button_interrupts(serve, llm):
    llm.push("A calm answer. It goes on.")
    settings = {"templates": {"calm": {"personas": ["alex"], "barge_in": False}}}
    async with serve(settings, tts=ToneTTS()) as web, web.ws(template_id="calm") as socket:
        await web.start_chat(socket)
        await web.send(socket, "audio_settings", enabled=True)
        await web.recv(socket)
        message_id, _ = await _spoken_turn(web, socket, "hello")

        await web.send(socket, "interrupt", message_id=message_id, cause="speech")
        await _settled(web, socket)
        assert (await store.get_message(message_id)).status == "complete"

        await web.send(socket, "interrupt", message_id=message_id, cause="stop")
        assert await web.recv(socket) == {"type": "interrupted", "message_id": message_id}
        assert (await store.get_message(message_id)).status == "interrupted"
