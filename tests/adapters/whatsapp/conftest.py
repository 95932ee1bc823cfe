"""WhatsApp fixtures: a fake Graph API on loopback, Meta-shaped signed deliveries, a real server.

The fake Graph API (aiohttp) answers messages, read receipts, media upload, media info and media
download (with a bearer check), records every request, and fails or stalls on demand. Parley
runs for real under uvicorn (``parley.testing.running_server``) with fake providers registered by
a test plugin.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from parley import hookimpl
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.server import create_app
from parley.testing import FakeSTT, ScriptedLLM, ToneTTS, running_server

SECRET = "test-app-secret"
TOKEN = "test-access-token"
VERIFY = "test-verify-token"
PHONE_ID = "1098765432"
WEBHOOK = "/webhooks/whatsapp"
ANN = "15550001111"
BOB = "15550002222"


# -- the fake Graph API --------------------------------------------------------------------


@dataclass
class Call:
    """One request the fake Graph API received."""

    kind: str  # text | audio | read | upload | info | download
    method: str
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    form: dict[str, Any] = field(default_factory=dict)
    file: bytes | None = None
    file_type: str | None = None


@dataclass
class Failure:
    kind: str
    status: int
    code: int
    times: int | None  # None: for ever


class FakeGraph:
    """Plays the Graph API: ``{base}/v21.0/...`` plus ``{base}/download/{media_id}``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.failures: list[Failure] = []
        self.stalls: dict[str, asyncio.Event] = {}
        self.seen: dict[str, asyncio.Event] = {}
        self.base = ""
        self._ids = itertools.count(1)

    @property
    def graph_base(self) -> str:
        return f"{self.base}/v21.0"

    def fail(self, kind: str, *, status: int = 500, code: int = 131000, times: int | None = 1):
        """Answer the next ``times`` requests of ``kind`` with a Graph error."""
        self.failures.append(Failure(kind, status, code, times))

    def stall(self, kind: str) -> asyncio.Event:
        """Hold requests of ``kind`` until the returned event is set."""
        self.stalls[kind] = asyncio.Event()
        return self.stalls[kind]

    def arrived(self, kind: str) -> asyncio.Event:
        """An event set when a request of ``kind`` arrives."""
        return self.seen.setdefault(kind, asyncio.Event())

    def of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]

    def texts(self, to: str | None = None) -> list[str]:
        return [
            c.json["text"]["body"]
            for c in self.of("text")
            if c.json and (to is None or c.json["to"] == to)
        ]

    def _failure(self, kind: str) -> web.Response | None:
        for failure in self.failures:
            if failure.kind == kind and (failure.times is None or failure.times > 0):
                if failure.times is not None:
                    failure.times -= 1
                body = {
                    "error": {
                        "message": f"(#{failure.code}) simulated failure",
                        "type": "OAuthException",
                        "code": failure.code,
                        "fbtrace_id": "Atest",
                    }
                }
                return web.json_response(body, status=failure.status)
        return None

    async def _record(self, call: Call) -> web.Response | None:
        self.calls.append(call)
        self.arrived(call.kind).set()
        if call.kind in self.stalls:
            await self.stalls[call.kind].wait()
        if call.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": {"message": "bad token", "code": 190}}, status=401)
        return self._failure(call.kind)

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        kind = "read" if body.get("status") == "read" else str(body.get("type"))
        call = Call(kind, request.method, request.path, dict(request.headers), json=body)
        if (error := await self._record(call)) is not None:
            return error
        if request.match_info["phone"] != PHONE_ID:
            return web.json_response(
                {"error": {"message": "unknown phone", "code": 100}}, status=400
            )
        if kind == "read":
            return web.json_response({"success": True})
        wamid = f"wamid.out.{next(self._ids)}"
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid}],
            }
        )

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        data = upload.file.read() if isinstance(upload, web.FileField) else None
        call = Call(
            "upload",
            request.method,
            request.path,
            dict(request.headers),
            form={k: v for k, v in form.items() if isinstance(v, str)},
            file=data,
            file_type=upload.content_type if isinstance(upload, web.FileField) else None,
        )
        if (error := await self._record(call)) is not None:
            return error
        media_id = f"media-out-{next(self._ids)}"
        self.media[media_id] = (data or b"", str(form.get("type")))
        return web.json_response({"id": media_id})

    async def info(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        call = Call("info", request.method, request.path, dict(request.headers))
        if (error := await self._record(call)) is not None:
            return error
        if media_id not in self.media:
            return web.json_response(
                {"error": {"message": "no such media", "code": 100}}, status=404
            )
        data, mime = self.media[media_id]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.base}/download/{media_id}?ext=1&hash=abc",
                "mime_type": mime,
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": len(data),
                "id": media_id,
            }
        )

    async def download(self, request: web.Request) -> web.Response:
        call = Call("download", request.method, request.path, dict(request.headers))
        if (error := await self._record(call)) is not None:
            return error
        data, mime = self.media[request.match_info["media_id"]]
        return web.Response(body=data, content_type=mime.split(";")[0])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v21.0/{phone}/messages", self.messages)
        app.router.add_post("/v21.0/{phone}/media", self.upload)
        app.router.add_get("/v21.0/{media_id}", self.info)
        app.router.add_get("/download/{media_id}", self.download)
        return app


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    """The fake Graph API, serving on a free loopback port."""
    fake = FakeGraph()
    runner = web.AppRunner(fake.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        for event in fake.stalls.values():
            event.set()
        await runner.cleanup()


# -- Meta-shaped deliveries ----------------------------------------------------------------


def sign(body: bytes, secret: str = SECRET) -> str:
    """The ``X-Hub-Signature-256`` header Meta sends."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Meta:
    """Builds deliveries shaped like Meta's (a fixture: tests cannot import conftest)."""

    ANN, BOB, SECRET, TOKEN, VERIFY = ANN, BOB, SECRET, TOKEN, VERIFY
    PHONE_ID, WEBHOOK = PHONE_ID, WEBHOOK
    sign = staticmethod(sign)

    @staticmethod
    def value(messages=(), contacts=(), statuses=()) -> dict[str, Any]:
        """One change's ``value``, addressed to our phone number."""
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550009999", "phone_number_id": PHONE_ID},
        }
        for key, items in (("contacts", contacts), ("messages", messages), ("statuses", statuses)):
            if items:
                value[key] = list(items)
        return value

    @staticmethod
    def envelope(*values: dict[str, Any]) -> dict[str, Any]:
        """``{"object": "whatsapp_business_account", "entry": [...]}``, one change per value."""
        changes = [{"value": v, "field": "messages"} for v in values]
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": changes}],
        }

    @staticmethod
    def contact(wa_id: str, name: str) -> dict[str, Any]:
        return {"profile": {"name": name}, "wa_id": wa_id}

    @staticmethod
    def text_message(wamid: str, body: str, sender: str = ANN) -> dict[str, Any]:
        return {
            "from": sender,
            "id": wamid,
            "timestamp": "1718000000",
            "type": "text",
            "text": {"body": body},
        }

    @staticmethod
    def audio_message(wamid: str, media_id: str, *, voice: bool = True, sender: str = ANN):
        audio = {"mime_type": "audio/ogg; codecs=opus", "sha256": "c2hh", "id": media_id}
        return {
            "from": sender,
            "id": wamid,
            "timestamp": "1718000001",
            "type": "audio",
            "audio": {**audio, "voice": voice},
        }

    def text_delivery(self, wamid: str, body: str, sender: str = ANN, name: str = "Ann"):
        message = self.text_message(wamid, body, sender)
        return self.envelope(self.value([message], [self.contact(sender, name)]))

    def status_delivery(self, wamid: str, status: str = "delivered") -> dict[str, Any]:
        update = {
            "id": wamid,
            "status": status,
            "timestamp": "1718000002",
            "recipient_id": ANN,
            "conversation": {"id": "c1", "origin": {"type": "service"}},
            "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
        }
        return self.envelope(self.value(statuses=[update]))


