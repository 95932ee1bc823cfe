"""Several clients on one conversation (one process): every socket sees every turn; a message
that arrived elsewhere comes first as ``user_message``; one tab's stop button cuts the reply."""

from __future__ import annotations

import asyncio

import pytest

from parley.core import store
from parley.testing import Step, ToneTTS


async def test_a_rest_message_shows_on_the_open_socket_before_its_reply(serve, llm):
    llm.push("Hello from the server")
    async with serve() as web, web.ws() as socket:
        conversation_id = (await web.start_chat(socket))[0]["conversation_id"]
        chat = (await web.http.post("/chat/", json={"content": "sent over REST"})).json()
        frames = await web.recv_until(socket, "turn_complete")
        user, started, *reply = frames
        message = await store.get_message(started["user_message_id"])
        assert user == {
            "type": "user_message",
            "conversation_id": conversation_id,
            "message": {
                "id": message.id,
                "role": "user",
                "name": None,
                "character_id": None,
                "content": "sent over REST",
                "status": "complete",
                "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
            },
        }
        assert started == {
            "type": "turn_started",
            "conversation_id": conversation_id,
            "user_message_id": message.id,
        }
        complete = next(f for f in reply if f["type"] == "message_complete")
        assert complete["message_id"] == chat["message_id"]
        assert complete["text"] == chat["content"] == "Hello from the server"
        # The socket's own message is not echoed back to it.
        await web.send(socket, "user_message", text="and this one?")
        assert (await web.recv(socket))["type"] == "turn_started"


async def test_two_tabs_see_each_others_turns(serve, llm):
    llm.push("one")
    async with serve() as web, web.ws() as first, web.ws() as second:
        conversation_id = (await web.start_chat(first))[0]["conversation_id"]
        resumed = await web.recv(second)
        assert (resumed["conversation_id"], resumed["resumed"]) == (conversation_id, True)
        await web.send(first, "user_message", text="from the first tab")
        mine = await web.recv_until(first, "turn_complete")
        theirs = await web.recv_until(second, "turn_complete")
        assert theirs[0]["type"] == "user_message"
        assert theirs[0]["message"]["content"] == "from the first tab"
        assert theirs[1:] == mine
        assert [f["text"] for f in mine if f["type"] == "message_complete"] == ["one"]


async def test_one_tabs_stop_button_cuts_the_reply_another_tab_asked_for(serve, llm):
    llm.push(Step(["a long ", "story"]))
    llm.gate = asyncio.Event()
    async with serve() as web, web.ws() as first, web.ws() as second:
        await web.start_chat(first)
        await web.recv(second)
        await web.send(first, "user_message", text="tell me a story")
        message_id = (await web.recv_until(first, "message_started"))[-1]["message_id"]
        await web.recv_until(second, "message_started")
        await web.send(second, "interrupt", message_id=message_id)
        cut = {"type": "interrupted", "message_id": message_id}
        assert (await web.recv_until(first, "interrupted"))[-1] == cut
        assert (await web.recv_until(second, "interrupted"))[-1] == cut
        stored = await store.get_message(message_id)
        assert (stored.status, stored.metadata["interrupted_by"]) == ("interrupted", "client")
        llm.gate.set()


async def test_a_text_only_tab_gets_no_audio_of_another_tabs_spoken_reply(serve, llm):
    llm.push("Spoken words.")
    async with serve(tts=ToneTTS()) as web, web.ws() as talking, web.ws() as reading:
        await web.start_chat(talking)
        await web.recv(reading)
        await web.send(talking, "audio_settings", enabled=True)
        await web.recv_until(talking, "audio_format")
        await web.send(talking, "user_message", text="say something")
        spoken = await web.recv_mixed(talking, "turn_complete")
        read = await web.recv_mixed(reading, "turn_complete")
        assert any(isinstance(f, bytes) for f in spoken)
        assert not any(isinstance(f, bytes) for f in read)
        assert "audio_complete" not in [f["type"] for f in read]
        texts = [f["text"] for f in read if f["type"] == "message_complete"]
        assert texts == ["Spoken words."]


@pytest.mark.parametrize("client_id", [5, "", "x" * 201])
async def test_a_bad_client_id_is_an_error_frame(serve, client_id):
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "user_message", text="hi", client_id=client_id)
        frame = await web.recv(socket)
        assert (frame["type"], frame["code"]) == ("error", "invalid_frame")
        assert "client_id" in frame["message"]
        await web.send(socket, "user_message", text="still here", client_id="abc-1")
        assert (await web.recv(socket))["type"] == "turn_started"


async def test_a_repeated_client_id_gets_the_first_answer_and_no_second_turn(serve, llm):
    llm.push("only once")
    async with serve() as web, web.ws() as socket, web.ws() as other:
        await web.start_chat(socket)
        await web.recv(other)
        await web.send(socket, "user_message", text="hi", client_id="m-1")
        first = await web.recv_until(socket, "turn_complete")
        assert len(await web.recv_until(other, "turn_complete")) == len(first) + 1
        # The client did not see the answer (a reconnect, say) and sends the message again.
        await web.send(socket, "user_message", text="hi", client_id="m-1")
        again = await web.recv_until(socket, "turn_complete")
        assert [f for f in again if f["type"] != "llm_chunk"] == [
            f for f in first if f["type"] != "llm_chunk"
        ]
        assert "".join(f["text"] for f in again if f["type"] == "llm_chunk") == "only once"
        assert len(llm.requests) == 1
        stored = await store.list_messages(first[0]["conversation_id"])
        assert [m.content for m in stored] == ["Hi there!", "hi", "only once"]
        # The other tab saw the turn once: the answer replayed is for the socket that asked.
        await web.send(other, "user_message", text="next")
        assert (await web.recv(other))["type"] == "turn_started"


async def test_another_clients_request_that_fails_before_its_turn_is_not_shown(serve, llm):
    from parley.core.inbound import Inbound

    async with serve() as web, web.ws() as socket:
        conversation_id = (await web.start_chat(socket))[0]["conversation_id"]
        # A recording sent elsewhere (no speech-to-text here): that client's error, not ours.
        recording = Inbound(audio=b"OggS" + bytes(64), audio_mime="audio/ogg")
        events = [e async for e in web.runtime.engine.turn(conversation_id, recording)]
        assert [type(e).__name__ for e in events] == ["ErrorEvent"]
        # A later message from elsewhere is shown whole.
        chat = (await web.http.post("/chat/", json={"content": "typed elsewhere"})).json()
        frames = await web.recv_until(socket, "turn_complete")
        assert [f["type"] for f in frames][:2] == ["user_message", "turn_started"]
        assert "error" not in [f["type"] for f in frames]
        assert frames[-2]["message_id"] == chat["message_id"]
