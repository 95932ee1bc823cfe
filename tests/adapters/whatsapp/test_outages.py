"""WhatsApp webhook during a database or Redis outage (cut through a TCP proxy of the test's own):
503 + Retry-After so Meta sends the delivery again; once the database is back, the re-sent
delivery is stored and answered exactly once."""

from __future__ import annotations

import logging

from parley.core import store
from parley.testing_services import TcpProxy

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_delivery_refused_while_the_database_is_down_then_answered_once(
    serve, meta, graph, providers, pg_schema_url, caplog
):
    caplog.set_level(logging.WARNING)
    providers.llm.push("Hello Ann")
    async with TcpProxy(pg_schema_url) as database:
        async with serve({"database": {"url": database.url}}) as served:
            delivery = meta.text_delivery("wamid.OUT1", "are you there?", name="Ann")
            await database.cut()
            refused = await served.deliver(delivery)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert refused.json()["error"]["code"] == "unavailable"
            assert graph.texts() == []

            await database.restore()
            accepted = await served.deliver(delivery)  # Meta re-sends it
            assert accepted.status_code == 200
            again = await served.deliver(delivery)  # and, as it does, once more
            assert again.status_code == 200
            await served.idle()
            assert graph.texts() == ["Hi there!", "Hello Ann"]  # greeting, reply: once each
            user = await store.get_or_create_user("whatsapp", meta.ANN)
            conversation = await store.find_open_conversation(user.id, "whatsapp")
            messages = await store.list_messages(conversation.id)
            assert [m.content for m in messages if m.role == "user"] == ["are you there?"]
            assert await store.pending_messages("whatsapp") == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_delivery_refused_while_redis_is_down_then_answered_once(
    serve, meta, graph, providers, redis_prefix, caplog
):
    """Intake takes the conversation's Redis lock: with Redis away the delivery is refused
    whole (503, nothing stored) and answered once when Meta sends it again."""
    caplog.set_level(logging.WARNING)
    providers.llm.push("Hello Ann")
    async with TcpProxy(REDIS_URL) as redis:
        async with serve({"redis": {"url": redis.url}}) as served:
            delivery = meta.text_delivery("wamid.R1", "hello?", name="Ann")
            await redis.cut()
            refused = await served.deliver(delivery)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
            assert "redis" in refused.json()["error"]["message"]
            await redis.restore()
            assert (await served.deliver(delivery)).status_code == 200
            await served.idle()
            assert graph.texts() == ["Hi there!", "Hello Ann"]
            user = await store.get_or_create_user("whatsapp", meta.ANN)
            conversation = await store.find_open_conversation(user.id, "whatsapp")
            messages = await store.list_messages(conversation.id)
            assert [m.content for m in messages if m.role == "user"] == ["hello?"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
