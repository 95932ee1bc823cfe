"""The deepgram provider: pre-recorded through respx, live against a local WebSocket server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx
from websockets.asyncio.server import ServerConnection, serve

from parley.core.config import SettingsError
from parley.core.loading import settings_from_dict
from parley.core.providers import (
    LiveSession,
    LiveSTTProvider,
    LiveTranscript,
    MissingDependency,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    SpeechStarted,
    STTProvider,
    UtteranceEnd,
)
from parley.plugins.deepgram.plugin import make_deepgram_stt
from parley.plugins.deepgram.settings import DeepgramSettings
from parley.plugins.deepgram.stt import DeepgramSTT

BASE_URL = "http://dg.test"
URL = f"{BASE_URL}/v1/listen"
KEY = "dg-secret-key-123"


def response(text: str = "hello world", **channel: Any) -> dict[str, Any]:
    """A pre-recorded response body."""
    return {
        "metadata": {
            "request_id": "r1",
            "sha256": "",
            "created": "2026-01-01T00:00:00Z",
            "duration": 1.5,
            "channels": 1,
            "models": ["m"],
            "model_info": {},
        },
        "results": {
            "channels": [
                {
                    "alternatives": [{"transcript": text, "confidence": 0.93, "words": []}],
                    **channel,
                }
            ]
        },
    }


@pytest.fixture
async def mock() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
async def make_stt() -> AsyncIterator[Callable[..., DeepgramSTT]]:
    built: list[DeepgramSTT] = []

    def factory(**overrides: Any) -> DeepgramSTT:
        values: dict[str, Any] = {"base_url": BASE_URL, "api_key": KEY, "max_retries": 0}
        values.update(overrides)
        stt = DeepgramSTT(DeepgramSettings(**values), http_client=httpx.AsyncClient())
        built.append(stt)
        return stt

    yield factory
    for stt in built:
        await stt.aclose()


# -- pre-recorded ------------------------------------------------------------------------------


async def test_transcribe_bytes(mock, make_stt):
    route = mock.post(URL).mock(return_value=httpx.Response(200, json=response()))
    stt = make_stt()
    assert isinstance(stt, STTProvider) and isinstance(stt, LiveSTTProvider)
    result = await stt.transcribe(b"OggS-audio", mime_type="audio/ogg", language="en")
    assert (result.text, result.language, result.confidence, result.duration) == (
        "hello world",
        "en",
        0.93,
        1.5,
    )
    request = route.calls[0].request
    assert request.headers["authorization"] == f"Token {KEY}"
    assert request.headers["content-type"] == "application/octet-stream"
    assert request.content == b"OggS-audio"
    assert dict(request.url.params) == {"model": "nova-3", "smart_format": "true", "language": "en"}


async def test_language_setting_detect_and_fixed(mock, make_stt):
    route = mock.post(URL).mock(
        return_value=httpx.Response(200, json=response("hallo", detected_language="de"))
    )
    detected = await make_stt(language="detect").transcribe(b"x", language="en")
    assert detected.language == "de"
    assert route.calls[-1].request.url.params["detect_language"] == "true"
    assert "language" not in route.calls[-1].request.url.params
    await make_stt(language="fr", smart_format=False, model="nova-2").transcribe(
        b"x", language="en"
    )
    params = route.calls[-1].request.url.params
    assert (params["language"], params["smart_format"], params["model"]) == (
        "fr",
        "false",
        "nova-2",
    )


async def test_raw_pcm_names_encoding_and_rate(mock, make_stt):
    route = mock.post(URL).mock(return_value=httpx.Response(200, json=response()))
    await make_stt().transcribe(b"\0\0" * 800, mime_type="audio/L16; rate=24000", language="en")
    params = route.calls[0].request.url.params
    assert (params["encoding"], params["sample_rate"]) == ("linear16", "24000")


async def test_transcribe_url(mock, make_stt):
    route = mock.post(URL).mock(return_value=httpx.Response(200, json=response("from a url")))
    result = await make_stt().transcribe_url("https://cdn.test/a.mp3", language="en")
    assert result.text == "from a url"
    request = route.calls[0].request
    assert json.loads(request.content) == {"url": "https://cdn.test/a.mp3"}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == f"Token {KEY}"


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (
            401,
            {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."},
            ProviderAuthError,
            "stt.api_key",
        ),
        (403, {"err_msg": "no access"}, ProviderAuthError, "DEEPGRAM_API_KEY"),
        (429, {"err_msg": "slow down"}, ProviderRateLimited, "slow down"),
        (503, {"err_msg": "maintenance"}, ProviderUnavailable, "maintenance"),
        (400, {"err_msg": "corrupt or unsupported data"}, ProviderError, "corrupt or unsupported"),
    ],
)
async def test_http_errors_are_provider_errors(mock, make_stt, status, body, error, words):
    mock.post(URL).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(error) as caught:
        await make_stt().transcribe(b"audio", language="en")
    assert type(caught.value) is error
    assert words in caught.value.message and KEY not in caught.value.message


async def test_timeout_and_unreachable(mock, make_stt):
    mock.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderTimeout):
        await make_stt().transcribe(b"audio")
    mock.post(URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderUnavailable):
        await make_stt().transcribe(b"audio")


async def test_empty_audio_is_refused_without_a_request(mock, make_stt):
    route = mock.post(URL)
    with pytest.raises(ProviderError):
        await make_stt().transcribe(b"")
    assert not route.called


# -- settings and plugin -----------------------------------------------------------------------


def test_websocket_base_is_derived_from_base_url():
    assert DeepgramSettings().websocket_base() == "wss://api.deepgram.com"
    assert DeepgramSettings(base_url="http://h:8080/").websocket_base() == "ws://h:8080"
    assert DeepgramSettings(base_url="https://dg.corp/x").websocket_base() == "wss://dg.corp/x"


def _settings(stt: dict[str, Any]):
    return settings_from_dict({"stt": stt})


def test_factory_needs_a_key_for_the_hosted_api(monkeypatch):
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(ProviderAuthError, match=r"stt\.api_key.*DEEPGRAM_API_KEY"):
        make_deepgram_stt(_settings({"provider": "deepgram"}))
    monkeypatch.setenv("DEEPGRAM_API_KEY", "from-env")
    stt = make_deepgram_stt(_settings({"provider": "deepgram"}))
    assert stt.client._client_wrapper.api_key == "from-env"
    # A self-hosted server needs no key.
    monkeypatch.delenv("DEEPGRAM_API_KEY")
    assert make_deepgram_stt(_settings({"base_url": "http://dg.local:8080"})).name == "deepgram"


@pytest.mark.parametrize(
    ("stt", "key"),
    [
        ({"base_url": "dg.local"}, "stt.base_url"),
        ({"utterance_end_ms": 10}, "stt.utterance_end_ms"),
        ({"smart_format": "maybe"}, "stt.smart_format"),
        ({"model": ""}, "stt.model"),
    ],
)
def test_bad_settings_name_the_key(stt, key):
    with pytest.raises(SettingsError, match=rf"^{key}: "):
        make_deepgram_stt(_settings({"api_key": "k", **stt}))


def test_missing_sdk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepgram", None)
    monkeypatch.delitem(sys.modules, "parley.plugins.deepgram.stt", raising=False)
    monkeypatch.delitem(sys.modules, "parley.plugins.deepgram.live", raising=False)
    with pytest.raises(MissingDependency, match=r"pip install 'parley\[voice\]'"):
        make_deepgram_stt(_settings({"api_key": "k"}))


# -- live --------------------------------------------------------------------------------------


def results(text: str, *, is_final: bool, speech_final: bool = False) -> str:
    return json.dumps(
        {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": 0.8,
            "start": 0.2,
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.9, "words": []}]},
            "metadata": {
                "request_id": "r",
                "model_info": {"name": "n", "version": "v", "arch": "a"},
                "model_uuid": "u",
            },
        }
    )


class FakeDeepgram:
    """A local stand-in for Deepgram's live endpoint: scripted replies, records what it gets."""

    def __init__(self) -> None:
        self.received: list[str | int] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.reject: int | None = None
        self.break_after_audio = False

    async def handle(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path)
        self.headers.append(dict(ws.request.headers))
        async for message in ws:
            if isinstance(message, bytes):
                self.received.append(len(message))
                if self.break_after_audio:
                    await ws.close(1011, "NET-0001 no audio")
                    return
                await ws.send(
                    json.dumps({"type": "SpeechStarted", "channel": [0, 1], "timestamp": 0.2})
                )
                await ws.send(results("hello", is_final=False))
                await ws.send(results("hello there", is_final=True))
                continue
            kind = json.loads(message)["type"]
            self.received.append(kind)
            if kind == "Finalize":
                await ws.send(results("how are you", is_final=True, speech_final=True))
                await ws.send(
                    json.dumps({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 2.1})
                )
            elif kind == "CloseStream":
                await ws.send(
                    json.dumps(
                        {
                            "type": "Metadata",
                            "transaction_key": "t",
                            "request_id": "r",
                            "sha256": "s",
                            "created": "c",
                            "duration": 2.0,
                            "channels": 1,
                            "models": [],
                            "model_info": {},
                        }
                    )
                )
                await ws.close()
                return

    def process_request(self, connection: Any, request: Any) -> Any:
        if self.reject is not None:
            return connection.respond(self.reject, "rejected\n")
        return None


