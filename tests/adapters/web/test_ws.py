"""``/ws``: connecting, exact frames of a turn, resume, new conversations, bad frames."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from parley.adapters.web.client_frames import FRAMES
from parley.core import store
from parley.core.providers import ProviderUnavailable
from parley.testing import Step


async def test_connect_starts_a_conversation_with_its_greeting(serve):
    async with serve() as web:
        async with web.ws() as socket:
            started, *greeting = await web.start_chat(socket)
        conversation_id = started["conversation_id"]
        assert started == {
            "type": "conversation_started",
            "conversation_id": conversation_id,
            "template_id": "solo",
            "characters": [{"id": "alex", "name": "Alex"}],
            "language": "en",
            "resumed": False,
        }
        message_id = greeting[0]["message_id"]
        assert greeting == [
            {
                "type": "message_started",
                "message_id": message_id,
                "character_id": "alex",
                "character_name": "Alex",
                "conversation_id": conversation_id,
            },
            {
                "type": "llm_chunk",
                "text": "Hi there!",
                "message_id": message_id,
                "character_id": "alex",
            },
            {
                "type": "message_complete",
                "message_id": message_id,
                "character_id": "alex",
                "character_name": "Alex",
                "text": "Hi there!",
                "status": "complete",
            },
        ]
        conversation = await store.get_conversation(conversation_id)
        assert (conversation.channel, conversation.is_open) == ("web", True)
        # Reconnecting resumes the device's open conversation, without a second greeting.
        async with web.ws() as socket:
            again = await web.recv(socket)
            assert again == {**started, "resumed": True}
            await web.send(socket, "user_message", text="still there?")
            assert (await web.recv(socket))["type"] == "turn_started"
        # /chat/ continues the same device conversation.
        chat = (await web.http.post("/chat/", json={"content": "hi"})).json()
        assert chat["conversation_id"] == conversation_id


async def test_a_turn_streams_exact_frames(serve, llm):
    llm.push(Step(["Hello ", "you"]))
    async with serve() as web, web.ws() as socket:
        started = (await web.start_chat(socket))[0]
        conversation_id = started["conversation_id"]
        await web.send(socket, "user_message", text="hi")
        frames = await web.recv_until(socket, "turn_complete")
        user_message_id = frames[0]["user_message_id"]
        message_id = frames[1]["message_id"]
        assert frames == [
            {
                "type": "turn_started",
                "conversation_id": conversation_id,
                "user_message_id": user_message_id,
            },
            {
                "type": "message_started",
                "message_id": message_id,
                "character_id": "alex",
                "character_name": "Alex",
                "conversation_id": conversation_id,
            },
            {
                "type": "llm_chunk",
                "text": "Hello ",
                "message_id": message_id,
                "character_id": "alex",
            },
            {"type": "llm_chunk", "text": "you", "message_id": message_id, "character_id": "alex"},
            {
                "type": "message_complete",
                "message_id": message_id,
                "character_id": "alex",
                "character_name": "Alex",
                "text": "Hello you",
                "status": "complete",
            },
            {
                "type": "turn_complete",
                "turn_count": 1,
                "conversation_ended": False,
                "conversation_id": conversation_id,
            },
        ]
        assert (await store.get_message(user_message_id)).content == "hi"
        assert (await store.get_message(message_id)).content == "Hello you"


async def test_an_ended_conversation_gives_way_to_a_new_one(serve):
    async with serve() as web, web.ws() as socket:
        first = (await web.start_chat(socket))[0]["conversation_id"]
        await web.send(socket, "user_message", text="bye")
        frames = await web.recv_until(socket, "turn_complete")
        assert [f["text"] for f in frames if f["type"] == "message_complete"] == ["Take care!"]
        assert frames[-1] == {
            "type": "turn_complete",
            "turn_count": 1,
            "conversation_ended": True,
            "reason": "user_ended",
            "conversation_id": first,
        }
        await web.send(socket, "user_message", text="hello again")
        frames = await web.recv_until(socket, "turn_complete")
        started = frames[0]
        assert started["type"] == "conversation_started"
        assert started["conversation_id"] != first
        assert [f["text"] for f in frames if f["type"] == "message_complete"] == ["Hi there!", "ok"]
        assert frames[-1]["turn_count"] == 1


async def test_an_idle_conversation_past_its_ttl_gives_way_to_a_new_one(serve):
    """The socket does not read its conversation before each turn; it still sees it expire."""
    async with serve({"conversation": {"session_ttl": 1.5}}) as web, web.ws() as socket:
        first = (await web.start_chat(socket))[0]["conversation_id"]
        await web.send(socket, "user_message", text="hello")
        await web.recv_until(socket, "turn_complete")
        await asyncio.sleep(1.6)
        await web.send(socket, "user_message", text="anyone?")
        frames = await web.recv_until(socket, "turn_complete")
        assert frames[0]["type"] == "conversation_started"
        assert frames[0]["conversation_id"] != first
        assert [f["text"] for f in frames if f["type"] == "message_complete"] == ["Hi there!", "ok"]
        expired = await store.get_conversation(first)
        assert expired.reason_ended == "expired"


async def test_a_conversation_ended_elsewhere_gives_way_to_a_new_one(serve):
    """Ended by another path (a plugin, the REST API): the socket hears it and moves on."""
    async with serve() as web, web.ws() as socket:
        first = (await web.start_chat(socket))[0]["conversation_id"]
        await web.runtime.engine.end(first, "user_ended", farewell=False)
        ended = await web.recv_until(socket, "conversation_ended")
        assert ended[-1]["reason"] == "user_ended"
        await web.send(socket, "user_message", text="still there?")
        frames = await web.recv_until(socket, "turn_complete")
        assert frames[0]["type"] == "conversation_started"
        assert frames[0]["conversation_id"] != first
        assert [f["text"] for f in frames if f["type"] == "message_complete"] == ["Hi there!", "ok"]


async def test_provider_failure_on_the_socket(serve, llm):
    llm.push(Step(["half"], error=ProviderUnavailable("the LLM is down")))
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "user_message", text="hi")
        frames = await web.recv_until(socket, "turn_complete")
        kinds = [f["type"] for f in frames]
        assert kinds == [
            "turn_started",
            "message_started",
            "llm_chunk",
            "message_complete",
            "error",
            "turn_complete",
        ]
        assert frames[3]["status"] == "failed"
        assert frames[4] == {
            "type": "error",
            "code": "provider_unavailable",
            "message": "the LLM is down",
            "retryable": True,
        }
        await web.send(socket, "user_message", text="again")
        assert (await web.recv_until(socket, "turn_complete"))[-1]["turn_count"] == 2


async def test_resume_sends_history_after_a_message_and_switches(serve, llm):
    async with serve() as web:
        async with web.ws() as socket:
            old = (await web.start_chat(socket))[0]["conversation_id"]
            await web.send(socket, "user_message", text="first")
            seen = await web.recv_until(socket, "turn_complete")
        last_seen = seen[-2]["message_id"]  # the reply to "first"
        llm.push("late reply")
        await web.http.post("/chat/", json={"content": "while away"})
        async with web.ws() as socket:
            await web.recv(socket)
            await web.send(socket, "new_conversation")
            new = (await web.recv_until(socket, "message_complete"))[0]["conversation_id"]
            await web.send(socket, "resume", conversation_id=old, after_message_id=last_seen)
            history = await web.recv(socket)
            messages = history["messages"]
            assert history == {
                "type": "history",
                "conversation_id": old,
                "messages": messages,
                "has_more": False,
                "status": "ended",
                "template_id": "solo",
                "characters": [{"id": "alex", "name": "Alex"}],
            }
            assert [(m["role"], m["content"]) for m in messages] == [
                ("user", "while away"),
                ("assistant", "late reply"),
            ]
            assert set(messages[1]) == {
                "id",
                "role",
                "name",
                "character_id",
                "content",
                "status",
                "created_at",
            }
            await web.send(socket, "resume", conversation_id=new)
            full = await web.recv(socket)
            assert [m["content"] for m in full["messages"]] == ["Hi there!"]
            assert full["status"] == "open"
            await web.send(socket, "user_message", text="back in the new one")
            frames = await web.recv_until(socket, "turn_complete")
            assert frames[-1]["conversation_id"] == new
            await web.send(socket, "resume", conversation_id=old, after_message_id=new)
            assert (await web.recv(socket))["code"] == "unknown_message"
        # The old conversation ended when the socket started a new one.
        ended = await store.get_conversation(old)
        assert (ended.status, ended.reason_ended) == ("ended", "new_conversation")


async def test_another_device_cannot_reach_a_conversation(serve):
    async with serve() as web:
        async with web.ws() as socket:
            mine = (await web.start_chat(socket))[0]["conversation_id"]
        async with web.ws(device_id=web.OTHER) as socket:
            theirs = (await web.start_chat(socket))[0]["conversation_id"]
            assert theirs != mine
            await web.send(socket, "resume", conversation_id=mine)
            assert await web.recv(socket) == {
                "type": "error",
                "code": "not_found",
                "message": "conversation not found",
            }
            await web.send(socket, "user_message", text="hi")
            frames = await web.recv_until(socket, "turn_complete")
            assert frames[-1]["conversation_id"] == theirs
        assert await store.count_messages(mine) == 1  # only the greeting


async def test_new_conversation_with_a_template(serve):
    async with serve() as web, web.ws() as socket:
        first = (await web.start_chat(socket))[0]["conversation_id"]
        await web.send(socket, "new_conversation", template_id="duo", language="de")
        started = await web.recv(socket)
        assert started == {
            "type": "conversation_started",
            "conversation_id": started["conversation_id"],
            "template_id": "duo",
            "characters": [{"id": "maya", "name": "Maya"}, {"id": "leo", "name": "Leo"}],
            "language": "de",
            "resumed": False,
        }
        ended = await store.get_conversation(first)
        assert (ended.status, ended.reason_ended) == ("ended", "new_conversation")
        await web.send(socket, "new_conversation", template_id="nope")
        assert await web.recv(socket) == {
            "type": "error",
            "code": "unknown_template",
            "message": "unknown template 'nope'",
        }
        await web.send(socket, "new_conversation", language="not a code")
        assert (await web.recv(socket))["code"] == "validation_error"


async def test_query_template_and_language(serve):
    async with serve() as web:
        async with web.ws(template_id="duo") as socket:
            started = await web.recv(socket)
            assert started["template_id"] == "duo"
        async with web.ws(template_id="duo") as socket:
            assert (await web.recv(socket))["conversation_id"] == started["conversation_id"]
        async with web.ws(template_id="solo") as socket:  # another template: a new conversation
            solo = await web.recv(socket)
            assert (solo["template_id"], solo["resumed"]) == ("solo", False)
        async with web.ws(template_id="nope") as socket:
            assert (await web.recv(socket))["code"] == "unknown_template"
            with pytest.raises(ConnectionClosed) as closed:
                await web.recv(socket)
            assert closed.value.rcvd.code == 4404


BAD_FRAMES = [
    ("not json", "invalid_json"),
    ("[1, 2]", "invalid_frame"),
    ('{"data": {}}', "invalid_frame"),
    ('{"type": 5}', "invalid_frame"),
    ('{"type": "user_message", "data": []}', "invalid_frame"),
    ('{"type": "shout", "data": {}}', "unknown_type"),
    ('{"type": "user_message", "data": {}}', "invalid_frame"),
    ('{"type": "user_message", "data": {"text": 5}}', "invalid_frame"),
    ('{"type": "user_message", "data": {"text": "  "}}', "validation_error"),
    ('{"type": "user_message", "data": {"text": "' + "x" * 11 + '"}}', "message_too_long"),
    ('{"type": "user_message", "data": {"text": "' + "x" * 3000 + '"}}', "frame_too_large"),
    ('{"type": "resume", "data": {}}', "invalid_frame"),
    ('{"type": "resume", "data": {"conversation_id": "nope"}}', "not_found"),
    ('{"type": "new_conversation", "data": {"template_id": 3}}', "invalid_frame"),
    # Voice frames on a server without STT and TTS providers.
    ('{"type": "start_listening", "data": {"format": "pcm16"}}', "stt_unavailable"),
    ('{"type": "start_listening", "data": {"format": "mp3"}}', "invalid_frame"),
    ('{"type": "start_listening", "data": {"sample_rate": "16k"}}', "invalid_frame"),
    ('{"type": "start_listening", "data": {"sample_rate": 100}}', "invalid_frame"),
    ('{"type": "stop_listening"}', "not_listening"),
    ('{"type": "audio_settings", "data": {}}', "invalid_frame"),
    (
        '{"type": "audio_settings", "data": {"enabled": true, "output_format": "wav"}}',
        "invalid_audio_settings",
    ),
    ('{"type": "audio_settings", "data": {"enabled": true}}', "tts_unavailable"),
    # null is an absent optional field: these reach their handler.
    (
        '{"type": "start_listening", "data": {"format": null, "sample_rate": null}}',
        "stt_unavailable",
    ),
    (
        '{"type": "audio_settings", "data": {"enabled": true, "output_format": null}}',
        "tts_unavailable",
    ),
    (
        '{"type": "resume", "data": {"conversation_id": "nope", "after_message_id": null}}',
        "not_found",
    ),
    ('{"type": "model_settings", "data": {"max_tokens": 10}}', "invalid_model_settings"),
    ('{"type": "refresh_characters", "data": {"admin_token": 5}}', "forbidden"),
]


async def test_bad_frames_get_an_error_and_the_socket_stays_open(serve):
    settings = {"web": {"max_message_chars": 10, "max_body_bytes": 2048}}
    async with serve(extra=settings) as web, web.ws() as socket:
        await web.start_chat(socket)
        for raw, code in BAD_FRAMES:
            await socket.send(raw)
            frame = await web.recv(socket)
            assert frame["type"] == "error", raw
            assert frame["code"] == code, raw
            assert isinstance(frame["message"], str) and frame["message"]
        await web.send(socket, "user_message")
        assert await web.recv(socket) == {
            "type": "error",
            "code": "invalid_frame",
            "message": "data.text is required",  # docs/protocol.md's example
        }
        await socket.send(b"\x00\x01audio")
        assert await web.recv(socket) == {
            "type": "error",
            "code": "not_listening",
            "message": "binary audio needs start_listening",
        }
        await web.send(socket, "user_message", text="still ok")
        frames = await web.recv_until(socket, "turn_complete")
        assert frames[-1]["turn_count"] == 1


async def test_every_client_frame_type_has_a_handler(serve):
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        (session,) = web.runtime.adapters["web"].sockets
        assert set(session.handlers) == set(FRAMES)


async def test_closing_mid_reply_stores_it_as_interrupted(serve, llm):
    llm.push(Step(["never"]))
    llm.gate = asyncio.Event()
    async with serve() as web:
        async with web.ws() as socket:
            await web.start_chat(socket)
            await web.send(socket, "user_message", text="hi")
            started = await web.recv_until(socket, "message_started")
        message_id = started[-1]["message_id"]
        for _ in range(200):
            message = await store.get_message(message_id)
            if message.status != "pending":
                break
            await asyncio.sleep(0.01)
        assert (message.status, message.content) == ("interrupted", "")
        assert not web.runtime.adapters["web"].sockets
        llm.gate.set()


async def test_stopping_the_adapter_closes_sockets_and_interrupts_replies(serve, llm):
    llm.gate = asyncio.Event()
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "user_message", text="hi")
        message_id = (await web.recv_until(socket, "message_started"))[-1]["message_id"]
        adapter = web.runtime.adapters["web"]
        await adapter.stop()
        assert not adapter.sockets
        with pytest.raises(ConnectionClosed) as closed:
            await web.recv(socket)
        assert closed.value.rcvd.code == 1001
        assert (await store.get_message(message_id)).status == "interrupted"


async def test_interrupt_cuts_the_reply_short_and_queued_messages_go_on(serve, llm):
    """``WebSession.interrupt`` is what barge-in (voice) calls."""
    llm.push(Step(["cut ", "short"]))
    llm.push("next reply")
    llm.gate = asyncio.Event()
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "user_message", text="tell me a story")
        message_id = (await web.recv_until(socket, "message_started"))[-1]["message_id"]
        await web.send(socket, "user_message", text="stop, something else")
        (session,) = web.runtime.adapters["web"].sockets
        assert await session.interrupt() == message_id
        assert await web.recv(socket) == {"type": "interrupted", "message_id": message_id}
        stored = await store.get_message(message_id)
        assert stored.status == "interrupted"
        llm.gate.set()
        frames = await web.recv_until(socket, "turn_complete")
        assert [f["text"] for f in frames if f["type"] == "message_complete"] == ["next reply"]
        assert await session.interrupt() is None  # nothing in progress
