"""Polling end to end: text, commands, de-duplication, splitting, edits, 429, failures."""

from __future__ import annotations

import base64
import itertools
import logging

from parley.core import store
from parley.core.providers import ProviderUnavailable
from parley.testing import Step

from .conftest import CHAT, TOKEN


async def _conversation():
    user = await store.get_or_create_user("telegram", str(CHAT))
    return await store.find_open_conversation(user.id, "telegram")


async def test_text_round_trip(tg, api):
    tg.llm.push("Hello from the bot")
    async with tg.running():
        tg.push(tg.text("hi there"))
        greeting, reply = await api.wait_sent("sendMessage", 2)
        assert greeting.params["text"] == "Hi there!"
        assert reply.params["text"] == "Hello from the bot"
        assert reply.params["chat_id"] == str(CHAT)
        assert any(c.params["action"] == "typing" for c in api.sent("sendChatAction"))
        assert api.sent("deleteWebhook") and api.sent("getMe")
        user = await store.get_or_create_user("telegram", str(CHAT))
        assert user.display_name == "Ada Lovelace"
        conversation = await _conversation()
        assert conversation.state["telegram"]["chat_id"] == CHAT
        messages = await store.list_messages(conversation.id)
        assert [(m.role, m.content) for m in messages] == [
            ("assistant", "Hi there!"),
            ("user", "hi there"),
            ("assistant", "Hello from the bot"),
        ]
        assert messages[1].platform_message_id == f"{CHAT}:1"
    assert tg.llm.requests[0].messages[-1] == {"role": "user", "content": "hi there"}


async def test_one_conversation_per_chat_across_restarts(tg, api):
    async with tg.running():
        tg.push(tg.text("first"))
        await api.wait_sent("sendMessage", 2)  # greeting + reply
        first = await _conversation()
    async with tg.running():
        tg.push(tg.text("second"))
        await api.wait_sent("sendMessage", 3)  # no new greeting: the conversation goes on
        assert (await _conversation()).id == first.id
        assert await store.count_messages(first.id, role="user") == 2


async def test_commands(tg, api):
    async with tg.running():
        tg.push(tg.text("/start"))
        [hello] = await api.wait_sent("sendMessage", 1)
        assert hello.params["text"] == "Hi there!"
        started = await _conversation()
        assert started.template_id == "solo"

        tg.push(tg.text("/new"))
        await api.wait_sent("sendMessage", 2)
        renewed = await _conversation()
        assert renewed.id != started.id
        assert (await store.get_conversation(started.id)).reason_ended == "new_conversation"

        tg.push(tg.text("/template"))
        listing = (await api.wait_sent("sendMessage", 3))[-1].params["text"]
        assert "solo - Solo" in listing and "duo - Duo" in listing

        tg.push(tg.text("/template duo"))
        await api.wait_sent("sendMessage", 4)
        duo = await _conversation()
        assert duo.template_id == "duo" and duo.id != renewed.id

        tg.push(tg.text("/lang de"))
        assert (await api.wait_sent("sendMessage", 5))[-1].params["text"] == "Language set to de."
        assert (await _conversation()).language == "de"

        tg.push(tg.text("/lang xx"))
        assert "Unknown language" in (await api.wait_sent("sendMessage", 6))[-1].params["text"]

        tg.push(tg.text("/help"))
        assert "/template <id>" in (await api.wait_sent("sendMessage", 7))[-1].params["text"]

        tg.push(tg.text("/end"))
        assert (await api.wait_sent("sendMessage", 8))[-1].params["text"] == "Tschüss!"
        ended = await store.get_conversation(duo.id)
        assert (ended.status, ended.reason_ended) == ("ended", "user_ended")
        assert (await store.list_messages(duo.id))[-1].content == "Tschüss!"

        # The chat's choices carry into its next conversation.
        tg.push(tg.text("/new"))
        await api.wait_sent("sendMessage", 9)
        after = await _conversation()
        assert (after.template_id, after.language) == ("duo", "de")


async def test_repeated_update_is_answered_once_also_after_restart(tg, api):
    tg.llm.push("only once")
    update = tg.text("hello")
    same_message = tg.text("hello", message_id=update["message"]["message_id"])
    async with tg.running():
        tg.push(update)
        tg.push(dict(update))  # same update_id
        tg.push(same_message)  # new update_id, same chat and message id
        tg.push(tg.text("/help"))  # a later update of the chat: handled after the others
        await api.wait_sent("sendMessage", 3)
    async with tg.running():
        tg.push(dict(update))
        tg.push(tg.text("/help"))
        await api.wait_sent("sendMessage", 4)
        assert await store.count_messages((await _conversation()).id, role="user") == 1
    texts = [c.params["text"] for c in api.sent("sendMessage")]
    assert texts.count("only once") == 1
    assert len(tg.llm.requests) == 1


async def test_long_reply_is_split_at_paragraphs(tg, api):
    paragraphs = [f"Paragraph {i}. " + "Words go on and on. " * 90 for i in range(5)]
    reply = "\n\n".join(p.strip() for p in paragraphs)
    assert len(reply) > 2 * 4096
    tg.llm.push(Step([reply]))
    async with tg.running():
        tg.push(tg.text("tell me a lot"))
        sent = await api.wait_sent("sendMessage", 4)
    pieces = [c.params["text"] for c in sent[1:]]
    assert len(pieces) == 3
    assert all(len(p) <= 4096 for p in pieces)
    assert all(p.endswith("on and on.") for p in pieces)
    assert "\n\n".join(pieces) == reply


