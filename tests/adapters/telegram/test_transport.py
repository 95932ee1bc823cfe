"""429 flood control through the one retry policy, against the fake Bot API."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiogram.exceptions import TelegramRetryAfter

from parley.adapters.telegram.settings import TelegramSettings
from parley.adapters.telegram.transport import make_bot

from .conftest import CHAT, TOKEN


@pytest.fixture
async def bot(api):
    bot = make_bot(TelegramSettings(token=TOKEN, api_base=api.base))
    try:
        yield bot
    finally:
        await bot.session.close()


async def test_429_waits_the_server_given_delay_and_logs_the_retry(bot, api, caplog):
    caplog.set_level(logging.WARNING, logger="parley.adapters.telegram")
    api.fail("sendMessage", retry_after=1)
    sent = await bot.send_message(CHAT, "hello")
    assert sent.text == "hello"
    first, second = api.sent("sendMessage", ok_only=False)
    assert (first.status, second.status) == (429, 200)
    # The server's delay, not a backoff of our own on top (that would double it at least).
    assert 1.0 <= second.at - first.at < 2.0
    assert [r.getMessage() for r in caplog.records if r.name == "parley.adapters.telegram"] == [
        "Bot API SendMessage: flood control (429), retrying in 1 s; retry 1/2"
    ]


async def test_429_gives_up_after_two_retries(bot, api):
    api.fail("sendMessage", retry_after=1, times=5)  # aiogram reads 0 as no 429
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(CHAT, "hello")
    assert [c.status for c in api.sent("sendMessage", ok_only=False)] == [429] * 3


async def test_a_delay_over_max_wait_is_raised_at_once(bot, api):
    api.fail("sendMessage", retry_after=3600)
    with pytest.raises(TelegramRetryAfter):
        async with asyncio.timeout(5):  # a retry would wait an hour
            await bot.send_message(CHAT, "hello")
    assert len(api.sent("sendMessage", ok_only=False)) == 1
