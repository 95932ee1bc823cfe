"""On PostgreSQL a turn's history window is read in the user message's own INSERT statement
(``store.add_message_and_window``): the replies that come after it in the turn, and a routing
hook that writes a message before the first reply, still get what a read at that moment returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from parley import hookimpl
from parley.core import store
from parley.core.config import Settings
from parley.core.events import MessageStarted
from parley.core.inbound import Inbound
from parley.testing import ScriptedLLM, Step, collect, tool_call

DESK = {
    "personas": {"maya": {"tools": ["handoff"]}, "leo": {"tools": ["handoff"]}},
    "templates": {
        "desk": {
            "personas": ["maya", "leo"],
            "agents": [{"persona": "maya", "intents": ["lab"]}, {"persona": "leo"}],
        }
    },
}
NOTE = "(the router's note)"


@pytest.fixture
async def db(pg_schema_url: str) -> AsyncIterator[str]:
    """The store on a fresh PostgreSQL schema (the engine fixtures use it)."""
    await store.connect(pg_schema_url)
    try:
        yield pg_schema_url
    finally:
        await store.close()


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings], db: str) -> Callable[..., Settings]:
    """The tests' settings on that schema."""

    def make(extra: dict[str, Any] | None = None) -> Settings:
        return make_settings({**(extra or {}), "database": {"url": db}})

    return make


class NotingRouter:
    """A ``route`` hook that leaves a message in the conversation, and picks no one."""

    @hookimpl
    async def route(self, conversation: Any, inbound: Any, template: Any) -> None:
        await store.add_message(
            conversation.id, "assistant", NOTE, name="Maya", character_id="maya"
        )


async def _open(engine: Any) -> Any:
    user = await store.get_or_create_user("test", "pg-window")
    return (await engine.open(user.id, "test", template_id="desk")).conversation


async def test_the_next_responder_reads_the_window_again(make_engine, llm: ScriptedLLM) -> None:
    engine = make_engine(DESK)
    conversation = await _open(engine)
    assert engine.settings.database.url.startswith("postgres")
    llm.push(Step(["Leo knows this."], tool_calls=[tool_call("handoff", {"to": "Leo"})]))
    llm.push("Over to him.")
    llm.push("Leo here.")
    events = await collect(engine.turn(conversation.id, Inbound(text="a lab question")))

    assert [e.character_id for e in events if isinstance(e, MessageStarted)] == ["maya", "leo"]
    # Leo's window holds Maya's reply, stored after the user's message was.
    assert llm.requests[2].messages[-2:] == [
        {"role": "user", "content": "a lab question"},
        {"role": "user", "content": "[Maya]: Leo knows this. Over to him."},
    ]


async def test_a_message_written_by_routing_reaches_the_first_reply(
    make_engine, llm: ScriptedLLM
) -> None:
    engine = make_engine(DESK, plugins=(NotingRouter(),))
    conversation = await _open(engine)
    llm.push("Hello.")
    await collect(engine.turn(conversation.id, Inbound(text="hi there")))

    contents = [m["content"] for m in llm.requests[0].messages]
    assert contents[-2:] == ["hi there", NOTE]