@pytest.fixture
async def deepgram_server() -> AsyncIterator[tuple[FakeDeepgram, str]]:
    fake = FakeDeepgram()
    async with serve(fake.handle, "127.0.0.1", 0, process_request=fake.process_request) as server:
        port = server.sockets[0].getsockname()[1]
        yield fake, f"http://127.0.0.1:{port}"


async def _collect(session: LiveSession) -> list[Any]:
    return [result async for result in session]


async def test_live_session_end_to_end(deepgram_server, make_stt):
    fake, base = deepgram_server
    stt = make_stt(base_url=base, keepalive_interval=0.05, language="de")
    async with await stt.live(encoding="pcm16", sample_rate=16000) as session:
        assert isinstance(session, LiveSession)
        reader = asyncio.create_task(_collect(session))
        await session.send(b"\0\0" * 1600)
        await asyncio.sleep(0.2)  # idle: keep-alives go out
        await session.finalize()
        await session.close()
        got = await asyncio.wait_for(reader, 5)
    assert got == [
        SpeechStarted(at=0.2),
        LiveTranscript("hello", is_final=False, confidence=0.9, start=0.2, duration=0.8),
        LiveTranscript("hello there", is_final=True, confidence=0.9, start=0.2, duration=0.8),
        LiveTranscript("how are you", True, True, confidence=0.9, start=0.2, duration=0.8),
        UtteranceEnd(last_word_end=2.1),
    ]
    assert fake.received[0] == 3200
    assert fake.received.count("KeepAlive") >= 2
    assert fake.received[-2:] == ["Finalize", "CloseStream"]
    path, _, query = fake.paths[0].partition("?")
    params = dict(part.split("=") for part in query.split("&"))
    assert path == "/v1/listen"
    assert params == {
        "model": "nova-3",
        "encoding": "linear16",
        "sample_rate": "16000",
        "channels": "1",
        "interim_results": "true",
        "vad_events": "true",
        "utterance_end_ms": "1000",
        "endpointing": "300",
        "smart_format": "true",
        "language": "de",
    }
    assert fake.headers[0]["authorization"] == f"Token {KEY}"
    with pytest.raises(ProviderError):
        await session.send(b"late")
    await session.close()  # twice is fine


