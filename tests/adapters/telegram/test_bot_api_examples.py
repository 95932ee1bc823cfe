"""Telegram against the Bot API's published examples (tests/fixtures/telegram/bot_api_examples.json):
updates missing required fields, audio files, forum topics, caps on the webhook body and on text,
lone surrogates."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.adapters.telegram.replies import APOLOGIES
from parley.core import store
from parley.core.text import REPLACEMENT
from parley.server import create_app
from parley.testing import running_server

EXAMPLES = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "telegram" / "bot_api_examples.json").read_text()
)
SECRET = "s3cret_Token-1"
HOOK = "https://bot.example.test/webhooks/telegram"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(EXAMPLES[name])


def as_telegram_sends(update: dict[str, Any]) -> dict[str, Any]:
    """The example with the fields real Telegram always sends (``is_bot``, ``chat.type``,
    ``file_unique_id``)."""
    message = update["message"]
    message["from"]["is_bot"] = False
    message["chat"].setdefault("type", "private")
    for kind in ("audio", "voice"):
        if kind in message:
            message[kind].setdefault("file_unique_id", f"u-{message[kind]['file_id']}")
    return update


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logs() -> Iterator[Records]:
    """Everything ``parley`` and ``aiogram`` logged (Litestar's set-up bypasses caplog)."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("parley", "aiogram")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


async def test_missing_required_fields_warn_by_name_without_personal_data(tg, api, logs):
    runtime = tg.runtime(mode="webhook", webhook_url=HOOK, webhook_secret=SECRET)
    async with running_server(create_app(runtime.settings, runtime)) as base:
        await api.wait_sent("setWebhook")
        async with httpx.AsyncClient(timeout=5) as client:
            url = f"{base}/webhooks/telegram"
            for name in ("message_with_text", "message_with_audio"):
                response = await client.post(url, json=example(name), headers=HEADERS)
                assert response.status_code == 200
        await api.wait_for(lambda: [r for r in logs.records if "dropped" in r.getMessage()])
    dropped = [r for r in logs.records if "Telegram update dropped" in r.getMessage()]
    assert dropped and all(r.levelno == logging.WARNING for r in dropped)
    text = dropped[0].getMessage()
    assert "missing required fields" in text
    assert "message.from.is_bot" in text and "message.chat.type" in text
    everything = "\n".join(r.getMessage() for r in logs.records if r.levelno >= logging.INFO)
    assert "Test Lastname" not in everything and "/start" not in everything
    assert not [r for r in logs.records if r.levelno >= logging.ERROR]
    assert api.sent("sendMessage") == []


async def test_an_audio_file_is_transcribed(tg, api):
    update = as_telegram_sends(example("message_with_audio"))
    file_id = update["message"]["audio"]["file_id"]
    api.add_file(file_id, b"ID3 fake mp3 bytes", path="music/file_1.mp3")
    update["message"]["chat"]["id"] = update["message"]["from"]["id"]
    tg.llm.push("A fine tune.")
    async with tg.running():
        tg.push(update)
        await api.wait_for(lambda: len(api.sent("sendMessage")) >= 2)
    assert tg.stt.calls == [(b"ID3 fake mp3 bytes", "audio/mpeg")]
    assert tg.llm.requests[0].messages[-1]["content"] == "hello from a voice note"
    assert [c.params["text"] for c in api.sent("sendMessage")][-1] == "A fine tune."


async def test_a_forum_topic_is_answered_in_its_topic(tg, api):
    tg.llm.push("Answered in the topic.")
    async with tg.running():
        tg.push(example("forum_topic_message"))
        sent = await api.wait_sent("sendMessage", 2)
    assert [c.params["text"] for c in sent] == ["Hi there!", "Answered in the topic."]
    assert all(c.params.get("message_thread_id") == "77" for c in sent)
    assert all(c.params.get("message_thread_id") == "77" for c in api.sent("sendChatAction"))
    # An ordinary private message carries no topic.
    tg.llm.push("Plain.")
    async with tg.running():
        tg.push(tg.text("no topic here"))
        await api.wait_for(lambda: len(api.sent("sendMessage")) >= 3)
    assert "message_thread_id" not in api.sent("sendMessage")[-1].params


async def test_webhook_body_and_text_are_capped(tg, api):
    runtime = tg.runtime(
        mode="webhook",
        webhook_url=HOOK,
        webhook_secret=SECRET,
        max_body_bytes=4096,
        max_text_chars=50,
    )
    async with running_server(create_app(runtime.settings, runtime)) as base:
        await api.wait_sent("setWebhook")
        async with httpx.AsyncClient(timeout=5) as client:
            url = f"{base}/webhooks/telegram"
            huge = tg.text("y" * 10_000)
            response = await client.post(url, json=huge, headers=HEADERS)
            assert response.status_code == 413
            assert response.json()["error"]["code"] == "payload_too_large"
            deep = b"[" * 1000 + b"]" * 1000
            nested = await client.post(url, content=deep, headers=HEADERS)
            assert nested.status_code == 400
            assert nested.json()["error"]["code"] == "invalid_json"
            long = tg.text("z" * 60)
            assert (await client.post(url, json=long, headers=HEADERS)).status_code == 200
            [apology] = await api.wait_sent("sendMessage")
            user = await _stored_user()
    assert apology.params["text"] == APOLOGIES["message_too_long"]
    assert tg.llm.requests == []
    assert (user.content, user.status) == ("z" * 50, "failed")
    assert user.metadata["error"]["code"] == "message_too_long"


async def test_a_lone_surrogate_is_replaced(tg, api):
    tg.llm.push("Got it.")
    update = tg.text("cut emoji \ud83d\x00")  # and a NUL, which PostgreSQL cannot store
    update["message"]["from"]["first_name"] = "Ada \udc00"
    async with tg.running():
        tg.push(update)
        await api.wait_for(lambda: len(api.sent("sendMessage")) >= 2)
        stored = await _stored_user()
    assert stored.content == f"cut emoji {REPLACEMENT}{REPLACEMENT}"
    assert tg.llm.requests[0].messages[-1]["content"] == f"cut emoji {REPLACEMENT}{REPLACEMENT}"


async def _stored_user() -> Any:
    from .conftest import CHAT

    user = await store.get_or_create_user("telegram", str(CHAT))
    conversation = await store.find_open_conversation(user.id, "telegram")
    messages = await store.list_messages(conversation.id)
    return next(m for m in messages if m.role == "user")


async def test_greetings_can_be_turned_off_for_telegram(tg, api):
    tg.llm.push("Straight to the answer.")
    async with tg.running(greeting=False):
        tg.push(tg.text("what are your opening hours?"))
        await api.wait_sent("sendMessage")
        tg.push(tg.text("/new"))
        await api.wait_for(lambda: len(api.sent("sendMessage")) >= 2)
    texts = [c.params["text"] for c in api.sent("sendMessage")]
    assert texts == ["Straight to the answer.", "New conversation started."]
