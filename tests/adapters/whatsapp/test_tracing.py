"""A WhatsApp message's trace: received by the webhook, answered by the runner, one trace."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley.core import store


async def test_the_turn_joins_the_trace_of_the_received_message(serve, meta, providers):
    providers.llm.push("Hello Ann.")
    exporter = InMemorySpanExporter()
    async with serve({"tracing": {"enabled": True, "exporter": "none"}}) as served:
        served.runtime.telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        await served.deliver(meta.text_delivery("wamid.TR1", "hi there", name="Ann"))
        await served.idle()
        stored = await store.find_message("whatsapp", "wamid.TR1")
    spans = exporter.get_finished_spans()
    (received,) = [s for s in spans if s.name == "parley.receive"]
    (turn,) = [s for s in spans if s.name == "parley.turn"]
    assert received.attributes["parley.channel"] == "whatsapp"
    assert received.attributes["parley.platform_message_id"] == "wamid.TR1"
    assert turn.context.trace_id == received.context.trace_id
    assert turn.parent.span_id == received.context.span_id
    assert turn.attributes["parley.user_message_id"] == stored.id
    # ... to the platform: the reply sent to the Graph API is a span of the turn.
    sends = [s for s in spans if s.name == "platform.send"]
    assert sends and {s.context.trace_id for s in sends} == {turn.context.trace_id}
    assert any(s.parent.span_id == turn.context.span_id for s in sends)
    assert stored.metadata["trace"]["traceparent"].split("-")[1] == f"{turn.context.trace_id:032x}"


async def test_without_tracing_nothing_is_added_to_the_message(serve, meta, providers):
    providers.llm.push("Hello Ann.")
    async with serve() as served:
        await served.deliver(meta.text_delivery("wamid.TR2", "hi there", name="Ann"))
        await served.idle()
        stored = await store.find_message("whatsapp", "wamid.TR2")
    assert "trace" not in stored.metadata
