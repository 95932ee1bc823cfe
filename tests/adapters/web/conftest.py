"""A real Parley server on loopback (uvicorn) with a scripted LLM, plus HTTP and WebSocket helpers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect

from parley import hookimpl
from parley.core.config import Settings
from parley.core.plugins import make_plugin_manager
from parley.core.providers import LLMChunk, LLMRequest, Usage
from parley.core.runtime import Runtime
from parley.server import create_app
from parley.testing import ScriptedLLM, running_server

SECRET = "a-test-secret-of-at-least-32-bytes-for-hs256"
DEVICE = "device-a"
OTHER = "device-b"

WEB_DEFAULTS: dict[str, Any] = {
    "llm": {"provider": "scripted"},
    "web": {"rate_limit": 0},
}


def token(sub: str = "alice", *, secret: str = SECRET, ttl: float = 300) -> str:
    """An HS256 token for ``sub`` expiring in ``ttl`` seconds (negative: already expired)."""
    return jwt.encode({"sub": sub, "exp": int(time.time() + ttl)}, secret, algorithm="HS256")


async def recv(socket: ClientConnection, wait: float = 5) -> dict[str, Any]:
    """The next frame, decoded."""
    raw = await asyncio.wait_for(socket.recv(), wait)
    assert isinstance(raw, str), raw
    return json.loads(raw)


async def recv_until(socket: ClientConnection, kind: str, wait: float = 5) -> list[dict[str, Any]]:
    """Frames up to and including the first of type ``kind``."""
    frames = []
    while True:
        frame = await recv(socket, wait)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def recv_mixed(
    socket: ClientConnection, kind: str, wait: float = 5
) -> list[dict[str, Any] | bytes]:
    """Text frames (decoded) and binary frames (bytes) up to and including the first ``kind``."""
    frames: list[dict[str, Any] | bytes] = []
    while True:
        raw = await asyncio.wait_for(socket.recv(), wait)
        if isinstance(raw, bytes):
            frames.append(raw)
            continue
        frame = json.loads(raw)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def send(socket: ClientConnection, kind: str, **data: Any) -> None:
    """Send a client frame ``{"type": kind, "data": data}``."""
    await socket.send(json.dumps({"type": kind, "data": data}))


class LLMPlugin:
    """Registers the test's scripted LLM as provider ``scripted`` (and fake STT and TTS
    providers as ``test-stt`` and ``test-tts`` when given)."""

    def __init__(self, llm: Any, stt: Any = None, tts: Any = None) -> None:
        self.llm = llm
        self.stt = stt
        self.tts = tts

    @hookimpl
    def register_llm_providers(self, register: Callable[..., None]) -> None:
        register("scripted", lambda settings: self.llm)

    @hookimpl
    def register_stt_providers(self, register: Callable[..., None]) -> None:
        if self.stt is not None:
            register("test-stt", lambda settings: self.stt)

    @hookimpl
    def register_tts_providers(self, register: Callable[..., None]) -> None:
        if self.tts is not None:
            register("test-tts", lambda settings: self.tts)


@dataclass
class Web:
    """A running server: its base URL, an HTTP client (device ``device-a``), the runtime.

    Test modules reach the shared helpers through it (conftest modules are not importable).
    """

    SECRET = SECRET
    DEVICE = DEVICE
    OTHER = OTHER
    recv = staticmethod(recv)
    recv_until = staticmethod(recv_until)
    recv_mixed = staticmethod(recv_mixed)
    send = staticmethod(send)
    token = staticmethod(token)

    base: str
    http: httpx.AsyncClient
    runtime: Runtime
    llm: Any
    stt: Any = None
    tts: Any = None

    def device(self, device_id: str = DEVICE) -> dict[str, str]:
        """Headers of an anonymous device."""
        return {"X-Device-ID": device_id}

    def bearer(self, value: str) -> dict[str, str]:
        """Headers carrying a token."""
        return {"Authorization": f"Bearer {value}"}

    def ws_url(self, **query: str) -> str:
        """The socket's URL with ``query`` (device ``device-a`` unless given or ``device_id=""``)."""
        query = {"device_id": DEVICE, **query}
        query = {k: v for k, v in query.items() if v != ""}
        return self.base.replace("http://", "ws://") + "/ws?" + urlencode(query)

    @asynccontextmanager
    async def ws(
        self, *, headers: dict[str, str] | None = None, origin: str | None = None, **query: str
    ) -> AsyncIterator[ClientConnection]:
        """A connected socket (``query``: see :meth:`ws_url`)."""
        url = self.ws_url(**query)
        async with connect(
            url,
            max_size=None,
            additional_headers=headers,
            origin=origin,  # type: ignore[arg-type]
        ) as socket:
            yield socket

    async def start_chat(
        self, socket: ClientConnection, *, greeting: bool = True
    ) -> list[dict[str, Any]]:
        """The frames a connection opens with: conversation_started (+ the greeting message)."""
        frames = [await recv(socket)]
        assert frames[0]["type"] == "conversation_started", frames
        if greeting:
            frames += await recv_until(socket, "message_complete")
        return frames


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` merged into a copy of ``base``, table by table."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def serve(make_settings: Callable[..., Settings], llm: ScriptedLLM) -> Callable[..., Any]:
    """``async with serve(extra) as web``: a real server over the test settings (``extra`` merged).

    ``settings`` replaces the built settings (e.g. loaded from a folder); ``provider`` replaces the
    scripted LLM; ``stt`` and ``tts`` are speech providers (e.g. FakeLiveSTT, ToneTTS);
    ``plugins`` are more plugin objects to register.
    """

    @asynccontextmanager
    async def start(
        extra: dict[str, Any] | None = None,
        *,
        settings: Settings | None = None,
        provider: Any = None,
        stt: Any = None,
        tts: Any = None,
        plugins: tuple[object, ...] = (),
    ) -> AsyncIterator[Web]:
        voice: dict[str, Any] = {}
        if stt is not None:
            voice["stt"] = {"provider": "test-stt"}
        if tts is not None:
            voice["tts"] = {"provider": "test-tts"}
        merged = deep_merge(deep_merge(WEB_DEFAULTS, voice), extra or {})
        settings = settings or make_settings(merged)
        provider = provider or llm
        plugin = LLMPlugin(provider, stt, tts)
        extra_plugins = [(f"test-plugin-{i}", p) for i, p in enumerate(plugins)]
        pm = make_plugin_manager(
            (), entry_points=False, extra=[("test-llm", plugin), *extra_plugins]
        )
        runtime = Runtime(settings, pm)
        app = create_app(settings, runtime)
        async with (
            running_server(app) as base,
            httpx.AsyncClient(base_url=base, headers={"X-Device-ID": DEVICE}) as http,
        ):
            yield Web(base, http, runtime, provider, stt, tts)

    return start


STORY = ["Let me tell you a long story. ", "It begins "]


class HeldLLM:
    """The first reply streams STORY, then waits for ever (until cut short); later ones answer."""

    name = "held"
    stall_timeout = 0.0  # it waits for ever by design: no stall watchdog (docs/operations.md)

    def __init__(self) -> None:
        self.requests: list[LLMRequest] = []

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        self.requests.append(request)
        if len(self.requests) == 1:
            for piece in STORY:
                yield LLMChunk(text=piece)
            await asyncio.Event().wait()
        yield LLMChunk(text="Sure, go ahead.")
        yield LLMChunk(usage=Usage(1, 3))
