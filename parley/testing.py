"""Fakes for tests and benchmarks: providers that play scripted parts (never our own code)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from parley.core.providers import LLMChunk, LLMRequest, ProviderError, Usage

__all__ = ["ScriptedLLM", "Step", "collect", "running_server"]


@dataclass
class Step:
    """One scripted LLM call: text pieces, then optionally an error (raised after the pieces)."""

    pieces: list[str] = field(default_factory=list)
    error: ProviderError | None = None
    delay: float = 0.0
    usage: Usage | None = None


class ScriptedLLM:
    """An LLM provider that answers from a queue of steps and records every request.

    With an empty queue it answers ``"ok"``. ``gate`` (an Event), when set, makes every call wait
    for it before the first piece (to hold a reply "in flight" in a test).
    """

    name = "scripted"

    def __init__(self, steps: Iterable[Step | str] = ()) -> None:
        self.steps: deque[Step] = deque()
        self.requests: list[LLMRequest] = []
        self.gate: asyncio.Event | None = None
        for step in steps:
            self.push(step)

    def push(self, step: Step | str) -> None:
        """Queue a step; a plain string is streamed word by word."""
        if isinstance(step, str):
            words = step.split(" ")
            step = Step([w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)])
        self.steps.append(step)

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Play the next step."""
        self.requests.append(request)
        step = self.steps.popleft() if self.steps else Step(["ok"])
        if self.gate is not None:
            await self.gate.wait()
        for piece in step.pieces:
            if step.delay:
                await asyncio.sleep(step.delay)
            yield LLMChunk(text=piece)
        if step.error is not None:
            raise step.error
        text = "".join(step.pieces)
        yield LLMChunk(usage=step.usage or Usage(len(request.messages), len(text.split())))


async def collect(events: AsyncIterable[Any]) -> list[Any]:
    """Every event of a turn, in order."""
    return [event async for event in events]


@asynccontextmanager
async def running_server(app: Any, *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in this event loop; yield its base URL.

    The app's lifespan (database, runtime, adapters) runs in the test's own loop, so the test body
    can query the store directly.
    """
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            if task.done():
                task.result()
            raise RuntimeError("the test server did not start")
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
