"""A live Deepgram transcription session behind Parley's :class:`~parley.core.providers.LiveSession`.

A reader task turns the socket's messages into core results (``Results`` -> LiveTranscript,
``SpeechStarted``, ``UtteranceEnd``; ``Metadata`` is dropped) and queues them for the iterator.
A keep-alive task sends ``KeepAlive`` whenever no audio was sent for ``keepalive_interval``
seconds, so Deepgram does not close an idle session after 10 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, suppress
from typing import Any

from parley.core.providers import (
    LiveResult,
    LiveTranscript,
    ProviderError,
    SpeechStarted,
    UtteranceEnd,
)

__all__ = ["DeepgramLiveSession"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0
"""Seconds :meth:`DeepgramLiveSession.close` waits for the last results after CloseStream."""


class _Closed:
    """End of the results."""


_CLOSED = _Closed()


class DeepgramLiveSession:
    """One open ``/v1/listen`` WebSocket: ``send`` audio, iterate results, ``close``."""

    def __init__(
        self,
        socket: Any,
        stack: AsyncExitStack,
        *,
        keepalive_interval: float,
        errors: Callable[[BaseException], ProviderError],
    ) -> None:
        self._socket = socket
        self._stack = stack
        self._interval = keepalive_interval
        self._errors = errors
        self._results: asyncio.Queue[LiveResult | _Closed] = asyncio.Queue()
        self._error: ProviderError | None = None
        self._closing = False
        self._closed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._last_sent = self._loop.time()
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the reader and keep-alive tasks (done by ``DeepgramSTT.live``)."""
        self._reader = asyncio.create_task(self._read())
        self._keepalive = asyncio.create_task(self._keep_alive())

    # -- sending ---------------------------------------------------------------------------

    async def send(self, audio: bytes) -> None:
        """Send a piece of audio; ProviderError when the session is closed or broken."""
        if not audio:
            return
        await self._send(self._socket.send_media, audio)

    async def finalize(self) -> None:
        """Ask Deepgram to finalise what it has heard so far (results follow, marked final)."""
        await self._send(self._socket.send_finalize)

    async def _send(self, method: Callable[..., Any], *args: Any) -> None:
        if self._closing:
            raise self._error or ProviderError("the live session is closed", provider="deepgram")
        try:
            await method(*args)
        except Exception as exc:
            raise self._errors(exc) from exc
        self._last_sent = self._loop.time()

    async def _keep_alive(self) -> None:
        while not self._closing:
            due = self._last_sent + self._interval - self._loop.time()
            if due > 0:
                await asyncio.sleep(due)
                continue
            try:
                await self._socket.send_keep_alive()
            except Exception:
                return  # the reader reports the broken connection
            self._last_sent = self._loop.time()

    # -- receiving -------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for message in self._socket:
                result = _convert(message)
                if isinstance(result, ProviderError):
                    self._error = result
                    return
                if result is not None:
                    self._results.put_nowait(result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closing:
                self._error = self._errors(exc)
        finally:
            self._results.put_nowait(_CLOSED)

    async def results(self) -> AsyncIterator[LiveResult]:
        """Results as they arrive; ends after close, raises ProviderError if the session broke."""
        while True:
            item = await self._results.get()
            if isinstance(item, _Closed):
                self._results.put_nowait(item)  # later iterations end too
                if self._error is not None:
                    raise self._error
                return
            yield item

    def __aiter__(self) -> AsyncIterator[LiveResult]:
        return self.results()

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Send CloseStream, wait for the last results (up to CLOSE_TIMEOUT s), close the socket."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            if self._keepalive is not None:
                self._keepalive.cancel()
            with suppress(Exception):
                await self._socket.send_close_stream()
            if self._reader is not None:
                done, _ = await asyncio.wait({self._reader}, timeout=CLOSE_TIMEOUT)
                if not done:
                    log.warning("Deepgram did not close the live session in time")
        finally:
            with suppress(Exception):
                await self._stack.aclose()
            tasks = [t for t in (self._reader, self._keepalive) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._closed.set()

    async def __aenter__(self) -> DeepgramLiveSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _convert(message: Any) -> LiveResult | ProviderError | None:
    """A socket message as a core result, a ProviderError for ``Error``, None to drop it."""
    kind = getattr(message, "type", None)
    if kind == "Results":
        alternatives = getattr(message.channel, "alternatives", None) or []
        best = alternatives[0] if alternatives else None
        languages = getattr(best, "languages", None) or []
        return LiveTranscript(
            text=(best.transcript or "") if best else "",
            is_final=bool(message.is_final),
            speech_final=bool(message.speech_final),
            confidence=getattr(best, "confidence", None),
            start=message.start,
            duration=message.duration,
            language=languages[0] if languages else None,
        )
    if kind == "SpeechStarted":
        return SpeechStarted(at=getattr(message, "timestamp", None))
    if kind == "UtteranceEnd":
        return UtteranceEnd(last_word_end=getattr(message, "last_word_end", None))
    if kind == "Error":
        description = getattr(message, "description", None) or getattr(message, "message", "")
        return ProviderError(f"Deepgram live error: {description}", provider="deepgram")
    return None
