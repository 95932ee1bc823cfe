"""Getting replies out: Graph retries and failures, and answering after a restart."""

from __future__ import annotations

import asyncio
import socket

import pytest

from parley.adapters.whatsapp.graph import GraphClient, GraphError
from parley.adapters.whatsapp.intake import APOLOGIES
from parley.adapters.whatsapp.settings import WhatsAppSettings
from parley.core import store

NO_GREETING = {"languages": {"en": {"prompts": {"start": ""}}}}


async def _messages(wa_id: str):
    user = await store.get_or_create_user("whatsapp", wa_id)
    conversation = await store.find_open_conversation(user.id, "whatsapp")
    return await store.list_messages(conversation.id)


async def test_graph_500_is_retried_then_succeeds(serve, meta, graph, providers, logs):
    graph.fail("text", status=500, code=131000, times=2)
    providers.llm.push("Made it.")
    async with serve(NO_GREETING) as served:
        await served.deliver(meta.text_delivery("wamid.R1", "hello"))
        await served.idle()
        reply = (await _messages(meta.ANN))[-1]
        assert (reply.content, reply.status) == ("Made it.", "complete")
        assert reply.metadata["whatsapp_ids"] == ["wamid.out.1"]
    assert len(graph.of("text")) == 3  # two 500s, then 200
    retries = logs.matching("retry")
    assert len(retries) == 2
    assert all("HTTP 500" in m and "Graph error code 131000" in m for m in retries)
    assert meta.TOKEN not in logs.text


@pytest.mark.parametrize(
    ("status", "code", "attempts"),
    [(500, 131000, 3), (400, 131047, 1)],  # 131047: outside the 24-hour window, not retried
)
async def test_reply_that_cannot_be_sent_is_stored_failed(
    serve, meta, graph, providers, logs, status, code, attempts
):
    graph.fail("text", status=status, code=code, times=None)
    providers.llm.push("Nobody will read this.")
    async with serve(NO_GREETING, max_retries=2) as served:
        await served.deliver(meta.text_delivery("wamid.F1", "hello"))
        await served.idle()
        user_message, reply = await _messages(meta.ANN)
        assert user_message.status == "complete"  # answered: a restart must not retry it
        assert (reply.content, reply.status) == ("Nobody will read this.", "failed")
        assert reply.metadata["whatsapp_error"] == {
            "status": status,
            "code": code,
            "message": f"(#{code}) simulated failure",
        }
        assert await store.pending_messages("whatsapp") == []
    assert len(graph.of("text")) == attempts
    assert f"Graph error code {code}" in logs.text
    assert meta.TOKEN not in logs.text


async def test_voice_note_upload_failure_keeps_the_text_reply(serve, meta, graph, providers):
    graph.media["media-in-9"] = (b"OggS fake voice", "audio/ogg")
    graph.fail("upload", status=400, code=131053, times=None)
    payload = meta.envelope(meta.value([meta.audio_message("wamid.U1", "media-in-9")]))
    async with serve(NO_GREETING) as served:
        await served.deliver(payload)
        await served.idle()
        reply = (await _messages(meta.ANN))[-1]
        assert reply.status == "complete"
        assert reply.metadata["whatsapp_voice_error"]["code"] == 131053
    assert graph.texts() == ["ok"]
    assert graph.of("audio") == []


async def test_media_download_failure_marks_the_message_failed_and_apologises(
    serve, meta, graph, providers
):
    payload = meta.envelope(meta.value([meta.audio_message("wamid.D1", "media-missing")]))
    async with serve(NO_GREETING) as served:
        await served.deliver(payload)
        await served.idle()
        (user_message,) = await _messages(meta.ANN)
        assert user_message.status == "failed"
        assert user_message.metadata["error"] == {
            "code": "media_download_failed",
            "graph": {"status": 404, "code": 100, "message": "no such media"},
        }
    assert providers.stt.calls == []
    assert graph.texts() == [APOLOGIES["media_download_failed"]]  # never left in silence


async def test_stored_unanswered_message_is_answered_after_restart(serve, meta, graph, providers):
    # The first run stops while the message is stored but not answered yet (mark-read hangs).
    release = graph.stall("read")
    payload = meta.text_delivery("wamid.RS1", "are you still there?")
    async with serve(NO_GREETING, drain_timeout=0.1) as served:
        response = await served.deliver(payload)
        assert response.json()["stored"] == 1
        await asyncio.wait_for(graph.arrived("read").wait(), timeout=5)
        assert [m.status for m in await store.pending_messages("whatsapp")] == ["pending"]
    assert graph.of("text") == []
    assert providers.llm.requests == []
    release.set()
    providers.llm.push("Yes, I am here.")
    async with serve(NO_GREETING) as served:  # same database
        await served.idle()
        assert graph.texts() == ["Yes, I am here."]
        # Meta repeats the delivery: it was already received, nothing happens.
        assert (await served.deliver(payload)).json()["stored"] == 0
        await served.idle()
        messages = await _messages(meta.ANN)
        assert [(m.role, m.content, m.status) for m in messages] == [
            ("user", "are you still there?", "complete"),
            ("assistant", "Yes, I am here.", "complete"),
        ]
    async with serve(NO_GREETING) as served:  # a third start finds nothing to do
        await served.idle()
    assert graph.texts() == ["Yes, I am here."]
    assert len(providers.llm.requests) == 1


async def test_network_errors_are_retried(logs):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    settings = WhatsAppSettings(
        graph_base=f"http://127.0.0.1:{port}/v21.0",
        access_token="secret-token-value",
        phone_number_id="1",
        max_retries=2,
        retry_backoff=0.01,
    )
    client = GraphClient(settings)
    try:
        with pytest.raises(GraphError) as failure:
            await client.send_text("15550001111", "hi")
    finally:
        await client.aclose()
    assert failure.value.status is None and "network error" in failure.value.message
    assert len(logs.matching("retry")) == 2
    assert "secret-token-value" not in logs.text


async def test_turn_cut_by_shutdown_is_answered_after_restart(serve, meta, graph, providers):
    # The first run stops while the LLM is still writing: nothing reached the user.
    providers.llm.gate = asyncio.Event()
    providers.llm.push("never sent")
    payload = meta.text_delivery("wamid.RS2", "hello?")
    # Held past the shutdown's grace: without the first-token watchdog, which would fail it.
    held = {**NO_GREETING, "llm": {"provider": "scripted", "first_token_timeout": 0}}
    async with serve(held, drain_timeout=0.1) as served:
        assert (await served.deliver(payload)).json()["stored"] == 1
        for _ in range(500):
            if providers.llm.requests:
                break
            await asyncio.sleep(0.01)
        assert providers.llm.requests
    assert graph.of("text") == []
    providers.llm.gate.set()
    providers.llm.push("Hello again.")
    async with serve(NO_GREETING) as served:  # same database
        await served.idle()
        assert graph.texts() == ["Hello again."]
        messages = await _messages(meta.ANN)
        assert [(m.role, m.status) for m in messages] == [
            ("assistant", "interrupted"),
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        assert await store.pending_messages("whatsapp") == []