async def test_keepalive_not_sent_while_audio_flows(deepgram_server, make_stt):
    fake, base = deepgram_server
    session = await make_stt(base_url=base, keepalive_interval=0.3).live()
    reader = asyncio.create_task(_collect(session))
    for _ in range(20):  # 0.6 s of audio, a frame every 30 ms
        await session.send(b"\0\0" * 160)
        await asyncio.sleep(0.03)
    await session.close()
    await reader
    assert "KeepAlive" not in fake.received


async def test_live_container_audio_sends_no_encoding(deepgram_server, make_stt):
    fake, base = deepgram_server
    session = await make_stt(base_url=base, language="detect").live(encoding="webm")
    await session.close()
    query = fake.paths[0].partition("?")[2]
    assert "encoding" not in query and "sample_rate" not in query and "language=multi" in query


async def test_live_rejected_key_is_an_auth_error(deepgram_server, make_stt):
    fake, base = deepgram_server
    fake.reject = 401
    with pytest.raises(ProviderAuthError, match=r"stt\.api_key"):
        await make_stt(base_url=base).live()


async def test_live_connection_lost_raises_from_the_iterator(deepgram_server, make_stt):
    fake, base = deepgram_server
    fake.break_after_audio = True
    session = await make_stt(base_url=base).live()
    await session.send(b"\0\0" * 160)
    with pytest.raises(ProviderUnavailable, match="1011"):
        await asyncio.wait_for(_collect(session), 5)
    await session.close()


async def test_live_unreachable_server(make_stt):
    with pytest.raises(ProviderUnavailable):
        await make_stt(base_url="http://127.0.0.1:9").live()
