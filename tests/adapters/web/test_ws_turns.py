"""``/ws`` turns: queued messages in order, several characters, model settings, refreshing."""

from __future__ import annotations

import asyncio

from parley.core import store
from parley.testing import Step


def _texts(frames, kind="message_complete"):
    return [f["text"] for f in frames if f["type"] == kind]


async def test_messages_sent_while_a_reply_streams_are_answered_in_order(serve, llm):
    for text in ("reply one", "reply two", "reply three"):
        llm.push(text)
    llm.gate = asyncio.Event()  # the first reply is held "in flight"
    async with serve() as web, web.ws() as socket:
        conversation_id = (await web.start_chat(socket))[0]["conversation_id"]
        await web.send(socket, "user_message", text="one")
        await web.recv_until(socket, "message_started")
        await web.send(socket, "user_message", text="two")
        await web.send(socket, "user_message", text="three")
        # Other frames are answered while the reply is still streaming.
        await web.send(socket, "model_settings", temperature=0.3)
        updated = await web.recv(socket)
        assert updated == {"type": "model_settings_updated", "model_settings": {"temperature": 0.3}}
        llm.gate.set()
        frames = []
        for _ in range(3):
            frames += await web.recv_until(socket, "turn_complete")
        assert _texts(frames) == ["reply one", "reply two", "reply three"]
        assert [f["turn_count"] for f in frames if f["type"] == "turn_complete"] == [1, 2, 3]
        stored = await store.list_messages(conversation_id)
        assert [(m.role, m.content) for m in stored][1:] == [
            ("user", "one"),
            ("assistant", "reply one"),
            ("user", "two"),
            ("assistant", "reply two"),
            ("user", "three"),
            ("assistant", "reply three"),
        ]
        # Each reply saw its own question last; the settings applied from the next reply on.
        assert [r.messages[-1]["content"] for r in llm.requests] == ["one", "two", "three"]
        assert [r.model.temperature for r in llm.requests] == [0.9, 0.3, 0.3]


async def test_every_character_answers_as_its_own_message(serve, llm):
    llm.push(Step(["Maya ", "first"]))
    llm.push(Step(["Leo ", "second"]))
    async with serve() as web, web.ws(template_id="duo") as socket:
        await web.start_chat(socket)
        await web.send(socket, "user_message", text="hello both")
        frames = await web.recv_until(socket, "turn_complete")
        kinds = [f["type"] for f in frames]
        assert kinds == [
            "turn_started",
            "message_started",
            "llm_chunk",
            "llm_chunk",
            "message_complete",
            "message_started",
            "llm_chunk",
            "llm_chunk",
            "message_complete",
            "turn_complete",
        ]
        maya, leo = frames[1], frames[5]
        assert (maya["character_id"], maya["character_name"]) == ("maya", "Maya")
        assert (leo["character_id"], leo["character_name"]) == ("leo", "Leo")
        assert maya["message_id"] != leo["message_id"]
        for frame in frames[2:5]:
            assert (frame["message_id"], frame["character_id"]) == (maya["message_id"], "maya")
        for frame in frames[6:9]:
            assert (frame["message_id"], frame["character_id"]) == (leo["message_id"], "leo")
        assert _texts(frames) == ["Maya first", "Leo second"]
        # Leo saw Maya's reply, labelled with her name.
        assert {"role": "user", "content": "[Maya]: Maya first"} in llm.requests[-1].messages


async def test_a_mentioned_character_answers_alone(serve, llm):
    async with serve() as web, web.ws(template_id="duo") as socket:
        await web.start_chat(socket)
        for text, expected in (
            ("@Leo what do you think?", ["leo"]),
            ("maya, and you?", ["maya"]),
            ("Leo and Maya, both of you", ["maya", "leo"]),
        ):
            await web.send(socket, "user_message", text=text)
            frames = await web.recv_until(socket, "turn_complete")
            started = [f["character_id"] for f in frames if f["type"] == "message_started"]
            assert started == expected, text


async def test_model_settings_reach_the_llm_and_are_validated(serve, llm):
    async with serve() as web, web.ws() as socket:
        conversation_id = (await web.start_chat(socket))[0]["conversation_id"]
        await web.send(
            socket,
            "model_settings",
            model="big-model",
            temperature=1.5,
            top_p=0.8,
            min_p=0.05,
            top_k=40,
            frequency_penalty=0.5,
            presence_penalty=-0.5,
            repetition_penalty=1.1,
        )
        expected = {
            "model": "big-model",
            "temperature": 1.5,
            "top_p": 0.8,
            "min_p": 0.05,
            "top_k": 40,
            "frequency_penalty": 0.5,
            "presence_penalty": -0.5,
            "repetition_penalty": 1.1,
        }
        updated = await web.recv(socket)
        assert updated == {"type": "model_settings_updated", "model_settings": expected}
        state = (await store.get_conversation(conversation_id)).state
        assert state["model_settings"] == expected
        await web.send(socket, "user_message", text="hi")
        await web.recv_until(socket, "turn_complete")
        model = llm.requests[-1].model
        assert {k: getattr(model, k) for k in expected} == expected
        for bad in (
            {"temperature": 3},
            {"top_p": -0.1},
            {"min_p": 2},
            {"top_k": 5000},
            {"presence_penalty": 2.5},
            {"repetition_penalty": 9},
            {"temperature": "hot"},
            {"max_tokens": 10},
            {"seed": 1},
        ):
            await web.send(socket, "model_settings", **bad)
            frame = await web.recv(socket)
            assert frame["type"] == "error", bad
            assert frame["code"] == "invalid_model_settings", bad
            assert next(iter(bad)) in frame["message"]
        # A null unsets one override; the rest stay.
        await web.send(socket, "model_settings", model=None)
        updated = await web.recv(socket)
        assert "model" not in updated["model_settings"]
        assert updated["model_settings"]["temperature"] == 1.5
        # A new conversation from this socket keeps the socket's settings.
        await web.send(socket, "new_conversation")
        started = await web.recv(socket)
        state = (await store.get_conversation(started["conversation_id"])).state
        assert state["model_settings"]["temperature"] == 1.5
