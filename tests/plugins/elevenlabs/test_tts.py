"""The elevenlabs provider through respx at the HTTP layer (an explicit ``httpx.AsyncClient``)."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import respx
from aiohttp import web
from httpcore._async import http11

from parley.core.config import SettingsError
from parley.core.loading import settings_from_dict
from parley.core.providers import (
    MissingDependency,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    TTSProvider,
)
from parley.plugins.elevenlabs.plugin import make_elevenlabs_tts
from parley.plugins.elevenlabs.settings import ElevenLabsSettings
from parley.plugins.elevenlabs.tts import ElevenLabsTTS

BASE_URL = "http://el.test"
KEY = "xi-secret-key-456"


def stream_url(voice: str) -> str:
    return f"{BASE_URL}/v1/text-to-speech/{voice}/stream"


@pytest.fixture
async def mock() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
async def make_tts() -> AsyncIterator[Callable[..., ElevenLabsTTS]]:
    built: list[ElevenLabsTTS] = []

    def factory(**overrides: Any) -> ElevenLabsTTS:
        values: dict[str, Any] = {"base_url": BASE_URL, "api_key": KEY, "max_retries": 0}
        values.update(overrides)
        tts = ElevenLabsTTS(ElevenLabsSettings(**values), http_client=httpx.AsyncClient())
        built.append(tts)
        return tts

    yield factory
    for tts in built:
        await tts.aclose()


async def _speak(tts: ElevenLabsTTS, text: str = "Hello there.", **kwargs: Any) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text, **kwargs)]


async def test_streams_bytes_with_voice_model_and_format(mock, make_tts):
    audio = bytes(range(256)) * 12
    pieces = [audio[i : i + 700] for i in range(0, len(audio), 700)]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    route = mock.post(stream_url("v-persona")).mock(
        return_value=httpx.Response(200, content=body())
    )
    tts = make_tts()
    assert isinstance(tts, TTSProvider)
    chunks = await _speak(tts, voice="v-persona", output_format="pcm_16000")
    assert chunks == pieces  # each piece as it arrives, none held back for more bytes
    request = route.calls[0].request
    assert request.headers["xi-api-key"] == KEY
    assert dict(request.url.params) == {"output_format": "pcm_16000"}
    assert json.loads(request.content) == {"text": "Hello there.", "model_id": "eleven_flash_v2_5"}


async def test_defaults_come_from_settings(mock, make_tts):
    route = mock.post(stream_url("default-voice")).mock(
        return_value=httpx.Response(200, content=b"ID3 mp3 bytes")
    )
    tts = make_tts(voice="default-voice", model="eleven_turbo_v2_5", output_format="opus_48000_64")
    assert tts.output_format == "opus_48000_64"
    assert await _speak(tts) == [b"ID3 mp3 bytes"]
    request = route.calls[0].request
    assert request.url.params["output_format"] == "opus_48000_64"
    assert json.loads(request.content)["model_id"] == "eleven_turbo_v2_5"


async def test_blank_text_makes_no_request(mock, make_tts):
    route = mock.post(stream_url("JBFqnCBsd6RMkjVDRZzb"))
    assert await _speak(make_tts(), " \n") == []
    assert not route.called


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (
            401,
            {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}},
            ProviderAuthError,
            "tts.api_key",
        ),
        (
            404,
            {"detail": {"status": "voice_not_found", "message": "nope"}},
            ProviderError,
            "voice 'v1' not found",
        ),
        (
            429,
            {"detail": {"status": "too_many_concurrent_requests", "message": "busy"}},
            ProviderRateLimited,
            "busy",
        ),
        (500, {"detail": "boom"}, ProviderUnavailable, "boom"),
        (422, {"detail": [{"msg": "text too long"}]}, ProviderError, "text too long"),
    ],
)
async def test_http_errors_are_provider_errors(mock, make_tts, status, body, error, words):
    mock.post(stream_url("v1")).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(error) as caught:
        await _speak(make_tts(), voice="v1")
    assert type(caught.value) is error
    assert words in caught.value.message and KEY not in caught.value.message


async def test_timeout_and_unreachable(mock, make_tts):
    mock.post(stream_url("v1")).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderTimeout):
        await _speak(make_tts(), voice="v1")
    mock.post(stream_url("v1")).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderUnavailable):
        await _speak(make_tts(), voice="v1")


async def test_the_connection_outlives_a_pause_between_turns(monkeypatch):
    """A turn's first sentence reuses the last turn's connection (no new TLS handshake)."""
    peers: list[int] = []

    async def speech(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername")[1])
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"\0" * 640)
        return response

    app = web.Application()
    app.router.add_post("/v1/text-to-speech/{voice}/stream", speech)
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    tts = ElevenLabsTTS(ElevenLabsSettings(base_url=f"http://127.0.0.1:{port}", api_key=KEY))
    pause = 0.0
    real = time.monotonic
    # The pool's clock only (asyncio keeps the real one): 30 s pass between the two turns.
    monkeypatch.setattr(http11, "time", SimpleNamespace(monotonic=lambda: real() + pause))
    try:
        await _speak(tts)
        pause = 30.0
        await _speak(tts)
    finally:
        await tts.aclose()
        await runner.cleanup()
    assert len(peers) == 2
    assert peers[0] == peers[1]


async def test_unknown_format_is_refused(make_tts):
    with pytest.raises(ProviderError, match="wav_16000"):
        await _speak(make_tts(), output_format="wav_16000")


# -- settings and plugin -----------------------------------------------------------------------


def _settings(tts: dict[str, Any]):
    return settings_from_dict({"tts": tts})


def test_factory_key_from_settings_or_environment(monkeypatch):
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    with pytest.raises(ProviderAuthError, match=r"tts\.api_key.*ELEVENLABS_API_KEY"):
        make_elevenlabs_tts(_settings({"provider": "elevenlabs"}))
    monkeypatch.setenv("ELEVENLABS_API_KEY", "from-env")
    tts = make_elevenlabs_tts(_settings({}))
    assert tts.client._client_wrapper.get_headers()["xi-api-key"] == "from-env"
    assert make_elevenlabs_tts(_settings({"api_key": "explicit"})).settings.resolved_api_key() == (
        "explicit"
    )


@pytest.mark.parametrize(
    ("tts", "key"),
    [
        ({"output_format": "wav"}, "tts.output_format"),
        ({"base_url": "api.elevenlabs.io"}, "tts.base_url"),
        ({"timeout": 0}, "tts.timeout"),
        ({"voice": ""}, "tts.voice"),
    ],
)
def test_bad_settings_name_the_key(tts, key):
    with pytest.raises(SettingsError, match=rf"^{key}: "):
        make_elevenlabs_tts(_settings({"api_key": "k", **tts}))


def test_missing_sdk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "elevenlabs", None)
    monkeypatch.setitem(sys.modules, "elevenlabs.client", None)
    monkeypatch.delitem(sys.modules, "parley.plugins.elevenlabs.tts", raising=False)
    with pytest.raises(MissingDependency, match=r"pip install 'parley\[voice\]'"):
        make_elevenlabs_tts(_settings({"api_key": "k"}))
