"""The openai provider's SDK client on a real local server: one connection reused turn after
turn and kept between turns; many streams at once; each stream's response closed however it ends;
failures told apart (unreachable, timed out, cut)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx2
import pytest

from parley.core.config import LLMSettings, ModelSettings
from parley.core.providers import (
    LLMChunk,
    LLMRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from parley.fake_services import FakeOpenAIServer
from parley.plugins.openai.llm import OpenAILLM
from parley.testing import free_port

REQUEST = LLMRequest(messages=[{"role": "user", "content": "Hi"}], model=ModelSettings())
MANY = 120
"""Streams at once: more than one pool held before (16 each), fewer than its limit (1000)."""


def provider(server: FakeOpenAIServer, **values: Any) -> OpenAILLM:
    """The provider on ``server``, without the SDK's retries."""
    return OpenAILLM(LLMSettings(base_url=server.base_url, max_retries=0, **values))


async def held(llm: OpenAILLM, count: int) -> list[AsyncIterator[LLMChunk]]:
    """``count`` streams, each past its first chunk (its request in flight, the server stalled)."""
    streams = [llm.stream(REQUEST) for _ in range(count)]
    firsts = await asyncio.gather(*(anext(stream) for stream in streams))
    assert all(first.text == "hi" for first in firsts)
    return streams


async def test_sequential_requests_share_one_connection() -> None:
    async with FakeOpenAIServer(("text", ["Hello", " there"])) as server:
        llm = provider(server)
        try:
            for _ in range(5):
                chunks = [chunk async for chunk in llm.stream(REQUEST)]
                assert "".join(chunk.text for chunk in chunks) == "Hello there"
            assert (server.requests, server.connections) == (5, 1)
        finally:
            await llm.aclose()


async def test_many_streams_at_once_each_closed_when_given_up() -> None:
    async with FakeOpenAIServer(("stall", ["hi"])) as server:
        llm = provider(server)
        try:
            streams = await held(llm, MANY)
            assert (server.requests, server.connections) == (MANY, MANY)
            for stream in streams:
                await stream.aclose()
            await _until(lambda: server.closed == MANY)
        finally:
            await llm.aclose()


async def test_failed_and_cancelled_streams_close_their_responses() -> None:
    async with FakeOpenAIServer(("status", 500)) as server:
        llm = provider(server)
        try:
            for _ in range(3):
                with pytest.raises(ProviderError):
                    await anext(llm.stream(REQUEST))
            server.behaviours.clear()
            server.push(("stall", ["hi"]))  # cancelled while waiting for the next chunk
            reading = [asyncio.Event() for _ in range(3)]
            streams = await held(llm, 3)
            waiting = [
                asyncio.ensure_future(_drain(s, e)) for s, e in zip(streams, reading, strict=True)
            ]
            await asyncio.gather(*(event.wait() for event in reading))
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            assert all(task.cancelled() for task in waiting)
            await _until(lambda: server.closed == 3)
        finally:
            await llm.aclose()


async def _until(condition: Any) -> None:
    """Wait (up to 5 s) until ``condition()`` holds: the server notices a closed stream a moment
    later."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def _drain(stream: AsyncIterator[LLMChunk], reading: asyncio.Event) -> None:
    """Read ``stream`` to its end; ``reading`` is set as it starts (the read is then waiting
    for the server, which is stalled)."""
    async with aclosing(stream):  # type: ignore[type-var]
        reading.set()
        async for _ in stream:
            pass


async def test_a_given_http_client_is_used() -> None:
    sent: list[str] = []

    async def note(request: httpx2.Request) -> None:
        sent.append(request.url.path)

    async with (
        FakeOpenAIServer(("text", ["ok"])) as server,
        httpx2.AsyncClient(event_hooks={"request": [note]}) as http,
    ):
        llm = OpenAILLM(LLMSettings(base_url=server.base_url, max_retries=0), http_client=http)
        try:
            assert "".join([c.text async for c in llm.stream(REQUEST)]) == "ok"
            assert sent == ["/v1/chat/completions"]
        finally:
            await llm.aclose()


# -- the transport (aiohttp under the SDK) -------------------------------------------------------


async def _unavailable(port: int, match: str) -> None:
    """The provider's stream from the server on ``port`` fails as ProviderUnavailable."""
    llm = OpenAILLM(LLMSettings(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0))
    try:
        with pytest.raises(ProviderUnavailable, match=match):
            await anext(llm.stream(REQUEST))
    finally:
        await llm.aclose()


async def test_an_unreachable_server_is_unavailable_not_a_timeout() -> None:
    await _unavailable(free_port(), "unreachable")  # nothing listens there


async def test_a_server_that_hangs_up_is_unavailable_not_a_timeout() -> None:
    async with FakeOpenAIServer(("hangup",)) as server:
        llm = provider(server)
        try:
            with pytest.raises(ProviderUnavailable, match="unreachable"):
                await anext(llm.stream(REQUEST))
            assert server.requests == 1
        finally:
            await llm.aclose()


async def test_an_answer_that_is_not_http_is_unavailable() -> None:
    """aiohttp passes its parser's error through the SDK unmapped: the provider maps it."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        await _unavailable(server.sockets[0].getsockname()[1], "broken response")
    finally:
        server.close()
        await server.wait_closed()


async def test_a_silent_server_times_out() -> None:
    async with FakeOpenAIServer(("silent",)) as server:
        llm = provider(server, timeout=0.3)
        try:
            with pytest.raises(ProviderTimeout):
                await anext(llm.stream(REQUEST))
        finally:
            await llm.aclose()


async def test_a_stream_the_server_cuts_is_unavailable_after_its_pieces() -> None:
    async with FakeOpenAIServer(("drop", ["par"])) as server:
        llm = provider(server)
        received: list[str] = []
        try:
            with pytest.raises(ProviderUnavailable):
                async for chunk in llm.stream(REQUEST):
                    received.append(chunk.text)
            assert received == ["par"]
        finally:
            await llm.aclose()


async def test_an_idle_connection_waits_for_the_next_turn() -> None:
    """The SDK's own client drops a connection idle for 5 s (aiohttp closes it within the
    next second): the next turn would pay a new TLS connection. The provider keeps it
    (``KEEPALIVE_SECONDS``)."""
    async with FakeOpenAIServer(("text", ["ok"])) as server:
        llm = provider(server)
        try:
            for pause in (0, 6.2):
                await asyncio.sleep(pause)
                assert "".join([chunk.text async for chunk in llm.stream(REQUEST)]) == "ok"
            assert (server.requests, server.connections) == (2, 1)
        finally:
            await llm.aclose()
