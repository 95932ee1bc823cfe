"""A local aiohttp server playing the Telegram Bot API, and a harness running Parley against it.

aiogram talks to the fake through ``telegram.api_base`` exactly as it talks to Telegram. The
providers are fakes (ScriptedLLM, FakeSTT, ToneTTS) registered by a test plugin.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from parley import hookimpl
from parley.core.config import Settings
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.testing import FakeSTT, ScriptedLLM, ToneTTS

TOKEN = "123456:TEST-token_not-real"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Parley", "username": "parley_test_bot"}
CHAT = 4242
USER = {"id": CHAT, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace"}


@dataclass
class Call:
    """One request the fake Bot API received."""

    method: str
    params: dict[str, str]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = 0.0
    status: int = 200

    def upload(self, field: str) -> bytes:
        """The file sent for ``field`` (aiogram names it ``attach://<id>``)."""
        return self.files[self.params[field].removeprefix("attach://")]


class FakeBotAPI:
    """Records requests, serves queued updates and files, injects failures."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []
        self.files: dict[str, tuple[str, bytes | None]] = {}
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.base = ""
        self._arrived = asyncio.Event()
        self._changed = asyncio.Event()
        self._ids = itertools.count(1000)
        self._runner: web.AppRunner | None = None
        self.polls = 0
        """getUpdates calls answered."""
        self.conflicts = 0
        """getUpdates calls refused with 409 because another one was in progress (as Telegram does)."""
        self._polling = False

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- test controls ---------------------------------------------------------------------

    def push(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates."""
        self.updates.append(update)
        self._arrived.set()

    def add_file(self, file_id: str, data: bytes | None, path: str | None = None) -> None:
        """A file getFile knows; ``data=None`` makes its download answer 404."""
        self.files[file_id] = (path or f"files/{file_id}", data)

    def fail(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and ``retry_after``."""
        body = {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        }
        self.failures.setdefault(method, []).extend([(429, body)] * times)

    def sent(self, method: str, *, ok_only: bool = True) -> list[Call]:
        """Calls of ``method`` so far (answered 200 unless ``ok_only`` is False)."""
        return [c for c in self.calls if c.method == method and (c.status == 200 or not ok_only)]

    async def wait_for(self, check: Callable[[], Any], within: float = 5.0) -> Any:
        """Until ``check()`` is truthy (re-checked on every request); returns its value."""
        deadline = time.monotonic() + within
        while not (result := check()):
            left = deadline - time.monotonic()
            if left <= 0:
                methods = [c.method for c in self.calls]
                raise AssertionError(f"timed out; calls so far: {methods}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))
            except TimeoutError:
                pass
        return result

    async def wait_sent(self, method: str, count: int = 1, within: float = 5.0) -> list[Call]:
        """Until ``count`` successful calls of ``method``; returns them all."""
        return await self.wait_for(
            lambda: (calls := self.sent(method)) and len(calls) >= count and calls, within
        )

    # -- the API ---------------------------------------------------------------------------

    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        form = await request.post()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        files = {k: v.file.read() for k, v in form.items() if isinstance(v, web.FileField)}
        if method == "getUpdates":
            return await self._get_updates(params)
        call = Call(method, params, files, time.monotonic())
        self.calls.append(call)
        self._changed.set()
        if self.failures.get(method):
            call.status, body = self.failures[method].pop(0)
            return web.json_response(body, status=call.status)
        result = self._result(method, params)
        if result is None:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request"}, status=400
            )
        return web.json_response({"ok": True, "result": result})

    async def _get_updates(self, params: dict[str, str]) -> web.Response:
        if self._polling:  # the Bot API serves one getUpdates per bot at a time
            self.conflicts += 1
            body = {
                "ok": False,
                "error_code": 409,
                "description": "Conflict: terminated by other getUpdates request",
            }
            return web.json_response(body, status=409)
        self._polling = True
        try:
            return await self._serve_updates(params)
        finally:
            self._polling = False
            self.polls += 1

    async def _serve_updates(self, params: dict[str, str]) -> web.Response:
        offset = int(params.get("offset") or 0)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            self._arrived.clear()
            wait = min(float(params.get("timeout") or 0), 0.3)
            try:
                await asyncio.wait_for(self._arrived.wait(), wait)
            except TimeoutError:
                pass
        return web.json_response({"ok": True, "result": self.updates[:100]})

    def _message(self, params: dict[str, str], **extra: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private"},
            **extra,
        }

    def _result(self, method: str, params: dict[str, str]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method in ("setWebhook", "deleteWebhook", "sendChatAction"):
            return True
        if method == "getFile":
            if params["file_id"] not in self.files:
                return None
            path, data = self.files[params["file_id"]]
            size = len(data) if data else 1
            fid = params["file_id"]
            return {
                "file_id": fid,
                "file_unique_id": f"u-{fid}",
                "file_size": size,
                "file_path": path,
            }
        if method == "sendMessage":
            return self._message(params, text=params["text"])
        if method == "editMessageText":
            message = self._message(params, text=params["text"])
            return {**message, "message_id": int(params["message_id"])}
        if method == "sendVoice":
            voice = {"file_id": "v", "file_unique_id": "v", "duration": int(params["duration"])}
            return self._message(params, voice=voice, caption=params.get("caption"))
        return None

    async def _file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        for known, data in self.files.values():
            if known == path and data is not None and request.match_info["token"] == TOKEN:
                return web.Response(body=data)
        return web.Response(status=404, text="Not Found")


class FakeProviders:
    """Registers the fake LLM, STT and TTS providers."""

    def __init__(self) -> None:
        self.llm = ScriptedLLM()
        self.stt = FakeSTT("hello from a voice note")
        self.tts = ToneTTS()

    @hookimpl
    def register_llm_providers(self, register: Any) -> None:
        register("scripted", lambda settings: self.llm)

    @hookimpl
    def register_stt_providers(self, register: Any) -> None:
        register("fake", lambda settings: self.stt)

    @hookimpl
    def register_tts_providers(self, register: Any) -> None:
        register("fake", lambda settings: self.tts)


class Harness:
    """Settings, runtimes and updates for one test; the database file outlives restarts."""

    def __init__(self, api: FakeBotAPI, make_settings: Callable[..., Settings]) -> None:
        self.api = api
        self.make_settings = make_settings
        self.providers = FakeProviders()
        self.llm, self.stt, self.tts = self.providers.llm, self.providers.stt, self.providers.tts
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)

    def settings(self, **telegram: Any) -> Settings:
        section = {"enabled": True, "token": TOKEN, "api_base": self.api.base, **telegram}
        return self.make_settings(
            {
                "llm": {"provider": "scripted"},
                "stt": {"provider": "fake"},
                "tts": {"provider": "fake"},
                "telegram": section,
                "languages": {"de": {"prompts": {"start": "Hallo!", "end": "Tschüss!"}}},
            }
        )

    def runtime(self, **telegram: Any) -> Runtime:
        pm = make_plugin_manager((), entry_points=False, extra=[("fakes", self.providers)])
        return Runtime(self.settings(**telegram), pm)

    @asynccontextmanager
    async def running(self, **telegram: Any) -> AsyncIterator[Runtime]:
        runtime = self.runtime(**telegram)
        await runtime.start()
        try:
            yield runtime
        finally:
            await runtime.stop()

    def adapter(self, runtime: Runtime) -> Any:
        return runtime.adapters["telegram"]

    # -- updates ---------------------------------------------------------------------------

    def message(self, *, chat: int = CHAT, message_id: int | None = None, **content: Any) -> dict:
        """An update carrying a private message with ``content`` (text=..., voice=...)."""
        sender = {**USER, "id": chat}
        return {
            "update_id": next(self._update_ids),
            "message": {
                "message_id": message_id or next(self._message_ids),
                "from": sender,
                "chat": {"id": chat, "type": "private", "first_name": sender["first_name"]},
                "date": int(time.time()),
                **content,
            },
        }

    def text(self, text: str, **kwargs: Any) -> dict:
        return self.message(text=text, **kwargs)

    def voice(self, file_id: str, **kwargs: Any) -> dict:
        voice = {"file_id": file_id, "file_unique_id": f"u-{file_id}", "duration": 1}
        return self.message(voice={**voice, "mime_type": "audio/ogg"}, **kwargs)

    def push(self, update: dict) -> dict:
        self.api.push(update)
        return update


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = FakeBotAPI()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def tg(api: FakeBotAPI, make_settings: Callable[..., Settings]) -> Harness:
    return Harness(api, make_settings)
