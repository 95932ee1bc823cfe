"""Telegram webhook during a database outage (cut through a TCP proxy of the test's own): 503 +
Retry-After so Telegram sends the update again; once the database is back it is answered once."""

from __future__ import annotations

import httpx

from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.server import create_app
from parley.testing import running_server
from parley.testing_services import TcpProxy

SECRET = "s3cret_Token-1"
HOOK = "https://bot.example.test/webhooks/telegram"


async def test_update_refused_while_the_database_is_down_then_answered_once(tg, api, pg_schema_url):
    async with TcpProxy(pg_schema_url) as database:
        settings = tg.settings(mode="webhook", webhook_url=HOOK, webhook_secret=SECRET)
        settings.database.url = database.url
        pm = make_plugin_manager((), entry_points=False, extra=[("fakes", tg.providers)])
        runtime = Runtime(settings, pm)
        tg.llm.push("Back again")
        async with running_server(create_app(settings, runtime)) as base:
            await api.wait_sent("setWebhook")
            url = f"{base}/webhooks/telegram"
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            update = tg.text("anyone there?")
            async with httpx.AsyncClient(timeout=10) as client:
                await database.cut()
                refused = await client.post(url, json=update, headers=headers)
                assert refused.status_code == 503
                assert refused.headers["retry-after"] == "5"
                assert refused.json()["error"]["code"] == "unavailable"

                await database.restore()
                accepted = await client.post(url, json=update, headers=headers)  # re-sent
                assert accepted.status_code == 200
                _greeting, reply = await api.wait_sent("sendMessage", 2)
            assert reply.params["text"] == "Back again"
    assert [r.messages[-1]["content"] for r in tg.llm.requests] == ["anyone there?"]
