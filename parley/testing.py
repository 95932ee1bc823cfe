"""Fakes for tests and benchmarks: providers that play scripted parts (never our own code)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from parley.core.providers import LLMChunk, LLMRequest, ProviderError, ToolCallDelta, Usage

__all__ = [
    "ScriptedLLM",
    "Step",
    "collect",
    "openai_chunk",
    "openai_sse",
    "openai_text",
    "openai_tool_calls",
    "running_server",
    "tool_call",
]


@dataclass
class Step:
    """One scripted LLM call: text pieces, then tool calls, then optionally an error."""

    pieces: list[str] = field(default_factory=list)
    error: ProviderError | None = None
    delay: float = 0.0
    usage: Usage | None = None
    tool_calls: list[ToolCallDelta] = field(default_factory=list)


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
        if step.tool_calls:
            yield LLMChunk(tool_calls=tuple(step.tool_calls), finish_reason="tool_calls")
        if step.error is not None:
            raise step.error
        text = "".join(step.pieces)
        yield LLMChunk(usage=step.usage or Usage(len(request.messages), len(text.split())))


def tool_call(
    name: str, arguments: dict[str, Any] | str = "{}", *, index: int = 0
) -> ToolCallDelta:
    """A complete tool call as one fragment (for :class:`Step`)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCallDelta(index=index, id=f"call_{name}_{index}", name=name, arguments=args)


# -- OpenAI-compatible SSE bodies (for respx) --------------------------------------------------


def openai_chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }


def openai_sse(
    *chunks: dict[str, Any], prompt_tokens: int = 5, completion_tokens: int = 3
) -> bytes:
    """An SSE body: each chunk as ``data: {json}``, a usage chunk, then ``[DONE]``."""
    usage = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "test-model",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    lines = [f"data: {json.dumps(c)}\n\n" for c in (*chunks, usage)]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


def openai_text(*pieces: str) -> bytes:
    """A streamed text completion of ``pieces``."""
    chunks = [openai_chunk({"role": "assistant", "content": ""})]
    chunks += [openai_chunk({"content": piece}) for piece in pieces]
    return openai_sse(*chunks, openai_chunk({}, "stop"))


def openai_tool_calls(*calls: tuple[str, dict[str, Any]], text: str = "", split: int = 2) -> bytes:
    """A streamed completion asking for ``calls`` ((name, arguments) pairs), after ``text``.

    Each call's arguments arrive in ``split`` fragments, as OpenAI streams them.
    """
    chunks = [openai_chunk({"role": "assistant", "content": text or None})]
    for index, (name, arguments) in enumerate(calls):
        head = {"index": index, "id": f"call_{index}_{name}", "type": "function"}
        head["function"] = {"name": name, "arguments": ""}
        chunks.append(openai_chunk({"tool_calls": [head]}))
        raw = json.dumps(arguments)
        size = max(1, -(-len(raw) // split))
        for start in range(0, len(raw), size):
            part = {"index": index, "function": {"arguments": raw[start : start + size]}}
            chunks.append(openai_chunk({"tool_calls": [part]}))
    return openai_sse(*chunks, openai_chunk({}, "tool_calls"))


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