async def test_stream_edits_grow_the_reply_at_most_once_a_second(tg, api):
    words = [f"word{i} " for i in range(8)]
    tg.llm.push(Step(words, delay=0.3))
    async with tg.running(stream_edits=True):
        tg.push(tg.text("stream please"))
        await api.wait_for(lambda: tg.llm.requests)
        first = (await api.wait_sent("sendMessage", 2))[-1]
        assert first.params["text"] == "word0"
        final = "".join(words).strip()
        await api.wait_for(
            lambda: any(c.params["text"] == final for c in api.sent("editMessageText")), 8
        )
    edits = api.sent("editMessageText")
    assert 1 <= len(edits) < len(words) - 1  # throttled: far fewer edits than pieces
    assert len({c.params["message_id"] for c in edits}) == 1
    times = [first.at] + [c.at for c in edits]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))
    lengths = [len(c.params["text"]) for c in edits]
    assert lengths == sorted(lengths)


async def test_flood_control_429_is_retried_after_retry_after(tg, api):
    api.fail("sendMessage", retry_after=1)
    tg.llm.push("after the wait")
    async with tg.running():
        tg.push(tg.text("hi"))
        await api.wait_sent("sendMessage", 2)
    attempts = api.sent("sendMessage", ok_only=False)
    assert [c.status for c in attempts[:2]] == [429, 200]
    assert attempts[0].params == attempts[1].params
    assert attempts[1].at - attempts[0].at >= 1.0


async def test_provider_failure_gets_a_friendly_message(tg, api, caplog):
    caplog.set_level(logging.INFO)
    tg.llm.push(Step(["half a "], error=ProviderUnavailable("upstream is down")))
    async with tg.running():
        tg.push(tg.text("are you there?"))
        sorry = (await api.wait_sent("sendMessage", 2))[-1]
        messages = await store.list_messages((await _conversation()).id)
    assert sorry.params["text"].startswith("Sorry, something went wrong")
    assert [(m.role, m.content, m.status) for m in messages[1:]] == [
        ("user", "are you there?", "complete"),
        ("assistant", "half a ", "failed"),
    ]
    assert "provider_unavailable: upstream is down" in caplog.text
    assert TOKEN not in caplog.text


async def test_photo_with_caption_goes_to_the_llm_as_a_data_url(tg, api):
    jpeg = b"\xff\xd8\xff\xe0fake-jpeg-bytes"
    api.add_file("small", b"tiny")
    api.add_file("big", jpeg)
    sizes = [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 4},
        {"file_id": "big", "file_unique_id": "b", "width": 800, "height": 800, "file_size": 20},
    ]
    tg.llm.push("A nice picture")
    async with tg.running():
        tg.push(tg.message(photo=sizes, caption="what is this?"))
        assert (await api.wait_sent("sendMessage", 2))[-1].params["text"] == "A nice picture"
    content = tg.llm.requests[0].messages[-1]["content"]
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    assert content == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    assert TOKEN not in repr(tg.llm.requests)


async def test_other_kinds_get_a_polite_answer(tg, api):
    sticker = {
        "file_id": "st",
        "file_unique_id": "st",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    async with tg.running():
        tg.push(tg.message(sticker=sticker))
        [answer] = await api.wait_sent("sendMessage", 1)
    assert "I can read text and listen to voice notes" in answer.params["text"]
    assert tg.llm.requests == []


async def test_group_chat_has_one_conversation_and_ignores_other_bots(tg, api):
    group = {"id": -100777, "type": "group", "title": "Book club"}
    tg.llm.push("hello club")
    tg.llm.push("hello again")
    async with tg.running():
        first = tg.message(text="hi all", chat=-100777)
        first["message"]["chat"] = group
        second = tg.message(text="me too", chat=-100777)
        second["message"]["chat"] = group
        second["message"]["from"] = {"id": 99, "is_bot": False, "first_name": "Bob"}
        other_bot = tg.message(text="/weather@someone_else_bot", chat=-100777)
        other_bot["message"]["chat"] = group
        for update in (first, other_bot, second):
            tg.push(update)
        sent = await api.wait_sent("sendMessage", 3)
        owner = await store.get_or_create_user("telegram", "-100777")
        conversation = await store.find_open_conversation(owner.id, "telegram")
        messages = await store.list_messages(conversation.id)
    assert [c.params["text"] for c in sent] == ["Hi there!", "hello club", "hello again"]
    assert owner.display_name == "Book club"
    users = [m for m in messages if m.role == "user"]
    assert [m.content for m in users] == ["hi all", "me too"]
    assert users[1].metadata["sender_name"] == "Bob"


async def test_each_character_of_a_multi_character_template_is_named(tg, api):
    tg.llm.push("Evidence first.")
    tg.llm.push("But what is evidence?")
    async with tg.running(template="duo"):
        tg.push(tg.text("what is truth?"))
        sent = await api.wait_sent("sendMessage", 3)
    assert [c.params["text"] for c in sent[1:]] == [
        "Maya: Evidence first.",
        "Leo: But what is evidence?",
    ]
