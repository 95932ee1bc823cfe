"""``parley telegram``: polling alone, whatever telegram.mode and telegram.enabled say."""

from __future__ import annotations

import asyncio
from contextlib import suppress

from parley.adapters.telegram.settings import load_telegram_settings
from parley.cli import _telegram
from parley.core import store


async def test_parley_telegram_polls_alone(tg, api):
    import parley.adapters.telegram.adapter  # noqa: F401 - import (seconds) before the clock runs

    runtime = tg.runtime(enabled=False, mode="webhook")
    telegram = load_telegram_settings(runtime.settings, enabled=True, mode="polling")
    tg.llm.push("polled")
    task = asyncio.create_task(_telegram(runtime, telegram))
    tg.push(tg.text("hi"))
    assert (await api.wait_sent("sendMessage", 2))[-1].params["text"] == "polled"
    assert "telegram" not in runtime.adapters  # the command's own adapter did the work
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    assert not runtime.started
    assert api.sent("setWebhook") == []
    with suppress(RuntimeError):
        await store.ping()
        raise AssertionError("the database should be closed")


async def test_parley_telegram_stops_on_a_refused_token(tg, api, caplog):
    runtime = tg.runtime(token="999:refused-token")
    telegram = load_telegram_settings(runtime.settings, enabled=True, mode="polling")
    failure = await asyncio.wait_for(_telegram(runtime, telegram), 10)
    assert failure == "the Bot API refused telegram.token (401 Unauthorized)"
    assert "refused telegram.token" in caplog.text and "999:refused-token" not in caplog.text
