"""The tool loop, end to end: the engine and the real openai provider against respx streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import respx

from parley import hookimpl
from parley.core import store
from parley.core.engine import Engine
from parley.core.events import ErrorEvent, MessageCompleted, MessageStarted, TextDelta
from parley.core.inbound import Inbound
from parley.core.plugins import Hooks, make_plugin_manager
from parley.core.tools import Tool
from parley.plugins.openai.llm import OpenAILLM
from parley.testing import collect, openai_text, openai_tool_calls

BASE_URL = "http://llm.test/v1"
URL = f"{BASE_URL}/chat/completions"
OBJECT = {"type": "object", "properties": {"city": {"type": "string"}}}


class Tools:
    """A plugin contributing the given tools."""

    def __init__(self, *tools: Tool) -> None:
        self.tools = tools

    @hookimpl
    def register_tools(self, register):
        for tool in self.tools:
            register(tool)


def stream(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def sent(route: respx.Route, call: int) -> dict[str, Any]:
    return json.loads(route.calls[call].request.content)


def assert_valid_for_openai(messages: list[dict[str, Any]]) -> None:
    """Every assistant ``tool_calls`` is answered right after it, and no ``tool`` message dangles."""
    i = 0
    while i < len(messages):
        message = messages[i]
        assert message["role"] != "tool", f"dangling tool message at {i}: {messages}"
        if message["role"] == "assistant" and message.get("tool_calls"):
            ids = [call["id"] for call in message["tool_calls"]]
            answers = messages[i + 1 : i + 1 + len(ids)]
            assert [m["role"] for m in answers] == ["tool"] * len(ids), messages
            assert [m["tool_call_id"] for m in answers] == ids
            i += len(ids)
        i += 1


@pytest.fixture
async def mock() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
async def make_tool_engine(db, make_settings) -> AsyncIterator[Callable[..., Engine]]:
    """An engine on the openai provider (respx-visible client); alex may call ``tools``."""
    clients: list[httpx.AsyncClient] = []
    llms: list[OpenAILLM] = []

    def make(tools: list[str], *plugins: object, extra: dict[str, Any] | None = None) -> Engine:
        extra = extra or {}
        settings = make_settings(
            {
                **extra,
                "llm": {
                    "provider": "openai",
                    "base_url": BASE_URL,
                    "api_key": "sk-test",
                    **extra.get("llm", {}),
                },
                "personas": {"alex": {"tools": tools}},
            }
        )
        pm = make_plugin_manager(
            (), entry_points=False, extra=[(f"tools-{i}", p) for i, p in enumerate(plugins)]
        )
        client = httpx.AsyncClient()
        llm = OpenAILLM(settings.llm, http_client=client)
        clients.append(client)
        llms.append(llm)
        return Engine(settings, Hooks(pm), llm)

    yield make
    for llm in llms:
        await llm.aclose()
    for client in clients:
        await client.aclose()


async def _open(engine: Engine) -> str:
    user = await store.get_or_create_user("test", "tools")
    return (await engine.open(user.id, "test")).conversation.id


async def test_one_call_streams_text_around_it_and_is_stored(mock, make_tool_engine):
    engine = make_tool_engine(["current_time"])
    route = mock.post(URL)
    route.side_effect = [
        stream(
            openai_tool_calls(("current_time", {"timezone": "Europe/Berlin"}), text="Let me look.")
        ),
        stream(openai_text("It is ", "tea time.")),
    ]
    conversation_id = await _open(engine)
    events = await collect(engine.turn(conversation_id, Inbound(text="What time is it in Berlin?")))

    assert len([e for e in events if isinstance(e, MessageStarted)]) == 1
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "Let me look.",
        " ",
        "It is ",
        "tea time.",
    ]
    done = next(e for e in events if isinstance(e, MessageCompleted))
    assert (done.text, done.status) == ("Let me look. It is tea time.", "complete")
    assert (done.tokens_in, done.tokens_out) == (10, 6)  # both rounds

    first, second = sent(route, 0), sent(route, 1)
    assert [t["function"]["name"] for t in first["tools"]] == ["current_time"]
    assert "tool_choice" not in first
    call, result = second["messages"][-2:]
    assert call["role"] == "assistant" and call["content"] == "Let me look."
    assert call["tool_calls"][0]["function"] == {
        "name": "current_time",
        "arguments": '{"timezone": "Europe/Berlin"}',
    }
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
    assert json.loads(result["content"])["timezone"] == "Europe/Berlin"

    stored = await store.list_messages(conversation_id)
    assert [(m.role, m.status) for m in stored] == [
        ("assistant", "complete"),  # greeting
        ("user", "complete"),
        ("assistant", "complete"),
        ("tool", "complete"),
    ]
    reply, tool = stored[2], stored[3]
    assert reply.content == "Let me look. It is tea time."
    assert len(reply.metadata["tool_steps"]) == 1
    assert tool.name == "current_time" and tool.character_id == "alex"
    assert tool.metadata["arguments"] == '{"timezone": "Europe/Berlin"}'
    assert tool.metadata["tool_call_id"] == call["tool_calls"][0]["id"]
    assert tool.metadata["reply_id"] == reply.id
    assert tool.metadata["duration_ms"] >= 0 and "started_at" in tool.metadata
    assert json.loads(tool.content)["timezone"] == "Europe/Berlin"

    # The next turn sends the stored exchange back in an order OpenAI accepts.
    route.side_effect = [stream(openai_text("You are welcome."))]
    await collect(engine.turn(conversation_id, Inbound(text="Thanks")))
    history = sent(route, 2)["messages"]
    assert_valid_for_openai(history)
    assert [m["role"] for m in history] == [
        "system",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert history[5]["content"] == "Let me look. It is tea time."


async def test_parallel_calls_run_concurrently(mock, make_tool_engine):
    started: list[str] = []
    both = asyncio.Event()

    async def forecast(city: str) -> str:
        started.append(city)
        if len(started) == 2:
            both.set()
        await both.wait()  # only returns if the other call runs at the same time
        return f"sunny in {city}"

    tool = Tool("forecast", "Weather forecast", OBJECT, forecast, timeout=5)
    engine = make_tool_engine(["forecast"], Tools(tool))
    route = mock.post(URL)
    route.side_effect = [
        stream(openai_tool_calls(("forecast", {"city": "Oslo"}), ("forecast", {"city": "Rome"}))),
        stream(openai_text("Both sunny.")),
    ]
    conversation_id = await _open(engine)
    await collect(engine.turn(conversation_id, Inbound(text="Oslo and Rome?")))

    tail = sent(route, 1)["messages"][-3:]
    assert len(tail[0]["tool_calls"]) == 2
    assert [m["content"] for m in tail[1:]] == ["sunny in Oslo", "sunny in Rome"]
    tools = [m for m in await store.list_messages(conversation_id) if m.role == "tool"]
    assert [(m.content, m.status) for m in tools] == [
        ("sunny in Oslo", "complete"),
        ("sunny in Rome", "complete"),
    ]


async def test_failing_tool_and_bad_calls_become_error_results(mock, make_tool_engine):
    async def forecast(city: str) -> str:
        raise LookupError(f"no station in {city}")

    engine = make_tool_engine(["forecast"], Tools(Tool("forecast", "Forecast", OBJECT, forecast)))
    route = mock.post(URL)
    route.side_effect = [
        stream(
            openai_tool_calls(
                ("forecast", {"city": "Atlantis"}),
                ("teleport", {"to": "Mars"}),  # not a tool alex may call
                ("forecast", {"town": "Oslo"}),  # wrong argument name
            )
        ),
        stream(openai_text("Sorry, no forecast.")),
    ]
    conversation_id = await _open(engine)
    events = await collect(engine.turn(conversation_id, Inbound(text="Atlantis?")))

    assert not any(isinstance(e, ErrorEvent) for e in events)
    done = next(e for e in events if isinstance(e, MessageCompleted))
    assert (done.text, done.status) == ("Sorry, no forecast.", "complete")
    results = [json.loads(m["content"]) for m in sent(route, 1)["messages"][-3:]]
    assert results[0] == {"error": "LookupError: no station in Atlantis"}
    assert results[1]["error"].startswith("unknown tool 'teleport'")
    assert "TypeError" in results[2]["error"]
    tools = [m for m in await store.list_messages(conversation_id) if m.role == "tool"]
    assert [m.status for m in tools] == ["failed", "failed", "failed"]
    assert tools[0].metadata["error"] == "LookupError: no station in Atlantis"


async def test_tool_that_times_out(mock, make_tool_engine):
    cancelled = asyncio.Event()

    async def slow(city: str) -> str:
        try:
            await asyncio.Event().wait()  # never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    engine = make_tool_engine(
        ["slow"], Tools(Tool("slow", "Slow", OBJECT, slow)), extra={"tools": {"timeout": 0.05}}
    )
    route = mock.post(URL)
    route.side_effect = [
        stream(openai_tool_calls(("slow", {"city": "Oslo"}))),
        stream(openai_text("The service is slow today.")),
    ]
    conversation_id = await _open(engine)
    events = await collect(engine.turn(conversation_id, Inbound(text="Oslo?")))

    assert cancelled.is_set()
    assert any(isinstance(e, MessageCompleted) and e.status == "complete" for e in events)
    result = json.loads(sent(route, 1)["messages"][-1]["content"])
    assert result == {"error": "the tool 'slow' timed out after 0.05 s"}
    tool = (await store.list_messages(conversation_id))[-1]
    assert (tool.role, tool.status, tool.metadata["error"]) == ("tool", "failed", "timeout")


async def test_max_tool_steps(mock, make_tool_engine):
    calls: list[str] = []

    async def forecast(city: str) -> str:
        calls.append(city)
        return "cloudy"

    engine = make_tool_engine(
        ["forecast"],
        Tools(Tool("forecast", "Forecast", OBJECT, forecast)),
        extra={"llm": {"max_tool_steps": 2}},
    )
    route = mock.post(URL)
    route.side_effect = [
        stream(openai_tool_calls(("forecast", {"city": "A"}))),
        stream(openai_tool_calls(("forecast", {"city": "B"}))),
        # The last round may not call tools; a model that still does is not obeyed.
        stream(openai_tool_calls(("forecast", {"city": "C"}), text="Cloudy everywhere.")),
    ]
    conversation_id = await _open(engine)
    events = await collect(engine.turn(conversation_id, Inbound(text="Forecasts?")))

    assert route.call_count == 3
    assert calls == ["A", "B"]
    assert [("tool_choice" in sent(route, i)) for i in range(3)] == [False, False, True]
    assert sent(route, 2)["tool_choice"] == "none" and sent(route, 2)["tools"]
    done = next(e for e in events if isinstance(e, MessageCompleted))
    assert (done.text, done.status) == ("Cloudy everywhere.", "complete")
    reply = next(m for m in await store.list_messages(conversation_id) if m.id == done.message_id)
    assert len(reply.metadata["tool_steps"]) == 2
    assert reply.metadata["tool_steps_exhausted"] is True


async def test_interrupted_turn_cancels_running_tools(mock, make_tool_engine):
    running = asyncio.Event()
    cancelled = asyncio.Event()

    async def book(city: str) -> str:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "booked"

    async def quick(city: str) -> str:
        return "done"

    engine = make_tool_engine(
        ["book", "quick"],
        Tools(Tool("book", "Book", OBJECT, book), Tool("quick", "Quick", OBJECT, quick)),
    )
    route = mock.post(URL)
    route.side_effect = [
        stream(
            openai_tool_calls(
                ("quick", {"city": "Oslo"}), ("book", {"city": "Oslo"}), text="On it."
            )
        )
    ]
    conversation_id = await _open(engine)
    turn = asyncio.create_task(collect(engine.turn(conversation_id, Inbound(text="Book Oslo"))))
    await asyncio.wait_for(running.wait(), 5)
    turn.cancel()  # the user went away: the adapter cancels the turn
    with pytest.raises(asyncio.CancelledError):
        await turn

    assert cancelled.is_set()
    stored = await store.list_messages(conversation_id)
    reply, *tools = stored[2:]
    assert (reply.role, reply.status, reply.content) == ("assistant", "interrupted", "On it.")
    assert [(m.name, m.status) for m in tools] == [("quick", "complete"), ("book", "cancelled")]
    assert json.loads(tools[1].content) == {"error": "the call was cancelled"}

    # The lock was released and the next turn's context stays valid.
    route.side_effect = [stream(openai_text("Let's try again."))]
    await collect(engine.turn(conversation_id, Inbound(text="Again?")))
    history = sent(route, 1)["messages"]
    assert_valid_for_openai(history)
    assert [m["role"] for m in history[-5:]] == ["assistant", "tool", "tool", "assistant", "user"]


async def test_closing_the_stream_mid_reply_keeps_finished_tool_results(mock, make_tool_engine):
    engine = make_tool_engine(["current_time"])
    route = mock.post(URL)
    route.side_effect = [
        stream(openai_tool_calls(("current_time", {}))),
        stream(openai_text("It is ", "noon ", "somewhere.")),
    ]
    conversation_id = await _open(engine)
    async with aclosing(engine.turn(conversation_id, Inbound(text="Time?"))) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                break  # barge-in after the first words of the second round
    stored = await store.list_messages(conversation_id)
    assert [(m.role, m.status) for m in stored[2:]] == [
        ("assistant", "interrupted"),
        ("tool", "complete"),
    ]
    assert stored[2].content == "It is "
