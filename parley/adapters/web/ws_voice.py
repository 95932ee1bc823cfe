"""Voice on the socket: live listening (microphone in), audio replies (speech out), barge-in.

``start_listening`` opens a live session with the engine's STT provider; binary client frames
are sent to it. Its results become ``speech_started``, ``transcription_update`` and
``transcription_finished`` frames; a finished utterance is queued as a turn, like a typed
``user_message``. Audio replies are on while listening, or as ``audio_settings`` says; each
reply is then spoken by the engine and its audio sent as tagged binary frames.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from parley.adapters.web.access import check_text
from parley.adapters.web.frames import FrameError, error_frame, output_format_json
from parley.adapters.web.settings import AUDIO_OUTPUT_FORMATS
from parley.core.listening import Heard, Utterances
from parley.core.providers import (
    LiveResult,
    LiveSession,
    LiveSTTProvider,
    LiveTranscript,
    ProviderError,
    SpeechStarted,
)
from parley.core.speech import SpeechOptions
from parley.server import ApiError

if TYPE_CHECKING:
    from parley.adapters.web.ws import WebSession

__all__ = ["INPUT_FORMATS", "Listening", "Voice"]

log = logging.getLogger(__name__)

INPUT_FORMATS = ("pcm16", "webm")
"""Microphone formats: ``pcm16`` (mono signed 16-bit little-endian), ``webm`` (MediaRecorder)."""

SAMPLE_RATES = (8000, 48000)
"""Lowest and highest ``sample_rate`` of ``pcm16`` input."""

STOP_TIMEOUT = 10.0
"""Seconds ``stop_listening`` waits for the provider's last results."""

CANCEL_TIMEOUT = 1.0
"""Seconds a closing socket gives the provider's session to close."""


class Listening:
    """One live STT session of a socket, and the task reading its results."""

    def __init__(
        self, voice: Voice, live: LiveSession, audio_format: str, sample_rate: int | None
    ) -> None:
        self.voice = voice
        self.live = live
        self.format = audio_format
        self.sample_rate = sample_rate
        self.utterances = Utterances()
        self.loop = asyncio.get_running_loop()
        self.bytes = 0
        """Audio bytes sent to the provider."""
        self.first_audio: float | None = None
        """When the first audio frame arrived (loop time)."""
        self.utterance_started: float | None = None
        self.speech_end: float | None = None
        """End of the utterance's last final words, in seconds into the stream."""
        self.stopping = False
        self.task = asyncio.create_task(self.read())

    @property
    def session(self) -> WebSession:
        return self.voice.session

    async def send(self, audio: bytes) -> None:
        """Pass microphone audio on; a failure ends the listening with an error frame."""
        if self.first_audio is None:
            self.first_audio = self.loop.time()
        self.bytes += len(audio)
        try:
            await self.live.send(audio)
        except ProviderError as exc:
            await self.voice.failed(self, exc)

    def position(self) -> float | None:
        """Seconds of audio streamed so far (raw PCM by its size, else by the clock)."""
        if self.format == "pcm16" and self.sample_rate:
            return self.bytes / 2 / self.sample_rate
        if self.first_audio is None:
            return None
        return self.loop.time() - self.first_audio

    async def read(self) -> None:
        """Turn the provider's results into frames and turns until the session ends."""
        try:
            async for result in self.live:
                await self.on_result(result)
        except ProviderError as exc:
            await self.voice.failed(self, exc)
            return
        except Exception as exc:
            log.exception("live transcription failed")
            await self.voice.failed(self, ProviderError(f"{type(exc).__name__}: {exc}"))
            return
        if self.voice.listening is not self:
            return  # failed meanwhile
        heard = self.utterances.flush()  # stopped mid-utterance: answer what was said
        if heard is not None:
            await self.heard(heard)
        if not self.stopping:  # the provider ended the session on its own
            await self.voice.ended(self, "closed")

    async def on_result(self, result: LiveResult) -> None:
        """One result: show it, let the user cut in, queue a finished utterance."""
        if self.utterance_started is None and isinstance(result, SpeechStarted | LiveTranscript):
            self.utterance_started = self.loop.time()
        if isinstance(result, SpeechStarted):
            await self.session.outbox.send({"type": "speech_started"})
            self.session.nudges.touch()
            await self.session.barge_in()
            return
        if (
            isinstance(result, LiveTranscript)
            and result.is_final
            and result.text.strip()
            and result.start is not None
        ):
            self.speech_end = result.start + (result.duration or 0.0)
        heard = self.utterances.add(result)
        if heard is not None:
            await self.heard(heard)

    async def heard(self, heard: Heard) -> None:
        """Show what the user is saying; answer a finished utterance."""
        session = self.session
        session.nudges.touch()
        if not heard.final:
            await session.outbox.send({"type": "transcription_update", "text": heard.text})
            await session.barge_in()
            return
        metadata = self.metadata()
        await session.outbox.send({"type": "transcription_finished", "text": heard.text})
        try:
            text = check_text(heard.text, session.web.settings, name="transcript")
            await session.queue_message(text, metadata)
        except FrameError as exc:
            await session.outbox.send(error_frame(exc.code, exc.message))
        except ApiError as exc:
            await session.outbox.send(error_frame(exc.code, exc.detail))

    def metadata(self) -> dict[str, Any]:
        """What the user message keeps about the utterance (and resets it)."""
        now = self.loop.time()
        audio: dict[str, Any] = {
            "format": self.format,
            "sample_rate": self.sample_rate,
            "live": True,
            "stt_provider": getattr(self.voice.session.engine.stt, "name", None),
        }
        metadata: dict[str, Any] = {"audio": audio}
        if self.utterance_started is not None:
            audio["utterance_ms"] = round((now - self.utterance_started) * 1000)
        position = self.position()
        if self.speech_end is not None and position is not None:
            # How long after the end of the speech the final transcript came.
            metadata["stt_ms"] = max(0, round((position - self.speech_end) * 1000))
        self.utterance_started = self.speech_end = None
        return metadata

    async def stop(self) -> None:
        """Close the session; wait (boundedly) for its last results to be handled."""
        self.stopping = True
        with suppress(ProviderError):
            await self.live.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await asyncio.shield(self.task)
        except TimeoutError:
            await self.cancel()

    async def cancel(self) -> None:
        """Drop the session at once (the socket closed): nobody waits for its last results."""
        self.stopping = True
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task
        with suppress(Exception):
            await asyncio.wait_for(self.live.close(), CANCEL_TIMEOUT)


