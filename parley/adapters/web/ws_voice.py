"""Voice on the socket: live listening (microphone in), audio replies (speech out).

``start_listening`` asks the live conversation to open a live STT session
(:meth:`~parley.core.conversation.LiveConversation.listen`); binary client frames are sent to it.
What it hears becomes ``speech_started``, ``transcription_update`` and ``transcription_finished``
frames (the runtime restarts the silence clock and cuts a spoken reply short on its own); a
finished utterance is queued as a turn, like a typed ``user_message``. Audio replies are on while
listening, or as ``audio_settings`` says; each reply is then spoken by the engine and its audio
sent as tagged binary frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parley.adapters.web.access import check_text
from parley.adapters.web.client_frames import AudioSettings, StartListening, StopListening
from parley.adapters.web.frames import FrameError, error_frame, output_format_json
from parley.core.conversation_listening import Listening
from parley.core.listening import Heard
from parley.core.providers import LiveSTTProvider, ProviderError
from parley.core.speech import SpeechOptions
from parley.server import ApiError

if TYPE_CHECKING:
    from parley.adapters.web.ws_chat import ChatFrames

__all__ = ["Voice"]


class Voice:
    """A socket's voice state: the listening session and whether (and how) replies are spoken.

    It is the :class:`~parley.core.conversation_listening.Hearer` of its listening session.
    """

    def __init__(self, session: ChatFrames) -> None:
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
        if self.session.live is not None:  # the silence prompts speak as the replies do
            self.session.live.set_speech(self.speech())
        await self.session.outbox.send(
            {
                "type": "audio_format",
                "enabled": self.audio_on,
                **output_format_json(self.output_format),
            }
        )

    # -- frames --------------------------------------------------------------------------------

    async def on_start_listening(self, frame: StartListening) -> None:
        """Open a live STT session for the microphone audio that follows."""
        if self.listening is not None:
            raise FrameError("already_listening", "already listening; send stop_listening first")
        audio_format = frame.format or "pcm16"
        rate = (frame.sample_rate or 16000) if audio_format == "pcm16" else None
        live = self.session.live
        stt = self.session.engine.stt
        if live is None or not isinstance(stt, LiveSTTProvider):
            raise FrameError("stt_unavailable", "live speech recognition is not available")
        try:
            listening = await live.listen(self, encoding=audio_format, sample_rate=rate)
        except ProviderError as exc:
            await self.session.outbox.send(
                error_frame("stt_failed", exc.message, retryable=exc.retryable)
            )
            return
        self.listening = listening
        await self.session.outbox.send(
            {"type": "listening_started", "format": audio_format, "sample_rate": rate}
        )
        await self.announce()

    async def on_stop_listening(self, frame: StopListening) -> None:
        """Close the live session; an unfinished utterance is answered."""
        listening = self.listening
        if listening is None:
            raise FrameError("not_listening", "not listening")
        await listening.stop()
        await self.ended(listening, "stopped")

    async def on_audio_settings(self, frame: AudioSettings) -> None:
        """Turn audio replies on or off, choose their format; answered by ``audio_format``."""
        if frame.enabled and self.session.engine.tts is None:
            raise FrameError("tts_unavailable", "spoken replies are not available on this server")
        self.enabled = frame.enabled
        if frame.output_format is not None:
            self.output_format = frame.output_format
        await self.announce()

    async def on_binary(self, data: bytes) -> None:
        """Microphone audio: to the live session."""
        if self.listening is None:
            raise FrameError("not_listening", "binary audio needs start_listening")
        limit = self.session.web.settings.max_body_bytes
        if len(data) > limit:
            raise FrameError("frame_too_large", f"frames are limited to {limit} bytes")
        await self.listening.send(data)

    # -- what the listening session hears (Hearer) --------------------------------------------

    async def speech_started(self, listening: Listening) -> None:
        """``speech_started``."""
        await self.session.outbox.send({"type": "speech_started"})

    async def heard(self, listening: Listening, heard: Heard, metadata: dict[str, Any]) -> None:
        """``transcription_update`` as the user speaks; ``transcription_finished``, then the
        utterance is queued as a turn."""
        session = self.session
        if not heard.final:
            await session.outbox.send({"type": "transcription_update", "text": heard.text})
            return
        await session.outbox.send({"type": "transcription_finished", "text": heard.text})
        try:
            text = check_text(heard.text, session.web.settings, name="transcript")
            await session.queue_message(text, metadata)
        except FrameError as exc:
            await session.outbox.send(error_frame(exc.code, exc.message))
        except ApiError as exc:
            await session.outbox.send(error_frame(exc.code, exc.detail))

    async def failed(self, listening: Listening, exc: ProviderError) -> None:
        """The provider failed: error frame, then the listening ends."""
        if self.listening is not listening:
            return
        await self.session.outbox.send(
            error_frame("stt_failed", exc.message, retryable=exc.retryable)
        )
        await self.ended(listening, "error")

    async def closed(self, listening: Listening) -> None:
        """The provider ended the session on its own."""
        await self.ended(listening, "closed")

    # -- endings -------------------------------------------------------------------------------

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
