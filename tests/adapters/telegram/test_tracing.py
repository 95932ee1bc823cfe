"""A Telegram update's trace: stored in the inbox with its receipt's context, the turn joins it."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley.core import store


async def test_the_turn_joins_the_trace_of_the_received_update(tg, api):
    tg.llm.push("Hello from the bot")
    runtime = tg.runtime()
    tracing = {"enabled": True, "exporter": "none"}
    runtime.settings = runtime.settings.with_overrides(
        raw={**runtime.settings.raw, "tracing": tracing}
    )
    exporter = InMemorySpanExporter()
    await runtime.start()
    try:
        runtime.telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        tg.push(tg.text("hi there"))
        await api.wait_sent("sendMessage", 2)
        (item,) = await store.inbox_items(channel="telegram")
    finally:
        await runtime.stop()
    spans = exporter.get_finished_spans()
    (received,) = [s for s in spans if s.name == "parley.receive"]
    (turn,) = [s for s in spans if s.name == "parley.turn"]
    assert received.attributes["parley.channel"] == "telegram"
    assert item.payload["trace"]["traceparent"].split("-")[2] == f"{received.context.span_id:016x}"
    assert turn.context.trace_id == received.context.trace_id
    assert turn.parent.span_id == received.context.span_id
    # ... to the platform: the greeting and the reply sent, each a span of that trace.
    sends = [s for s in spans if s.name == "platform.send"]
    assert len(sends) >= 2
    assert {s.context.trace_id for s in sends} == {received.context.trace_id}
