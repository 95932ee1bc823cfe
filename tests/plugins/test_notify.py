"""The notify plugin against a real HTTP receiver on loopback (aiohttp)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import tomllib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from parley.core import store
from parley.core.config import SettingsError
from parley.core.events import TurnCompleted
from parley.core.inbound import Inbound
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.plugins.notify import NotifyPlugin, NotifySettings, sign, verify
from parley.testing import collect

SECRET = "whsec-test"


class Receiver:
    """Records each POST; answers with the queued statuses (then 200); may hold requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: deque[int] = deque()
        self.hold: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        return web.Response(status=self.statuses.popleft() if self.statuses else 200)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@asynccontextmanager
async def receiving() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield receiver, f"http://{host}:{port}/hook"
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        await runner.cleanup()


@asynccontextmanager
async def started(make_settings, notify: dict[str, Any]) -> AsyncIterator[Runtime]:
    settings = make_settings({"notify": {"secret": SECRET, "backoff": 0.01, **notify}})
    runtime = Runtime(settings, make_plugin_manager((), entry_points=False))
    await runtime.start(adapters=False)
    try:
        yield runtime
    finally:
        await runtime.stop()


def plugin(runtime: Runtime) -> NotifyPlugin:
    found = runtime.pm.get_plugin("notify")
    assert isinstance(found, NotifyPlugin)
    return found


async def _turn(runtime: Runtime, text: str = "hello") -> tuple[str, list[Any]]:
    user = await store.get_or_create_user("test", "notify")
    conversation = (await runtime.engine.open(user.id, "test")).conversation
    events = await collect(runtime.engine.turn(conversation.id, Inbound(text=text)))
    return conversation.id, events


async def test_signed_deliveries_of_both_events(make_settings):
    async with receiving() as (receiver, url), started(make_settings, {"urls": [url]}) as runtime:
        conversation_id, _ = await _turn(runtime, "hello there")
        await plugin(runtime).tasks.wait()
        await runtime.engine.end(conversation_id, "user_ended")
        await plugin(runtime).tasks.wait()

        turn, ended = receiver.bodies()
        user = await store.get_or_create_user("test", "notify")
        assert turn["event"] == "turn_completed"
        assert (turn["conversation_id"], turn["user_id"]) == (conversation_id, user.id)
        assert (turn["turn_count"], turn["reason"]) == (1, None)
        assert [(m["role"], m["content"]) for m in turn["messages"]] == [
            ("user", "hello there"),
            ("assistant", "You said: hello there."),
        ]
        assert ended["event"] == "conversation_ended"
        assert (ended["reason"], ended["turn_count"], ended["status"]) == ("user_ended", 1, "ended")

        for headers, body in receiver.requests:
            expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Parley-Signature"] == f"sha256={expected}"
            assert verify(SECRET, body, headers["X-Parley-Signature"])
            assert not verify("other-secret", body, headers["X-Parley-Signature"])
            assert headers["Content-Type"] == "application/json"
            assert headers["X-Parley-Event"] == json.loads(body)["event"]
        assert await store.list_failed_deliveries() == []


async def test_retries_with_backoff_then_delivers(make_settings):
    async with receiving() as (receiver, url), started(make_settings, {"urls": [url]}) as runtime:
        receiver.statuses.extend([500, 503, 429])
        await _turn(runtime)
        await plugin(runtime).tasks.wait()
        assert len(receiver.requests) == 4
        assert len({body for _, body in receiver.requests}) == 1  # the same signed body
        assert len({h["X-Parley-Delivery"] for h, _ in receiver.requests}) == 1
        assert await store.list_failed_deliveries() == []


async def test_deliveries_that_still_fail_are_kept(make_settings):
    settings = {"urls": [], "retries": 2, "timeout": 0.2, "events": ["turn_completed"]}
    async with receiving() as (receiver, url):
        async with receiving() as (_, closed_url):
            pass  # its port is closed now: connections are refused
        settings["urls"] = [url, closed_url]
        async with started(make_settings, settings) as runtime:
            receiver.statuses.extend([502, 502, 502])
            await _turn(runtime)
            await plugin(runtime).tasks.wait()

            assert len(receiver.requests) == 3  # 1 + 2 retries
            failed = {f.url: f for f in await store.list_failed_deliveries()}
            assert set(failed) == {url, closed_url}
            served = failed[url]
            assert (served.event, served.attempts, served.status_code) == ("turn_completed", 3, 502)
            assert served.error == "HTTP 502"
            assert served.payload["turn_count"] == 1
            refused = failed[closed_url]
            assert (refused.attempts, refused.status_code) == (3, None)
            assert refused.error.startswith("ConnectError")

            receiver.statuses.extend([404])  # a client error is not retried
            await _turn(runtime, "again")
            await plugin(runtime).tasks.wait()
            assert len(receiver.requests) == 4
            latest = next(f for f in await store.list_failed_deliveries() if f.url == url)
            assert (latest.status_code, latest.attempts) == (404, 1)


async def test_a_slow_receiver_never_holds_up_the_turn(make_settings):
    async with receiving() as (receiver, url), started(make_settings, {"urls": [url]}) as runtime:
        receiver.hold = asyncio.Event()
        _, events = await asyncio.wait_for(_turn(runtime), 10)
        assert isinstance(events[-1], TurnCompleted)
        # The turn is over while the receiver still holds the request open.
        await asyncio.wait_for(receiver.arrived.wait(), 10)
        assert len(plugin(runtime).tasks) == 1 and not receiver.hold.is_set()

        receiver.hold.set()
        await plugin(runtime).tasks.wait()
        assert await store.list_failed_deliveries() == []


async def test_a_timed_out_attempt_is_a_failure(make_settings):
    notify = {"retries": 0, "timeout": 0.1, "events": ["turn_completed"]}
    async with receiving() as (receiver, url):
        receiver.hold = asyncio.Event()
        async with started(make_settings, {**notify, "urls": [url]}) as runtime:
            await _turn(runtime)
            await plugin(runtime).tasks.wait()
            (failed,) = await store.list_failed_deliveries()
            assert failed.attempts == 1 and failed.error.startswith("ReadTimeout")


async def test_off_without_urls(make_settings):
    async with started(make_settings, {}) as runtime:
        await _turn(runtime)
        assert plugin(runtime).settings is None and len(plugin(runtime).tasks) == 0


async def test_bad_settings_stop_start_up(make_settings):
    with pytest.raises(
        SettingsError, match=r"^notify\.urls\[0\]: Expected `str` matching regex '\^https\?://'"
    ):
        async with started(make_settings, {"urls": ["ftp://x"]}):
            pass


def test_sign_and_verify():
    body = b'{"event":"turn_completed"}'
    signature = sign("k", body)
    assert signature == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert verify("k", body, signature)
    assert not verify("k", body + b" ", signature)
    assert not verify("k", body, None)


def test_docs_describe_every_notify_setting():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    section = docs.split("### `[notify]`", 1)[1].split("##", 1)[0]
    for field in fields(NotifySettings):
        assert f"| `{field.name}` |" in section, field.name


def test_shipped_settings_spell_out_every_notify_default():
    shipped = Path(__file__).resolve().parents[2] / "settings" / "settings.toml"
    data = tomllib.loads(shipped.read_text())["notify"]
    default = NotifySettings()
    for field in fields(NotifySettings):
        if field.name == "model":
            assert field.name not in data  # shown commented out
            continue
        assert data[field.name] == getattr(default, field.name), field.name
