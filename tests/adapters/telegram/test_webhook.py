"""Webhook mode through a real server: setWebhook at start-up, the secret, 200 at once."""

from __future__ import annotations

import asyncio

import httpx

from parley.server import create_app
from parley.testing import Step, running_server

SECRET = "s3cret_Token-1"
HOOK = "https://bot.example.test/webhooks/telegram"


async def test_webhook_secret_accepted_and_refused(tg, api):
    runtime = tg.runtime(mode="webhook", webhook_url=HOOK, webhook_secret=SECRET)
    tg.llm.push(Step(["Answered ", "from the webhook"]))
    tg.llm.gate = asyncio.Event()  # holds the reply until the test has its 200
    async with running_server(create_app(runtime.settings, runtime)) as base:
        [registered] = await api.wait_sent("setWebhook")
        assert registered.params["url"] == HOOK
        assert registered.params["secret_token"] == SECRET
        assert api.sent("deleteWebhook") == [] and api.sent("getMe") == []
        url = f"{base}/webhooks/telegram"
        async with httpx.AsyncClient(timeout=5) as client:
            refused = tg.text("refused update")
            missing = await client.post(url, json=refused)
            wrong = await client.post(
                url, json=refused, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
            )
            assert (missing.status_code, wrong.status_code) == (403, 403)
            assert missing.json()["error"]["code"] == "forbidden"

            update = tg.text("hello hook")
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            accepted = await client.post(url, json=update, headers=headers)
            assert accepted.status_code == 200  # at once: the reply does not exist yet
            again = await client.post(url, json=update, headers=headers)  # Telegram re-sends
            assert again.status_code == 200
            await api.wait_for(lambda: tg.llm.requests)
            tg.llm.gate.set()
            greeting, reply = await api.wait_sent("sendMessage", 2)
            assert greeting.params["text"] == "Hi there!"
            assert reply.params["text"] == "Answered from the webhook"
            bad = await client.post(url, content=b"not json", headers=headers)
            assert bad.status_code == 400
            # One more message of the chat: answered after the re-sent one (a chat's updates
            # are handled in order), so once its reply is out the re-sent one was handled too.
            tg.llm.push("And the last one")
            last = await client.post(url, json=tg.text("one more"), headers=headers)
            assert last.status_code == 200
            *_, final = await api.wait_sent("sendMessage", 3)
            assert final.params["text"] == "And the last one"
    asked = [r.messages[-1]["content"] for r in tg.llm.requests]
    assert asked == ["hello hook", "one more"]  # refused: never; re-sent: answered once
    assert len(api.sent("sendMessage")) == 3


async def test_polling_mode_mounts_no_webhook_route(tg, api):
    runtime = tg.runtime()
    async with running_server(create_app(runtime.settings, runtime)) as base:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.post(f"{base}/webhooks/telegram", json={})
        assert response.status_code in (404, 405)
        await api.wait_sent("getMe")
