"""WebSocket frames: parsing what clients send and rendering engine events for them."""

from __future__ import annotations

from typing import Any

import msgspec

from parley.core.config import ModelSettings, SettingsError, parse_section
from parley.core.events import (
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
    "MODEL_SETTINGS_KEYS",
    "FrameError",
    "error_frame",
    "merge_model_settings",
    "optional_str",
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
    except msgspec.DecodeError:
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


def render(event: Event, conversation_id: str) -> dict[str, Any] | None:
    """The server frame for an engine event (None for events the socket does not show)."""
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
    if isinstance(event, Interrupted):
        return {"type": "interrupted", "message_id": event.message_id}
    if isinstance(event, ErrorEvent):
        return error_frame(event.code, event.message, retryable=event.retryable)
    return None
