"""WebSocket frames: parsing what clients send and rendering engine events for them."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import msgspec

from parley.core.config import ModelSettings, SettingsError, parse_section
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
from parley.core.text import loads_clean

__all__ = [
    "AUDIO_HEADER",
    "MODEL_SETTINGS_KEYS",
    "OUTPUT_FORMATS",
    "FrameError",
    "audio_frame",
    "error_frame",
    "merge_model_settings",
    "optional_str",
    "output_format_json",
    "parse_audio_frame",
    "parse_frame",
    "render",
    "required_str",
]

MODEL_SETTINGS_KEYS = frozenset(
    {
        "model",
        "temperature",
        "top_p",
        "min_p",
        "top_k",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
    }
)
"""What a ``model_settings`` frame may set."""


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


def parse_frame(raw: str, max_bytes: int) -> tuple[str, dict[str, Any]]:
    """(type, data) of a client text frame ``{"type": ..., "data": {...}}``; FrameError if bad."""
    if len(raw) * 4 > max_bytes and len(raw.encode()) > max_bytes:
        raise FrameError("frame_too_large", f"frames are limited to {max_bytes} bytes")
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nested too deeply
        value = loads_clean(raw)  # lone surrogates escaped: decoded and cleaned (U+FFFD)
        if value is None:
            raise FrameError(
                "invalid_json", 'frames are JSON objects: {"type": "...", "data": {...}}'
            ) from None
    if not isinstance(value, dict):
        raise FrameError("invalid_frame", 'frames are JSON objects: {"type": "...", "data": {...}}')
    kind = value.get("type")
    if not isinstance(kind, str) or not kind:
        raise FrameError("invalid_frame", "type is required (a string)")
    data = value.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FrameError("invalid_frame", "data must be an object")
    return kind, data


def required_str(data: dict[str, Any], name: str) -> str:
    """``data[name]`` as a string; FrameError when missing or not a string."""
    value = data.get(name)
    if value is None:
        raise FrameError("invalid_frame", f"data.{name} is required")
    if not isinstance(value, str):
        raise FrameError("invalid_frame", f"data.{name} must be a string")
    return value


def optional_str(data: dict[str, Any], name: str) -> str | None:
    """``data[name]`` as a string, or None when absent."""
    return None if data.get(name) is None else required_str(data, name)


def merge_model_settings(current: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` laid over ``current`` (``None`` removes a key), validated by ``ModelSettings``."""
    unknown = sorted(set(data) - MODEL_SETTINGS_KEYS)
    if unknown:
        raise FrameError("invalid_model_settings", f"unknown setting(s): {', '.join(unknown)}")
    merged = {k: v for k, v in {**current, **data}.items() if v is not None}
    try:
        return parse_section("model_settings", merged, ModelSettings).as_dict()
    except SettingsError as exc:
        raise FrameError("invalid_model_settings", str(exc)) from None


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
