"""Local HTTP servers and bodies that play cloud services for tests: OpenAI's streamed
completion bodies (for respx), an OpenAI-compatible server that fails, hangs or stalls on cue,
and Deepgram's response shape."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

__all__ = [
    "FakeOpenAIServer",
    "deepgram_transcript",
    "openai_chunk",
    "openai_sse",
    "openai_text",
    "openai_tool_calls",
]


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


def deepgram_transcript(text: str) -> dict[str, Any]:
    """A Deepgram pre-recorded ``/v1/listen`` response body with ``text`` as the transcript."""
    alternative = {"transcript": text, "confidence": 0.9, "words": []}
    return {
        "metadata": {
            "request_id": "r",
            "sha256": "",
            "created": "2026-01-01T00:00:00Z",
            "duration": 1.0,
            "channels": 1,
            "models": [],
            "model_info": {},
        },
        "results": {"channels": [{"alternatives": [alternative]}]},
    }


class FakeOpenAIServer:
    """A local OpenAI-compatible ``/v1/chat/completions`` server that plays scripted behaviours.

    Queue behaviours with :meth:`push`; each request takes the next (the last one repeats):
    ``("text", [pieces])`` streams the pieces; ``("raw", sse_bytes)`` sends that body (see
    :func:`openai_tool_calls`); ``("status", code)`` answers that HTTP error;
    ``("silent",)`` sends the stream's headers and then nothing; ``("stall", [pieces])`` streams the
    pieces and then nothing; ``("drop", [pieces])`` streams the pieces and then cuts the
    connection (no end of stream); ``("hangup",)`` closes the connection before answering.
    ``requests`` counts the requests served; ``closed`` the streams whose client went away;
    ``connections`` the client connections they came on. Use
    ``async with FakeOpenAIServer() as server`` and ``server.base_url``. It runs on aiohttp:
    ``pip install 'parley[testing]'``.
    """

    def __init__(self, *behaviours: tuple[Any, ...]) -> None:
        self.behaviours: deque[tuple[Any, ...]] = deque(behaviours)
        self.requests = 0
        self.closed = 0
        self.peers: set[Any] = set()
        self.bodies: list[dict[str, Any]] = []
        self.base_url = ""
        self._runner: Any = None

    @property
    def connections(self) -> int:
        """How many client connections requests came on."""
        return len(self.peers)

    def push(self, *behaviours: tuple[Any, ...]) -> None:
        """Queue behaviours for the next requests."""
        self.behaviours.extend(behaviours)

    def _next(self) -> tuple[Any, ...]:
        if len(self.behaviours) > 1:
            return self.behaviours.popleft()
        return self.behaviours[0] if self.behaviours else ("text", ["ok"])

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        self.requests += 1
        self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        self.bodies.append(await request.json())
        behaviour = self._next()
        if behaviour[0] == "hangup" and request.transport is not None:
            request.transport.abort()
            return web.Response()  # never sent: the connection is gone
        if behaviour[0] == "status":
            error = {"error": {"message": f"scripted {behaviour[1]}", "type": "server_error"}}
            return web.json_response(error, status=behaviour[1])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            if behaviour[0] == "raw":
                await response.write(behaviour[1])
                await response.write_eof()
                return response
            if behaviour[0] == "text":
                if len(behaviour) > 2:  # ("text", pieces, seconds before the first byte)
                    await asyncio.sleep(behaviour[2])
                await response.write(openai_text(*behaviour[1]))
                await response.write_eof()
                return response
            if behaviour[0] in ("stall", "drop"):
                chunks = [openai_chunk({"role": "assistant", "content": ""})]
                chunks += [openai_chunk({"content": piece}) for piece in behaviour[1]]
                await response.write("".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode())
            if behaviour[0] == "drop" and request.transport is not None:
                await asyncio.sleep(0.05)  # the pieces reach the client first
                request.transport.abort()
                return response
            await asyncio.Event().wait()  # silent / stalled: until the client goes away
        except (asyncio.CancelledError, ConnectionError):
            self.closed += 1
            raise
        return response

    async def __aenter__(self) -> FakeOpenAIServer:
        try:
            from aiohttp import web
        except ImportError as exc:
            from parley.core.providers import MissingDependency

            raise MissingDependency("aiohttp", "testing") from exc

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()
