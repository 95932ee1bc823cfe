"""``audio_urls`` on ``/chat/`` and ``/chat/stream``: fetched (bounded, SSRF-guarded), transcribed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar, Response, get
from litestar.params import FromQuery
from litestar.response import Redirect, Stream

from parley.adapters.web.audio_urls import AudioFetcher, host_allowed
from parley.adapters.web.settings import WebSettings
from parley.core import store
from parley.core.providers import ProviderUnavailable
from parley.testing import FakeSTT, running_server

VOICE = b"OggS" + bytes(1000)


@get("/voice.ogg", media_type="audio/ogg")
async def voice_note() -> bytes:
    return VOICE


@get("/big-chunked")
async def big_chunked() -> Stream:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield bytes(1024)

    return Stream(body(), media_type="audio/ogg")


@get("/big-sized", media_type="audio/ogg")
async def big_sized() -> bytes:
    return bytes(8192)


@get("/missing", status_code=404)
async def missing() -> Response[str]:
    return Response("no", status_code=404)


@get("/hop")
async def hop(to: FromQuery[str]) -> Redirect:
    return Redirect(path=to)


@asynccontextmanager
async def media_server() -> AsyncIterator[str]:
    app = Litestar([voice_note, big_chunked, big_sized, missing, hop])
    async with running_server(app) as base:
        yield base


ALLOW_LOOPBACK = {"web": {"audio_url_hosts": ["127.0.0.1"], "max_audio_bytes": 4096}}


async def test_an_audio_url_is_fetched_and_transcribed(serve, llm):
    stt = FakeSTT("what is the weather")
    llm.push("Sunny.")
    llm.push("Still sunny.")
    async with media_server() as media, serve(ALLOW_LOOPBACK, stt=stt) as web:
        response = await web.http.post(
            "/chat/", json={"content": "", "audio_urls": [f"{media}/voice.ogg"]}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["content"], body["transcript"]) == ("Sunny.", "what is the weather")
        assert stt.calls == [(VOICE, "audio/ogg")]
        assert llm.requests[-1].messages[-1]["content"] == "what is the weather"
        messages = await store.list_messages(body["conversation_id"])
        user = next(m for m in messages if m.role == "user")
        assert user.content == "what is the weather"
        assert user.metadata["audio"]["url"] == f"{media}/voice.ogg"
        assert user.metadata["audio"]["bytes"] == len(VOICE)
        assert user.metadata["audio"]["mime_type"] == "audio/ogg"
        assert isinstance(user.metadata["stt_ms"], int)
        # Over SSE, with text: the transcript follows the text; the final event names it.
        url = f"{media}/hop?to=/voice.ogg"  # a redirect on the same allowed host is followed
        async with web.http.stream(
            "POST", "/chat/stream", json={"content": "Also:", "audio_urls": [url]}
        ) as stream:
            assert stream.status_code == 200
            lines = [json.loads(line[6:]) async for line in stream.aiter_lines() if line]
        assert lines[-1]["is_final"] is True and lines[-1]["transcript"] == "what is the weather"
        assert "".join(line["content"] for line in lines) == "Still sunny."
        assert llm.requests[-1].messages[-1]["content"] == "Also: what is the weather"


async def test_bad_audio_urls_are_refused_with_clear_errors(serve):
    stt = FakeSTT("never heard")
    async with media_server() as media, serve(ALLOW_LOOPBACK, stt=stt) as web:
        port = media.rsplit(":", 1)[1]
        cases = [
            ("ftp://127.0.0.1/voice.ogg", 422, "invalid_audio_url"),
            ("file:///etc/passwd", 422, "invalid_audio_url"),
            ("http://user:pw@127.0.0.1/voice.ogg", 422, "invalid_audio_url"),
            (f"{media}/big-chunked", 413, "audio_too_large"),
            (f"{media}/big-sized", 413, "audio_too_large"),
            (f"{media}/missing", 422, "audio_fetch_failed"),
            (f"http://localhost:{port}/voice.ogg", 422, "audio_url_not_allowed"),
            (f"{media}/hop?to=http://localhost:{port}/voice.ogg", 422, "audio_url_not_allowed"),
            ("http://127.0.0.1:1/voice.ogg", 422, "audio_fetch_failed"),
        ]
        for url, status, code in cases:
            for path in ("/chat/", "/chat/stream"):
                response = await web.http.post(path, json={"audio_urls": [url]})
                got = (response.status_code, response.json()["error"]["code"])
                assert got == (status, code), (url, path)
        two = await web.http.post("/chat/", json={"audio_urls": [f"{media}/voice.ogg"] * 2})
        assert (two.status_code, two.json()["error"]["code"]) == (422, "validation_error")
        assert stt.calls == []
        # A transcription failure is the provider's error, like any other.
        stt.error = ProviderUnavailable("deepgram is down")
        failed = await web.http.post("/chat/", json={"audio_urls": [f"{media}/voice.ogg"]})
        body = failed.json()
        assert (failed.status_code, body["error"]["code"], body["retryable"]) == (
            502,
            "stt_failed",
            True,
        )


async def test_private_addresses_are_refused_unless_listed(serve):
    async with media_server() as media, serve(stt=FakeSTT()) as web:
        response = await web.http.post("/chat/", json={"audio_urls": [f"{media}/voice.ogg"]})
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "audio_url_not_allowed"
        assert "web.audio_url_hosts" in error["message"]
    listed = {"web": {"audio_url_hosts": ["media.example.com"]}}
    async with serve(listed, stt=FakeSTT()) as web:
        other = await web.http.post("/chat/", json={"audio_urls": ["https://example.org/a.ogg"]})
        assert other.json()["error"]["code"] == "audio_url_not_allowed"


def test_host_patterns():
    patterns = ["media.example.com", "*.cdn.example.net", "10.0.0.5"]
    assert host_allowed("media.example.com", patterns)
    assert host_allowed("MEDIA.example.com.", patterns)
    assert host_allowed("eu.cdn.example.net", patterns)
    assert host_allowed("10.0.0.5", patterns)
    assert not host_allowed("cdn.example.net", patterns)
    assert not host_allowed("evil-media.example.com", patterns)
    assert not host_allowed("media.example.com.evil.org", patterns)


async def test_the_connection_goes_to_the_address_checked(monkeypatch):
    """DNS is asked once: the request goes to that address, the host stays in Host and SNI."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=VOICE, headers={"content-type": "audio/ogg"})

    fetcher = AudioFetcher(WebSettings(audio_url_hosts=["media.example.com"]))
    fetcher._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))

    async def address(url: httpx.URL) -> str:
        assert url.host == "media.example.com"
        return "203.0.113.7"

    monkeypatch.setattr(fetcher, "_address", address)
    audio = await fetcher.fetch("https://media.example.com:8443/notes/a.ogg?v=2")
    await fetcher.aclose()
    assert (audio.data, audio.mime_type) == (VOICE, "audio/ogg")
    (request,) = seen
    assert str(request.url) == "https://203.0.113.7:8443/notes/a.ogg?v=2"
    assert request.headers["host"] == "media.example.com:8443"
    assert request.extensions["sni_hostname"] == "media.example.com"