class Voice:
    """A socket's voice state: the listening session and whether (and how) replies are spoken."""

    def __init__(self, session: WebSession) -> None:
        self.session = session
        self.listening: Listening | None = None
        self.enabled: bool | None = None
        """``audio_settings.enabled`` when the client sent it (it wins over listening)."""
        self.output_format = session.web.settings.audio_output_format

    @property
    def audio_on(self) -> bool:
        """Whether replies are spoken: as ``audio_settings`` says, else while listening."""
        if self.session.engine.tts is None:
            return False
        return self.enabled if self.enabled is not None else self.listening is not None

    def speech(self) -> SpeechOptions | None:
        """Speech options of the next reply (None: text only)."""
        return SpeechOptions(output_format=self.output_format) if self.audio_on else None

    async def announce(self) -> None:
        """``audio_format``: whether replies are spoken, and in which format."""
        await self.session.outbox.send(
            {
                "type": "audio_format",
                "enabled": self.audio_on,
                **output_format_json(self.output_format),
            }
        )

    # -- frames --------------------------------------------------------------------------------

    async def on_start_listening(self, data: dict[str, Any]) -> None:
        """Open a live STT session for the microphone audio that follows."""
        if self.listening is not None:
            raise FrameError("already_listening", "already listening; send stop_listening first")
        audio_format = data.get("format")
        if audio_format is None:
            audio_format = "pcm16"
        if audio_format not in INPUT_FORMATS:
            raise FrameError("invalid_frame", "data.format must be pcm16 or webm")
        sample_rate = data.get("sample_rate")
        if sample_rate is None:
            sample_rate = 16000
        low, high = SAMPLE_RATES
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int):
            raise FrameError("invalid_frame", "data.sample_rate must be an integer")
        if not low <= sample_rate <= high:
            raise FrameError("invalid_frame", f"data.sample_rate must be {low} to {high}")
        stt = self.session.engine.stt
        if not isinstance(stt, LiveSTTProvider):
            raise FrameError("stt_unavailable", "live speech recognition is not available")
        rate = sample_rate if audio_format == "pcm16" else None
        conversation = self.session.conversation
        language = conversation.language if conversation else None
        try:
            live = await stt.live(encoding=audio_format, sample_rate=rate, language=language)
        except ProviderError as exc:
            await self.session.outbox.send(
                error_frame("stt_failed", exc.message, retryable=exc.retryable)
            )
            return
        self.listening = Listening(self, live, audio_format, rate)
        await self.session.outbox.send(
            {"type": "listening_started", "format": audio_format, "sample_rate": rate}
        )
        await self.announce()

    async def on_stop_listening(self, data: dict[str, Any]) -> None:
        """Close the live session; an unfinished utterance is answered."""
        listening = self.listening
        if listening is None:
            raise FrameError("not_listening", "not listening")
        await listening.stop()
        await self.ended(listening, "stopped")

    async def on_audio_settings(self, data: dict[str, Any]) -> None:
        """Turn audio replies on or off, choose their format; answered by ``audio_format``."""
        enabled = data.get("enabled")
        if not isinstance(enabled, bool):
            raise FrameError("invalid_frame", "data.enabled is required (true or false)")
        output_format = data.get("output_format")
        if output_format is not None and output_format not in AUDIO_OUTPUT_FORMATS:
            raise FrameError(
                "invalid_audio_settings",
                f"data.output_format must be one of {', '.join(AUDIO_OUTPUT_FORMATS)}",
            )
        if enabled and self.session.engine.tts is None:
            raise FrameError("tts_unavailable", "spoken replies are not available on this server")
        self.enabled = enabled
        if output_format is not None:
            self.output_format = output_format
        await self.announce()

    async def on_binary(self, data: bytes) -> None:
        """Microphone audio: to the live session."""
        if self.listening is None:
            raise FrameError("not_listening", "binary audio needs start_listening")
        limit = self.session.web.settings.max_body_bytes
        if len(data) > limit:
            raise FrameError("frame_too_large", f"frames are limited to {limit} bytes")
        await self.listening.send(data)

    # -- endings -------------------------------------------------------------------------------

    async def failed(self, listening: Listening, exc: ProviderError) -> None:
        """The provider failed: error frame, then the listening ends."""
        if self.listening is not listening:
            return
        await self.session.outbox.send(
            error_frame("stt_failed", exc.message, retryable=exc.retryable)
        )
        listening.stopping = True
        with suppress(Exception):
            await listening.live.close()
        await self.ended(listening, "error")

    async def ended(self, listening: Listening, reason: str) -> None:
        """Forget the session; ``listening_stopped`` and the audio format (spoken replies may
        have gone off with it)."""
        if self.listening is not listening:
            return
        self.listening = None
        await self.session.outbox.send({"type": "listening_stopped", "reason": reason})
        await self.announce()

    async def close(self) -> None:
        """The socket closed: drop the session."""
        listening, self.listening = self.listening, None
        if listening is not None:
            await listening.cancel()