@pytest.fixture
def meta() -> Meta:
    return Meta()


# -- Parley, served for real ---------------------------------------------------------------


class Providers:
    """A test plugin: the scripted LLM, the fake STT and the tone TTS."""

    def __init__(self) -> None:
        self.llm = ScriptedLLM()
        self.stt = FakeSTT("what time is it")
        self.tts = ToneTTS()

    @hookimpl
    def register_llm_providers(self, register: Callable[..., None]) -> None:
        register("scripted", lambda settings: self.llm)

    @hookimpl
    def register_stt_providers(self, register: Callable[..., None]) -> None:
        register("fake", lambda settings: self.stt)

    @hookimpl
    def register_tts_providers(self, register: Callable[..., None]) -> None:
        register("tone", lambda settings: self.tts)


@pytest.fixture
def providers() -> Providers:
    return Providers()


@dataclass
class Served:
    """A running Parley: its URL, runtime and an HTTP client."""

    url: str
    runtime: Runtime
    http: httpx.AsyncClient

    @property
    def adapter(self) -> Any:
        return self.runtime.adapters["whatsapp"]

    async def deliver(self, payload: dict[str, Any] | bytes, *, signature: str | None = "sign"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            headers["X-Hub-Signature-256"] = sign(body)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return await self.http.post(f"{self.url}{WEBHOOK}", content=body, headers=headers)

    async def idle(self) -> None:
        """Wait until every queued turn is answered."""
        await asyncio.wait_for(self.adapter.runner.idle(), timeout=10)


@pytest.fixture
def serve(make_settings, graph: FakeGraph, providers: Providers):
    """``async with serve(sections, **whatsapp) as served``: Parley with the WhatsApp adapter."""

    @asynccontextmanager
    async def run(sections: dict[str, Any] | None = None, **whatsapp: Any) -> AsyncIterator[Served]:
        """``sections`` are merged into the test settings; ``whatsapp`` keys into ``[whatsapp]``."""
        adapter = {
            "enabled": True,
            "verify_token": VERIFY,
            "app_secret": SECRET,
            "access_token": TOKEN,
            "phone_number_id": PHONE_ID,
            "graph_base": graph.graph_base,
            "retry_backoff": 0.01,
            "drain_timeout": 5,
            **whatsapp,
        }
        extra = {
            "llm": {"provider": "scripted"},
            "stt": {"provider": "fake"},
            "tts": {"provider": "tone"},
            **(sections or {}),
            "whatsapp": adapter,
        }
        settings = make_settings(extra)
        pm = make_plugin_manager((), entry_points=False, extra=[("test-providers", providers)])
        runtime = Runtime(settings, pm)
        app = create_app(settings, runtime)
        async with running_server(app) as url, httpx.AsyncClient(timeout=10, verify=False) as http:
            yield Served(url, runtime, http)

    return run


# -- logs ----------------------------------------------------------------------------------


class Logs(logging.Handler):
    """Records of the WhatsApp adapter's loggers (Litestar's logging set-up bypasses caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)

    def matching(self, word: str) -> list[str]:
        return [r.getMessage() for r in self.records if word in r.getMessage()]


@pytest.fixture
def logs() -> Iterator[Logs]:
    """What ``parley.adapters.whatsapp`` logged during the test."""
    handler = Logs()
    logger = logging.getLogger("parley.adapters.whatsapp")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
