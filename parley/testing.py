"""Fakes for tests and benchmarks: providers that play scripted parts (never our own code)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from parley.core.providers import (
    LiveResult,
    LLMChunk,
    LLMRequest,
    ProviderError,
    ToolCallDelta,
    Transcription,
    Usage,
)

__all__ = [
    "FakeLiveSTT",
    "FakeLiveSession",
    "FakeSTT",
    "ScriptedLLM",
    "Step",
    "ToneTTS",
    "collect",
    "install_distribution",
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
async def running_server(
    app: Any, *, host: str = "127.0.0.1", port: int | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in this event loop; yield its base URL.

    The app's lifespan (database, runtime, adapters) runs in the test's own loop, so the test body
    can query the store directly. Pass ``port`` to serve on a known one (a restart on the same
    address).
    """
    import socket

    import uvicorn

    if port is None:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    from parley.adapters.web.settings import uvicorn_options

    runtime = getattr(app.state, "runtime", None)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
        **(uvicorn_options(runtime.settings) if runtime is not None else {}),
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


class FakeSTT:
    """A speech-to-text provider that hears ``text`` (or the next of ``texts``) in any audio."""

    name = "fake-stt"

    def __init__(self, text: str = "hello", *, error: ProviderError | None = None) -> None:
        self.text = text
        self.error = error
        self.calls: list[tuple[bytes, str | None]] = []

    async def transcribe(
        self, audio: bytes, *, mime_type: str | None = None, language: str | None = None
    ) -> Transcription:
        """Record the call; return the scripted text or raise the scripted error."""
        self.calls.append((audio, mime_type))
        if self.error is not None:
            raise self.error
        return Transcription(self.text, language=language)


class FakeLiveSession:
    """A live session that plays ``script`` once ``after_bytes`` of audio have been sent.

    Records the audio, ``finalized`` and ``closed``. ``fail`` makes the iterator raise it after
    the script (a connection lost).
    """

    def __init__(
        self,
        script: Iterable[LiveResult],
        *,
        after_bytes: int = 1,
        fail: ProviderError | None = None,
        encoding: str | None = None,
        sample_rate: int | None = None,
        language: str | None = None,
    ) -> None:
        self.script = list(script)
        self.after_bytes = after_bytes
        self.fail = fail
        self.encoding, self.sample_rate, self.language = encoding, sample_rate, language
        self.audio = bytearray()
        self.finalized = 0
        self.closed = False
        self._queue: asyncio.Queue[LiveResult | None] = asyncio.Queue()
        self._played = False

    async def send(self, audio: bytes) -> None:
        """Take audio; play the script once enough has come."""
        if self.closed:
            raise ProviderError("the live session is closed", provider="fake-live")
        self.audio += audio
        if not self._played and len(self.audio) >= self.after_bytes:
            self._played = True
            for result in self.script:
                self._queue.put_nowait(result)

    def push(self, *results: LiveResult) -> None:
        """Deliver ``results`` now, as if the provider had just sent them."""
        for result in results:
            self._queue.put_nowait(result)

    def drop(self, error: ProviderError) -> None:
        """Lose the connection: the iterator raises ``error`` after the results delivered so far."""
        self.fail = error
        self.closed = True
        self._queue.put_nowait(None)

    async def finalize(self) -> None:
        """Count the call."""
        self.finalized += 1

    async def close(self) -> None:
        """End the results."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def _results(self) -> AsyncIterator[LiveResult]:
        while (result := await self._queue.get()) is not None:
            yield result
        self._queue.put_nowait(None)
        if self.fail is not None:
            raise self.fail

    def __aiter__(self) -> AsyncIterator[LiveResult]:
        return self._results()

    async def __aenter__(self) -> FakeLiveSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class FakeLiveSTT(FakeSTT):
    """FakeSTT that also opens live sessions playing ``script`` (see :class:`FakeLiveSession`).

    ``sessions`` holds every session opened; ``open_error`` makes ``live()`` raise.
    """

    name = "fake-live-stt"

    def __init__(
        self,
        script: Iterable[LiveResult] = (),
        *,
        text: str = "hello",
        after_bytes: int = 1,
        open_error: ProviderError | None = None,
    ) -> None:
        super().__init__(text)
        self.script = list(script)
        self.after_bytes = after_bytes
        self.open_error = open_error
        self.sessions: list[FakeLiveSession] = []

    async def live(
        self,
        *,
        encoding: str | None = "pcm16",
        sample_rate: int | None = 16000,
        language: str | None = None,
    ) -> FakeLiveSession:
        """Open a scripted session."""
        if self.open_error is not None:
            raise self.open_error
        session = FakeLiveSession(
            self.script,
            after_bytes=self.after_bytes,
            encoding=encoding,
            sample_rate=sample_rate,
            language=language,
        )
        self.sessions.append(session)
        return session


class ToneTTS:
    """A text-to-speech provider that speaks a real sine tone: 50 ms of PCM16 per word.

    Supports the raw ``pcm_<rate>`` output formats; records every request.
    """

    name = "tone-tts"

    def __init__(self, *, error: Exception | None = None) -> None:
        self.error = error
        self.requests: list[tuple[str, str | None, str | None]] = []

    async def synthesize(
        self, text: str, *, voice: str | None = None, output_format: str | None = None
    ) -> AsyncIterator[bytes]:
        """Yield one chunk of tone per word."""
        import math
        import struct

        self.requests.append((text, voice, output_format))
        if self.error is not None:
            raise self.error
        fmt = output_format or "pcm_16000"
        if not fmt.startswith("pcm_"):
            raise ValueError(f"ToneTTS speaks pcm_<rate> only, not {fmt}")
        rate = int(fmt.split("_")[1])
        n = rate // 20
        tone = struct.pack(
            f"<{n}h", *(int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n))
        )
        for _ in text.split():
            await asyncio.sleep(0)
            yield tone


def install_distribution(source: Any, target: Any) -> None:
    """Install the distribution at ``source`` into the folder ``target`` (for ``PYTHONPATH``).

    It is built from a copy, so the build leaves nothing (``build/``, ``*.egg-info``) in the
    source tree. Entry points of the installed distribution are then found through ``target``.
    """
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / Path(source).name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--target", str(target), str(copy)],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
