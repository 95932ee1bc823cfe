"""Renders one turn's engine events in a Telegram chat: text, streamed edits or voice notes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from parley.adapters.telegram.replies import LiveText, Replier
from parley.adapters.telegram.transport import log
from parley.audio import pcm_rate, to_ogg_opus
from parley.core.events import (
    AudioChunk,
    AudioCompleted,
    ErrorEvent,
    Event,
    MessageCompleted,
    MessageStarted,
    TextDelta,
)

__all__ = ["SPEECH_FORMAT", "TurnRenderer"]

SPEECH_FORMAT = "pcm_24000"
"""What the adapter asks TTS for: raw PCM every provider speaks, encoded here to OGG/Opus with
an exact duration (Telegram voice notes must be OGG/Opus)."""


@dataclass(slots=True)
class _Reply:
    message_id: str
    name: str | None
    text: str = ""
    status: str = "pending"
    audio: list[bytes] = field(default_factory=list)
    audio_format: str | None = None
    live: LiveText | None = None


class TurnRenderer:
    """Consumes a turn's events and sends each finished reply to ``chat_id``.

    ``voice``: replies become voice notes (the text as caption, or a message after it when longer
    than 1,024 characters); a reply without audio (no TTS, TTS failed, a stored farewell) is sent
    as text. ``stream_edits`` (text replies only): replies grow in place. ``named``: replies start
    with the speaking character's name (multi-character templates).
    """

    def __init__(
        self,
        replier: Replier,
        chat_id: int,
        *,
        voice: bool = False,
        stream_edits: bool = False,
        named: bool = False,
        edit_interval: float = 1.0,
    ) -> None:
        self.replier = replier
        self.chat_id = chat_id
        self.voice = voice
        self.stream_edits = stream_edits and not voice
        self.named = named
        self.edit_interval = edit_interval
        self.replies: dict[str, _Reply] = {}
        self.errors: list[ErrorEvent] = []
        self._pending: _Reply | None = None

    def _prefix(self, reply: _Reply) -> str:
        return f"{reply.name}: " if self.named and reply.name else ""

    async def render(self, events: AsyncIterator[Event]) -> list[ErrorEvent]:
        """Send everything the turn produces; return its errors (``tts_failed`` included)."""
        async for event in events:
            if isinstance(event, AudioChunk):
                reply = self.replies.get(event.message_id)
                if reply is not None:
                    reply.audio.append(event.data)
                    reply.audio_format = event.format
            elif isinstance(event, TextDelta):
                reply = self.replies.get(event.message_id)
                if reply is not None and reply.live is not None:
                    await reply.live.add(event.text)
            elif isinstance(event, AudioCompleted):
                if self._pending is not None and self._pending.message_id == event.message_id:
                    await self._flush()
            elif isinstance(event, ErrorEvent):
                self.errors.append(event)
                log.warning("chat %s: %s: %s", self.chat_id, event.code, event.message)
            elif isinstance(event, MessageStarted):
                await self._flush()
                reply = _Reply(event.message_id, event.character_name)
                if self.stream_edits:
                    reply.live = LiveText(
                        self.replier, self.chat_id, self._prefix(reply), interval=self.edit_interval
                    )
                self.replies[event.message_id] = reply
            elif isinstance(event, MessageCompleted):
                await self._completed(event)
            else:
                await self._flush()
        await self._flush()
        return self.errors

    async def _completed(self, event: MessageCompleted) -> None:
        reply = self.replies.get(event.message_id)
        if reply is None:
            return
        reply.text, reply.status = event.text, event.status
        if reply.live is not None:
            if reply.status != "failed" or reply.live.message_id is not None:
                await reply.live.finish(reply.text)
        elif self.voice:
            self._pending = reply  # its audio follows, up to AudioCompleted
        else:
            await self._deliver(reply)

    async def _flush(self) -> None:
        reply, self._pending = self._pending, None
        if reply is not None:
            await self._deliver(reply)

    async def _deliver(self, reply: _Reply) -> None:
        if reply.status == "failed" or not reply.text.strip():
            return  # a failed reply is stored; the user gets the friendly message instead
        text = self._prefix(reply) + reply.text
        if self.voice and reply.audio:
            fmt = reply.audio_format or SPEECH_FORMAT
            source = fmt if pcm_rate(fmt) else None  # containers (mp3...) are probed
            ogg, duration = await asyncio.to_thread(
                to_ogg_opus, b"".join(reply.audio), source_format=source
            )
            await self.replier.send_voice(self.chat_id, ogg, duration, text)
        else:
            await self.replier.send_text(self.chat_id, text)
