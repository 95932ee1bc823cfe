"""Fake providers for tests and benchmarks: they play scripted parts (never our own code).

:class:`ScriptedLLM` answers from a queue of :class:`Step` s, :class:`FakeSTT` and
:class:`FakeLiveSTT` hear scripted words, :class:`ToneTTS` speaks a real sine tone. Import them
from :mod:`parley.testing`.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
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
