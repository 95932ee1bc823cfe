"""Traces of real turns (a local OpenAI-compatible server, a tool, spoken sentences, SQLite),
exported to an in-memory exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley import hookimpl
from parley.core import store
from parley.core.config import SettingsError
from parley.core.events import MessageCompleted
from parley.core.inbound import Inbound
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.core.speech import SpeechOptions
from parley.fake_services import FakeOpenAIServer
from parley.testing import ToneTTS, collect, openai_tool_calls


class Tone:
    @hookimpl
    def register_tts_providers(self, register):
        register("tone", lambda settings: ToneTTS())


async def traced_runtime(make_settings, extra) -> tuple[Runtime, InMemorySpanExporter]:
    pm = make_plugin_manager((), entry_points=False, extra=[("tone", Tone())])
    runtime = Runtime(
        make_settings({"tracing": {"enabled": True, "exporter": "none"}, **extra}), pm
    )
    await runtime.start(adapters=False)
    exporter = InMemorySpanExporter()
    runtime.telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return runtime, exporter


async def test_one_trace_per_turn_with_provider_tool_and_database_spans(make_settings):
    async with FakeOpenAIServer() as primary, FakeOpenAIServer() as fallback:
        primary.push(("status", 500))
        fallback.push(
            ("raw", openai_tool_calls(("current_time", {}))),
            ("text", ["It is late. ", "Sleep well."]),
        )
        extra = {
            "tts": {"provider": "tone"},
            "personas": {"alex": {"tools": ["current_time"]}},
            "llm": {
                "provider": "openai",
                "base_url": primary.base_url,
                "api_key": "k",
                "breaker_threshold": 0,
                "fallbacks": [
                    {"provider": "openai", "base_url": fallback.base_url, "api_key": "k"}
                ],
            },
        }
        runtime, exporter = await traced_runtime(make_settings, extra)
        try:
            user = await store.get_or_create_user("test", "t")
            conversation = (await runtime.engine.open(user.id, "test")).conversation
            exporter.clear()  # the greeting's database work ran outside any turn
            events = await collect(
                runtime.engine.turn(
                    conversation.id, Inbound(text="time?"), speech=SpeechOptions("pcm_16000")
                )
            )
        finally:
            await runtime.stop()
    spans = exporter.get_finished_spans()
    (turn,) = [s for s in spans if s.name == "parley.turn"]
    assert turn.parent is None  # the root: nothing came with the message
    assert {s.context.trace_id for s in spans} == {turn.context.trace_id}
    reply = next(e for e in events if isinstance(e, MessageCompleted))
    assert turn.attributes["parley.conversation_id"] == conversation.id
    assert turn.attributes["parley.message_ids"] == (reply.message_id,)
    assert turn.attributes["parley.user_message_id"]
    assert turn.attributes["parley.status"] == "complete"
    assert turn.attributes["parley.llm.provider"] == ("openai#2",)
    children = [s for s in spans if s is not turn]
    assert {s.parent.span_id for s in children} == {turn.context.span_id}
    llm = [s for s in children if s.name == "llm.stream"]
    # Each round (the tool call, then the answer) tries the primary first, then the fallback.
    assert [(s.attributes["parley.provider"], s.attributes.get("parley.error")) for s in llm] == [
        ("openai", "provider_unavailable"),
        ("openai#2", None),
        ("openai", "provider_unavailable"),
        ("openai#2", None),
    ]
    (tool,) = [s for s in children if s.name == "tool.call"]
    assert tool.attributes["parley.tool"] == "current_time"
    assert llm[1].end_time <= tool.start_time <= tool.end_time <= llm[2].start_time
    tts = [s for s in children if s.name == "tts.synthesize"]
    assert [s.attributes["parley.chars"] for s in tts] == [len("It is late."), len("Sleep well.")]
    db = [s for s in children if s.name == "db.query"]
    operations = {s.attributes["db.operation"] for s in db}
    assert {"INSERT", "UPDATE", "SELECT"} <= operations
    assert all(s.attributes["db.system"] == "sqlite" for s in db)


async def test_the_trace_context_travels_with_the_inbound_message(make_settings):
    receiving, exporter_a = await traced_runtime(make_settings, {})
    answering, exporter_b = await traced_runtime(make_settings, {})
    try:
        carrier = receiving.telemetry.received("web", **{"parley.platform_message_id": "m-1"})
        user = await store.get_or_create_user("test", "t2")
        conversation = (await answering.engine.open(user.id, "test")).conversation
        inbound = Inbound(text="hi", metadata={"trace": carrier})
        await collect(answering.engine.turn(conversation.id, inbound))
    finally:
        await answering.stop()
        await receiving.stop()
    (received,) = exporter_a.get_finished_spans()
    (turn,) = [s for s in exporter_b.get_finished_spans() if s.name == "parley.turn"]
    assert carrier["traceparent"].split("-")[1] == f"{received.context.trace_id:032x}"
    assert turn.context.trace_id == received.context.trace_id
    assert turn.parent.span_id == received.context.span_id


def test_a_bad_exporter_is_named(make_settings):
    settings = make_settings({"tracing": {"enabled": True, "exporter": "zipkin"}})
    with pytest.raises(SettingsError, match=r"tracing\.exporter"):
        Runtime(settings).collect()


async def test_a_keyed_turn_answered_again_joins_the_first_attempts_trace(make_settings):
    from parley.core.inbox_turns import recover_turn

    async with FakeOpenAIServer() as server:
        server.push(("status", 500), ("text", ["Second time lucky."]))
        llm = {"provider": "openai", "base_url": server.base_url, "api_key": "k"}
        runtime, exporter = await traced_runtime(
            make_settings, {"llm": {**llm, "max_retries": 0, "breaker_threshold": 0}}
        )
        try:
            user = await store.get_or_create_user("test", "t3")
            conversation = (await runtime.engine.open(user.id, "test")).conversation
            inbound = Inbound(text="hi", idempotency_key="key-1")
            first = await collect(runtime.engine.turn(conversation.id, inbound))
            assert next(e for e in first if isinstance(e, MessageCompleted)).status == "failed"
            item = await store.get_inbox("turn", f"test:{user.id}:key-1")
            # What the claim loop of any process runs for an item whose holder died:
            await recover_turn(runtime.engine.run_turn, runtime.locks, item)
        finally:
            await runtime.stop()
    first_turn, second_turn = [s for s in exporter.get_finished_spans() if s.name == "parley.turn"]
    assert (
        item.payload["trace"]["traceparent"].split("-")[2] == f"{first_turn.context.span_id:016x}"
    )
    assert second_turn.context.trace_id == first_turn.context.trace_id
    assert second_turn.parent.span_id == first_turn.context.span_id
    assert second_turn.attributes["parley.status"] == "complete"
