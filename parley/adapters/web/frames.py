"""WebSocket frames the server sends: engine events rendered, errors, tagged binary audio.

What clients send is parsed by :mod:`parley.adapters.web.client_frames`.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

from parley.core.events import (
    AudioChunk,
    AudioCompleted,
    ConversationEnded,
    ErrorEvent,
    Event,
    Interrupted,
    MessageCompleted,
    MessageStarted,
    TextDelta,
    TurnCompleted,
    TurnStarted,
)

__all__ = [
    "AUDIO_HEADER",
    "OUTPUT_FORMATS",
    "FrameError",
    "audio_frame",
    "error_frame",
    "output_format_json",
    "parse_audio_frame",
    "render",
]

AUDIO_HEADER = struct.Struct(">16sHH")
"""A binary server frame's 20-byte header: the message id (UUID bytes), the sentence index and
the chunk index (unsigned 16-bit big-endian); the audio follows."""

OUTPUT_FORMATS: dict[str, dict[str, Any]] = {
    "pcm_16000": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1},
    "pcm_24000": {"encoding": "pcm_s16le", "sample_rate": 24000, "channels": 1},
    "mp3_44100_128": {"encoding": "mp3", "sample_rate": 44100, "channels": 1, "bit_rate": 128000},
    "opus_48000_64": {"encoding": "opus", "sample_rate": 48000, "channels": 1, "bit_rate": 64000},
}
"""Audio reply formats a client may ask for, and how to play them."""


class FrameError(Exception):
    """A frame the server cannot act on; answered with an error frame, the socket stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"type": "error", "code", "message"}``."""
    return {"type": "error", "code": code, "message": message, **extra}


def output_format_json(output_format: str) -> dict[str, Any]:
    """``{"output_format", "encoding", "sample_rate", "channels", "bit_rate"?}``."""
    return {"output_format": output_format, **OUTPUT_FORMATS.get(output_format, {})}


def audio_frame(chunk: AudioChunk) -> bytes:
    """The binary frame of an audio chunk: the 20-byte header, then the audio.

    Indexes above 65535 wrap around (a sentence is cut at 250 characters long before).
    """
    header = AUDIO_HEADER.pack(
        uuid.UUID(chunk.message_id).bytes, chunk.sentence_index & 0xFFFF, chunk.chunk_index & 0xFFFF
    )
    return header + chunk.data


def parse_audio_frame(frame: bytes) -> tuple[str, int, int, bytes]:
    """(message id, sentence index, chunk index, audio) of a binary server frame."""
    raw_id, sentence, chunk = AUDIO_HEADER.unpack_from(frame)
    return str(uuid.UUID(bytes=raw_id)), sentence, chunk, frame[AUDIO_HEADER.size :]


def render(event: Event, conversation_id: str) -> dict[str, Any] | None:
    """The JSON server frame for an engine event (None for events the socket does not show;
    audio chunks are binary frames: :func:`audio_frame`)."""
    if isinstance(event, TurnStarted):
        return {
            "type": "turn_started",
            "conversation_id": conversation_id,
            "user_message_id": event.user_message_id,
        }
    if isinstance(event, MessageStarted):
        return {
            "type": "message_started",
            "message_id": event.message_id,
            "character_id": event.character_id,
            "character_name": event.character_name,
            "conversation_id": conversation_id,
        }
    if isinstance(event, TextDelta):
        if not event.text:
            return None
        return {
            "type": "llm_chunk",
            "text": event.text,
            "message_id": event.message_id,
            "character_id": event.character_id,
        }
    if isinstance(event, MessageCompleted):
        return {
            "type": "message_complete",
            "message_id": event.message_id,
            "character_id": event.character_id,
            "character_name": event.character_name,
            "text": event.text,
            "status": event.status,
        }
    if isinstance(event, TurnCompleted):
        frame: dict[str, Any] = {
            "type": "turn_complete",
            "turn_count": event.turn_count,
            "conversation_ended": event.conversation_ended,
            "conversation_id": conversation_id,
        }
        if event.reason:
            frame["reason"] = event.reason
        return frame
    if isinstance(event, AudioCompleted):
        return {
            "type": "audio_complete",
            "message_id": event.message_id,
            "character_id": event.character_id,
        }
    if isinstance(event, ConversationEnded):
        return {
            "type": "conversation_ended",
            "conversation_id": event.conversation_id,
            "reason": event.reason,
        }
    if isinstance(event, Interrupted):
        return {"type": "interrupted", "message_id": event.message_id}
    if isinstance(event, ErrorEvent):
        return error_frame(event.code, event.message, retryable=event.retryable)
    return None
