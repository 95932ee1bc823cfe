"""Opening conversations by identity: a device seen for the first time gets its user, identity
and conversation at once; later connections resume it (parley/core/opening.py)."""

from __future__ import annotations

import asyncio

import pytest

from parley import hookimpl
from parley.core import store


class Started:
    """Records the conversations the ``conversation_started`` hook saw."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    @hookimpl
    def conversation_started(self, conversation):
        self.ids.append(conversation.id)


async def test_a_new_identity_gets_its_user_and_greeted_conversation(make_engine):
    started = Started()
    engine = make_engine(plugins=(started,))
    opened = await engine.resume_or_open(None, "web", identity="device-1", template_id="duo")
    assert not opened.resumed
    assert opened.conversation.template_id == "duo" and opened.conversation.channel == "web"
    assert opened.greeting is not None and opened.greeting.content == "Hi there!"
    assert opened.greeting.character_id == "maya"  # the template's speaker
    user = await store.find_user("web", "device-1")
    assert user is not None and opened.conversation.user_id == user.id
    assert started.ids == [opened.conversation.id]

    again = await engine.resume_or_open(None, "web", identity="device-1")
    assert again.resumed and again.conversation.id == opened.conversation.id
    assert again.greeting is None
    assert started.ids == [opened.conversation.id]  # the hook fired once
    assert len(engine.locks) == 0


async def test_greet_false_stores_no_greeting(make_engine):
    engine = make_engine()
    opened = await engine.resume_or_open(None, "web", identity="quiet", greet=False)
    assert opened.greeting is None
    assert await store.list_messages(opened.conversation.id) == []


async def test_a_known_identity_without_an_open_conversation_gets_a_new_one(make_engine):
    engine = make_engine()
    user = await store.get_or_create_user("web", "known")
    opened = await engine.resume_or_open(None, "web", identity="known", language="de")
    assert not opened.resumed
    assert opened.conversation.user_id == user.id and opened.conversation.language == "de"


async def test_first_connections_of_one_device_share_one_conversation(make_engine):
    """Tabs of one new device at once, some through another engine that shares no locks with
    the first (a process without Redis): one user, one conversation, one greeting."""
    here, there = make_engine(), make_engine()
    opened = await asyncio.gather(
        *(e.resume_or_open(None, "web", identity="tabs") for e in [here, there] * 4)
    )
    assert len({o.conversation.id for o in opened}) == 1
    assert sum(not o.resumed for o in opened) == 1
    user_id = opened[0].conversation.user_id
    assert [c.id for c, _ in await store.list_conversations(user_id)] == [opened[0].conversation.id]
    assert len(await store.list_messages(opened[0].conversation.id)) == 1
    assert len(here.locks) == len(there.locks) == 0


async def test_resume_or_open_needs_a_user_or_an_identity(make_engine):
    with pytest.raises(ValueError):
        await make_engine().resume_or_open(None, "web")
