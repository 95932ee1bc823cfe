"""The openai provider's SDK clients: filled in order (``REQUESTS_PER_CLIENT`` streams each),
each stream's place given back however it ends. Against a real local server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx2
import pytest

from parley.core.config import LLMSettings, ModelSettings
from parley.core.providers import LLMChunk, LLMRequest, ProviderError
from parley.fake_services import FakeOpenAIServer
from parley.plugins.openai.llm import REQUESTS_PER_CLIENT, OpenAILLM

REQUEST = LLMRequest(messages=[{"role": "user", "content": "Hi"}], model=ModelSettings())


def provider(server: FakeOpenAIServer, **values: Any) -> OpenAILLM:
    """The provider on ``server``, without the SDK's retries."""
    return OpenAILLM(LLMSettings(base_url=server.base_url, max_retries=0, **values))


async def held(llm: OpenAILLM, count: int) -> list[AsyncIterator[LLMChunk]]:
    """``count`` streams, each past its first chunk (its request in flight, the server stalled)."""
    streams = [llm.stream(REQUEST) for _ in range(count)]
    firsts = await asyncio.gather(*(anext(stream) for stream in streams))
    assert all(first.text == "hi" for first in firsts)
    return streams


async def test_sequential_requests_share_one_client_and_its_connection() -> None:
    async with FakeOpenAIServer(("text", ["Hello", " there"])) as server:
        llm = provider(server)
        try:
            for _ in range(5):
                chunks = [chunk async for chunk in llm.stream(REQUEST)]
                assert "".join(chunk.text for chunk in chunks) == "Hello there"
            assert llm.in_flight == (0,)
            assert (server.requests, server.connections) == (5, 1)
        finally:
            await llm.aclose()


async def test_a_full_client_overflows_to_the_next_and_places_come_back() -> None:
    async with FakeOpenAIServer(("stall", ["hi"])) as server:
        llm = provider(server)
        try:
            streams = await held(llm, REQUESTS_PER_CLIENT + 1)
            assert llm.in_flight == (REQUESTS_PER_CLIENT, 1)
            await streams.pop().aclose()  # the overflow's place is given back
            assert llm.in_flight == (REQUESTS_PER_CLIENT, 0)
            await streams.pop().aclose()  # now the first client has room again
            streams += await held(llm, 1)
            assert llm.in_flight == (REQUESTS_PER_CLIENT, 0)
            for stream in streams:
                await stream.aclose()
            assert llm.in_flight == (0, 0)
        finally:
            await llm.aclose()


async def test_failed_and_cancelled_streams_give_their_places_back() -> None:
    async with FakeOpenAIServer(("status", 500)) as server:
        llm = provider(server)
        try:
            for _ in range(REQUESTS_PER_CLIENT + 2):
                with pytest.raises(ProviderError):
                    await anext(llm.stream(REQUEST))
            assert llm.in_flight == (0,)
            server.behaviours.clear()
            server.push(("stall", ["hi"]))  # cancelled while waiting for the next chunk
            reading = [asyncio.Event() for _ in range(3)]
            streams = await held(llm, 3)
            waiting = [
                asyncio.ensure_future(_drain(s, e)) for s, e in zip(streams, reading, strict=True)
            ]
            await asyncio.gather(*(event.wait() for event in reading))
            assert llm.in_flight == (3,)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            assert all(task.cancelled() for task in waiting)
            assert llm.in_flight == (0,)
        finally:
            await llm.aclose()


async def _drain(stream: AsyncIterator[LLMChunk], reading: asyncio.Event) -> None:
    """Read ``stream`` to its end; ``reading`` is set as it starts (the read is then waiting
    for the server, which is stalled)."""
    async with aclosing(stream):  # type: ignore[type-var]
        reading.set()
        async for _ in stream:
            pass


async def test_a_given_http_client_is_the_only_client() -> None:
    async with FakeOpenAIServer(("stall", ["hi"])) as server, httpx2.AsyncClient() as http:
        llm = OpenAILLM(LLMSettings(base_url=server.base_url, max_retries=0), http_client=http)
        try:
            streams = await held(llm, REQUESTS_PER_CLIENT + 1)
            assert llm.in_flight == (REQUESTS_PER_CLIENT + 1,)
            for stream in streams:
                await stream.aclose()
            assert llm.in_flight == (0,)
        finally:
            await llm.aclose()
