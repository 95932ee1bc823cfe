"""A real Parley server with fake providers, and Debian's Chromium driven by Playwright.

Chromium starts once per session (Playwright objects belong to the loop that made them), so the
browser tests run in the session's event loop: their modules set
``pytestmark = pytest.mark.asyncio(loop_scope="session")`` and the fixtures here use that loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import pytest_asyncio

from parley import hookimpl
from parley.core.config import Settings
from parley.core.plugins import make_plugin_manager
from parley.core.providers import LiveTranscript, SpeechStarted
from parley.core.runtime import Runtime
from parley.server import create_app
from parley.testing import FakeLiveSTT, ScriptedLLM, ToneTTS, running_server

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
HOOKS = Path(__file__).with_name("hooks.js")
"""Test hooks (``window.__parleyTest``), added to test pages only: the widget ships none."""
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]

SETTINGS: dict[str, Any] = {
    "llm": {"provider": "scripted"},
    "stt": {"provider": "fake"},
    "tts": {"provider": "tone", "output_format": "pcm_16000"},
}


HEARD = "hello from the microphone"
"""What the fake speech-to-text hears once half a second of microphone audio has come."""


def _live_stt() -> FakeLiveSTT:
    script = [
        SpeechStarted(),
        LiveTranscript("hello from", is_final=False),
        LiveTranscript(HEARD, is_final=True, speech_final=True),
    ]
    return FakeLiveSTT(script, text=HEARD, after_bytes=16_000)


@dataclass
class Fakes:
    """The providers the server uses; tests script them."""

    llm: ScriptedLLM = field(default_factory=ScriptedLLM)
    stt: FakeLiveSTT = field(default_factory=_live_stt)
    tts: ToneTTS = field(default_factory=ToneTTS)


class FakeProviders:
    """A test plugin registering the fakes as providers ``scripted``, ``fake`` and ``tone``."""

    def __init__(self, fakes: Fakes) -> None:
        self.fakes = fakes

    @hookimpl
    def register_llm_providers(self, register: Callable[..., None]) -> None:
        register("scripted", lambda settings: self.fakes.llm)

    @hookimpl
    def register_stt_providers(self, register: Callable[..., None]) -> None:
        register("fake", lambda settings: self.fakes.stt)

    @hookimpl
    def register_tts_providers(self, register: Callable[..., None]) -> None:
        register("tone", lambda settings: self.fakes.tts)


class LiveServer:
    """uvicorn on loopback in the test's loop; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self, settings: Settings, fakes: Fakes) -> None:
        self.settings = settings
        self.fakes = fakes
        self.port: int | None = None
        self.url = ""
        self._running: AbstractAsyncContextManager[str] | None = None

    async def start(self) -> str:
        """Serve a fresh app (same settings, same database, same port once one was chosen)."""
        pm = make_plugin_manager(
            (), entry_points=False, extra=[("widget-test-fakes", FakeProviders(self.fakes))]
        )
        app = create_app(self.settings, Runtime(self.settings, pm))
        self._running = running_server(app, port=self.port)
        self.url = await self._running.__aenter__()
        self.port = urlparse(self.url).port
        return self.url

    async def stop(self) -> None:
        """Shut the server down (its sockets are closed)."""
        running, self._running = self._running, None
        if running is not None:
            await running.__aexit__(None, None, None)


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest_asyncio.fixture(loop_scope="session")
async def start_server(
    make_settings: Callable[..., Settings], fakes: Fakes
) -> AsyncIterator[Callable[..., Any]]:
    """Start a server with SETTINGS plus ``extra``; every one started is stopped afterwards."""
    started: list[LiveServer] = []

    async def start(extra: dict[str, Any] | None = None) -> LiveServer:
        live = LiveServer(make_settings({**SETTINGS, **(extra or {})}), fakes)
        await live.start()
        started.append(live)
        return live

    try:
        yield start
    finally:
        for live in started:
            await live.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def server(start_server: Callable[..., Any]) -> LiveServer:
    """The server the page fixture opens."""
    return await start_server()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (``make browser`` installs it), never a downloaded one."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    return str(CHROMIUM)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: str) -> AsyncIterator[Any]:
    """Chromium with a fake microphone that needs no permission prompt."""
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        await playwright.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Any, server: LiveServer) -> AsyncIterator[Any]:
    """A page on the test server; a JavaScript error on it fails the test."""
    context = await new_context(browser, base_url=server.url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


async def new_context(browser: Any, **options: Any) -> Any:
    """A browser context whose pages get the test hooks (``window.__parleyTest``)."""
    context = await browser.new_context(**options)
    await context.add_init_script(path=str(HOOKS))
    return context


def artifact(name: str) -> Path:
    """A path under test-artifacts/ (git-ignored) for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
