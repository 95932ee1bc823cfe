"""A live transcription session on the local Whisper model, behind Parley's LiveSession.

Raw PCM16 is cut into utterances by the Silero voice activity detector: a few windows of speech
yield :class:`SpeechStarted` (what barge-in listens for); ``local.stt.silence_ms`` of silence
(or ``max_utterance`` seconds of speech) ends the utterance, which is transcribed in a worker
thread and yielded as one final, ``speech_final`` :class:`LiveTranscript`. Containers (WebM,
OGG) cannot be cut while they stream: their audio is transcribed when the session is finalised
or closed. One worker task handles audio, ``finalize`` and ``close`` in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from parley.audio import AudioError, decode_to_pcm16
from parley.core.providers import (
    LiveResult,
    LiveTranscript,
    ProviderError,
    SpeechStarted,
    Transcription,
)
from parley.plugins.local.settings import LocalSTTSettings

__all__ = ["Transcriber", "VoiceActivity", "WhisperLiveSession"]

RATE = 16000
WINDOW = 512
"""Samples per voice-activity window (32 ms at 16 kHz)."""
WINDOW_SECONDS = WINDOW / RATE
START_WINDOWS = 3
"""Consecutive speech windows (about 0.1 s) that start an utterance."""
PREROLL_WINDOWS = 10
"""Windows kept before speech starts, so the first syllable is not cut."""
QUEUED = 100
"""Pieces of audio waiting for the worker before ``send`` waits (back-pressure on the socket)."""
MAX_BUFFERED = 20 * 1024 * 1024
"""Bytes of container audio kept before the session refuses more."""


class VoiceActivity(Protocol):
    """The voice activity detector of the loaded model (``WhisperEngine``)."""

    def speech_probabilities(self, pcm: bytes) -> list[float]:
        """Speech probability of each 512-sample window of 16 kHz PCM16 (blocks)."""
        ...


class Transcriber(Protocol):
    """What a live session uses of the local STT provider (``stt.WhisperSTT``)."""

    name: str
    settings: LocalSTTSettings
    engine: VoiceActivity

    async def transcribe_pcm(self, pcm: bytes, *, language: str | None = None) -> Transcription:
        """Transcribe mono PCM16 at 16 kHz."""
        ...


class _Closed:
    pass


_CLOSED = _Closed()


class WhisperLiveSession:
    """``send`` audio, iterate results, ``finalize``, ``close``."""

    def __init__(
        self, stt: Transcriber, *, encoding: str | None, sample_rate: int, language: str | None
    ) -> None:
        self.stt = stt
        self.pcm = encoding == "pcm16"
        self.sample_rate = sample_rate
        self.language = language
        self.silence_windows = max(1, round(stt.settings.silence_ms / 1000 / WINDOW_SECONDS))
        self.max_windows = round(stt.settings.max_utterance / WINDOW_SECONDS)
        self._commands: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(QUEUED)
        self._results: asyncio.Queue[LiveResult | _Closed] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._error: ProviderError | None = None
        self._closing = False
        # Voice activity state (PCM mode), in 16 kHz samples.
        self._pending = bytearray()
        self._preroll: list[bytes] = []
        self._utterance = bytearray()
        self._speaking = False
        self._run = 0
        self._silence = 0
        self._windows = 0
        self._start = 0.0
        self._last_speech = 0.0
        self._raw = bytearray()
        self._consumed = 0

    def start(self) -> None:
        """Start the worker (done by ``WhisperSTT.live``)."""
        self._worker = asyncio.create_task(self._work(), name="whisper-live")

    # -- the LiveSession protocol ----------------------------------------------------------

    async def send(self, audio: bytes) -> None:
        """Queue a piece of audio (waits while the worker is far behind); ProviderError when the
        session is closed or broken."""
        if self._error is not None:
            raise self._error
        if self._closing:
            raise ProviderError("the live session is closed", provider=self.stt.name)
        if audio:
            await self._commands.put(("audio", bytes(audio)))

    async def finalize(self) -> None:
        """Transcribe what was heard so far (the session stays open)."""
        if not self._closing:
            await self._commands.put(("finalize", b""))

    async def close(self) -> None:
        """Transcribe what is left, then end the results. Safe to call twice."""
        if not self._closing:
            self._closing = True
            await self._commands.put(("close", b""))
        if self._worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._worker)

    async def __aiter__(self) -> AsyncIterator[LiveResult]:
        while True:
            result = await self._results.get()
            if isinstance(result, _Closed):
                if self._error is not None:
                    raise self._error
                return
            yield result

    async def __aenter__(self) -> WhisperLiveSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the worker ------------------------------------------------------------------------

    async def _work(self) -> None:
        try:
            while True:
                command, audio = await self._commands.get()
                if command == "audio":
                    await (self._hear(audio) if self.pcm else self._keep(audio))
                elif command == "finalize":
                    await self._flush()
                else:
                    await self._flush()
                    return
        except ProviderError as exc:
            self._error = exc
        except Exception as exc:  # a broken model must end the session, not hang it
            self._error = ProviderError(f"live transcription failed: {exc}", provider=self.stt.name)
        finally:
            self._results.put_nowait(_CLOSED)
            while not self._commands.empty():  # a sender waiting for room must not wait forever
                self._commands.get_nowait()

    async def _keep(self, audio: bytes) -> None:
        if len(self._raw) + len(audio) > MAX_BUFFERED:
            raise ProviderError("too much audio without a pause", provider=self.stt.name)
        self._raw += audio

    async def _hear(self, audio: bytes) -> None:
        if self.sample_rate != RATE:
            try:
                audio = decode_to_pcm16(
                    audio, sample_rate=RATE, source_format=f"pcm_{self.sample_rate}"
                ).pcm
            except AudioError:
                return
        self._pending += audio
        usable = len(self._pending) - len(self._pending) % (WINDOW * 2)
        if not usable:
            return
        chunk = bytes(self._pending[:usable])
        del self._pending[:usable]
        probabilities = await asyncio.to_thread(self.stt.engine.speech_probabilities, chunk)
        threshold = self.stt.settings.vad_threshold
        for index, probability in enumerate(probabilities):
            window = chunk[index * WINDOW * 2 : (index + 1) * WINDOW * 2]
            await self._window(window, probability >= threshold)

    async def _window(self, window: bytes, speech: bool) -> None:
        self._windows += 1
        now = self._windows * WINDOW_SECONDS
        if not self._speaking:
            self._preroll.append(window)
            del self._preroll[:-PREROLL_WINDOWS]
            self._run = self._run + 1 if speech else 0
            if self._run >= START_WINDOWS:
                self._speaking = True
                self._utterance = bytearray(b"".join(self._preroll))
                self._start = now - len(self._preroll) * WINDOW_SECONDS
                self._last_speech = now
                self._silence = 0
                self._results.put_nowait(
                    SpeechStarted(at=round(now - START_WINDOWS * WINDOW_SECONDS, 3))
                )
            return
        self._utterance += window
        if speech:
            self._silence = 0
            self._last_speech = now
        else:
            self._silence += 1
        too_long = len(self._utterance) >= self.max_windows * WINDOW * 2
        if self._silence >= self.silence_windows or too_long:
            await self._flush()

    async def _flush(self) -> None:
        """Transcribe the utterance in progress (or the container audio kept) and yield it."""
        if self.pcm:
            if not self._speaking:
                return
            pcm, start = bytes(self._utterance), self._start
            duration = max(0.0, self._last_speech - start)
            self._speaking, self._run, self._utterance, self._preroll = False, 0, bytearray(), []
        else:
            # A container's later pieces need its header: decode all of it, keep the new part.
            if not self._raw:
                return
            raw = bytes(self._raw)
            try:
                decoded = await asyncio.to_thread(decode_to_pcm16, raw, sample_rate=RATE)
            except AudioError:
                return
            pcm = decoded.pcm[self._consumed * 2 :]
            start, duration = self._consumed / RATE, len(pcm) / 2 / RATE
            self._consumed = len(decoded.pcm) // 2
            if not pcm:
                return
        result = await self.stt.transcribe_pcm(pcm, language=self.language)
        if result.text:
            self._results.put_nowait(
                LiveTranscript(
                    result.text,
                    is_final=True,
                    speech_final=True,
                    start=round(start, 3),
                    duration=round(duration, 3),
                    language=result.language,
                )
            )
