"""Live speech-to-text in a live conversation: microphone audio in, utterances out.

:meth:`LiveConversation.listen <parley.core.conversation.LiveConversation.listen>` opens a
session with the engine's live STT provider and returns a :class:`Listening`. The transport
pushes audio with :meth:`Listening.send`; what the provider recognises comes back to it through
its :class:`Hearer` (interim text as the user speaks, a finished utterance with its metadata),
while the conversation's silence clock starts over and barge-in cuts a spoken reply short.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any, Protocol

from parley.core.conversation_commands import ListeningUnavailable
from parley.core.inbound import Inbound
from parley.core.listening import Heard, Utterances
from parley.core.providers import (
    LiveResult,
    LiveSession,
    LiveSTTProvider,
    LiveTranscript,
    ProviderError,
    SpeechStarted,
)

__all__ = [
    "CANCEL_TIMEOUT",
    "STOP_TIMEOUT",
    "Hearer",
    "Listening",
    "ListeningOwner",
    "heard_live",
]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
"""Seconds :meth:`Listening.stop` waits for the provider's last results."""

CANCEL_TIMEOUT = 1.0
"""Seconds :meth:`Listening.cancel` gives the provider's session to close."""


def heard_live(inbound: Inbound) -> bool:
    """Whether ``inbound`` is an utterance transcribed live (its metadata from
    :meth:`Listening.metadata`, no recording): the runtime fires ``transcribed`` when it becomes
    a turn (a recording is transcribed, and hooked, by the engine's turn)."""
    audio = inbound.metadata.get("audio")
    return inbound.audio is None and isinstance(audio, dict) and audio.get("live") is True


class Hearer(Protocol):
    """The transport's side of a listening session (a WebSocket renders these as frames)."""

    async def speech_started(self, listening: Listening) -> None:
        """The provider detected the start of speech."""
        ...

    async def heard(self, listening: Listening, heard: Heard, metadata: dict[str, Any]) -> None:
        """The utterance so far (``heard.final`` False) or a finished one, with what its user
        message should keep (``metadata``: empty unless final)."""
        ...

    async def failed(self, listening: Listening, exc: ProviderError) -> None:
        """The provider failed; the session is over."""
        ...

    async def closed(self, listening: Listening) -> None:
        """The provider ended the session on its own."""
        ...


class ListeningOwner(Protocol):
    """What a session needs from its conversation."""

    def touch(self) -> None:
        """The user did something: the silence clock starts over."""
        ...

    async def barge_in(self) -> None:
        """The user cut in: interrupt a spoken reply when barge-in applies."""
        ...


class Listening:
    """One live STT session and the task reading its results."""

    def __init__(
        self,
        owner: ListeningOwner,
        hearer: Hearer,
        live: LiveSession,
        audio_format: str,
        sample_rate: int | None,
        *,
        provider: str | None = None,
    ) -> None:
        self.owner = owner
        self.hearer = hearer
        self.live = live
        self.format = audio_format
        self.sample_rate = sample_rate
        self.provider = provider
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
        self.over = False
        """The session failed or ended; nothing more comes from it."""
        self.task = asyncio.create_task(self.read())

    @classmethod
    async def open(
        cls,
        owner: ListeningOwner,
        hearer: Hearer,
        stt: object,
        audio_format: str,
        sample_rate: int | None,
        language: str | None,
    ) -> Listening:
        """A session of ``stt`` in ``language``: ListeningUnavailable when it is no live STT
        provider, ProviderError when it fails to open."""
        if not isinstance(stt, LiveSTTProvider):
            raise ListeningUnavailable("live speech recognition is not available")
        live = await stt.live(encoding=audio_format, sample_rate=sample_rate, language=language)
        provider = getattr(stt, "name", None)
        return cls(owner, hearer, live, audio_format, sample_rate, provider=provider)

    async def send(self, audio: bytes) -> None:
        """Pass microphone audio on; a failure ends the session (:meth:`Hearer.failed`)."""
        if self.first_audio is None:
            self.first_audio = self.loop.time()
        self.bytes += len(audio)
        try:
            await self.live.send(audio)
        except ProviderError as exc:
            await self.fail(exc)

    def position(self) -> float | None:
        """Seconds of audio streamed so far (raw PCM by its size, else by the clock)."""
        if self.format == "pcm16" and self.sample_rate:
            return self.bytes / 2 / self.sample_rate
        if self.first_audio is None:
            return None
        return self.loop.time() - self.first_audio

    async def read(self) -> None:
        """Turn the provider's results into what the hearer gets, until the session ends."""
        try:
            async for result in self.live:
                await self.on_result(result)
        except ProviderError as exc:
            await self.fail(exc)
            return
        except Exception as exc:
            log.exception("live transcription failed")
            await self.fail(ProviderError(f"{type(exc).__name__}: {exc}"))
            return
        if self.over:
            return  # failed meanwhile
        heard = self.utterances.flush()  # stopped mid-utterance: answer what was said
        if heard is not None:
            await self.hear(heard)
        if not self.stopping:  # the provider ended the session on its own
            self.over = True
            await self.hearer.closed(self)

    async def on_result(self, result: LiveResult) -> None:
        """One result: show it, let the user cut in, hand on a finished utterance."""
        if self.utterance_started is None and isinstance(result, SpeechStarted | LiveTranscript):
            self.utterance_started = self.loop.time()
        if isinstance(result, SpeechStarted):
            await self.hearer.speech_started(self)
            self.owner.touch()
            await self.owner.barge_in()
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
            await self.hear(heard)

    async def hear(self, heard: Heard) -> None:
        """The utterance so far (the user may be cutting in) or a finished one."""
        self.owner.touch()
        if not heard.final:
            await self.hearer.heard(self, heard, {})
            await self.owner.barge_in()
            return
        await self.hearer.heard(self, heard, self.metadata())

    def metadata(self) -> dict[str, Any]:
        """What the user message keeps about the utterance (and resets it)."""
        now = self.loop.time()
        audio: dict[str, Any] = {
            "format": self.format,
            "sample_rate": self.sample_rate,
            "live": True,
            "stt_provider": self.provider,
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

    async def fail(self, exc: ProviderError) -> None:
        """The provider failed: close it and tell the hearer (once)."""
        if self.over:
            return
        self.over = self.stopping = True
        with suppress(Exception):
            await self.live.close()
        await self.hearer.failed(self, exc)

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
        self.over = True

    async def cancel(self) -> None:
        """Drop the session at once (nobody waits for its last results)."""
        self.stopping = self.over = True
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task
        with suppress(Exception):
            await asyncio.wait_for(self.live.close(), CANCEL_TIMEOUT)
