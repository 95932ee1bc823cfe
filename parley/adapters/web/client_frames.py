"""What WebSocket clients send: one msgspec struct per text frame type (docs/protocol.md).

A text frame is ``{"type": "...", "data": {...}}``. :func:`parse_frame` checks that envelope,
then validates ``data`` into the struct of its type: the fields' types and ``Meta`` constraints
are the rules, and a bad frame becomes a :class:`~parley.adapters.web.frames.FrameError` (error
frame, socket kept open) naming the field. Handlers get the struct. ``null`` stands for an
absent optional field, as it always has.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_type_hints

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from parley.adapters.web.access import Language
from parley.adapters.web.frames import FrameError
from parley.adapters.web.settings import AudioOutputFormat
from parley.core.config import ModelSettings
from parley.core.text import loads_clean
from parley.core.validation import error_path

__all__ = [
    "CLIENT_ID_MAX",
    "FRAMES",
    "MODEL_SETTINGS_KEYS",
    "AudioSettings",
    "ClientFrame",
    "Interrupt",
    "ModelSettingsFrame",
    "NewConversation",
    "RefreshCharacters",
    "Resume",
    "StartListening",
    "StopListening",
    "UserMessage",
    "merge_model_settings",
    "parse_frame",
]

CLIENT_ID_MAX = 200
"""Longest ``client_id`` of a ``user_message`` (the message's idempotency key)."""

SHAPE = 'frames are JSON objects: {"type": "...", "data": {...}}'


class ClientFrame(Struct):
    """The ``data`` of a client frame; each subclass is one frame ``type``."""

    type: ClassVar[str]
    error_code: ClassVar[str] = "invalid_frame"
    """The error code of a bad value."""
    field_codes: ClassVar[dict[str, str]] = {}
    """Fields whose bad value has a code of its own."""


class UserMessage(ClientFrame):
    """``user_message``: answer ``text``; ``client_id`` is its idempotency key."""

    type = "user_message"
    text: str
    client_id: Annotated[str, Meta(min_length=1, max_length=CLIENT_ID_MAX)] | None = None


class NewConversation(ClientFrame):
    """``new_conversation``: end the open conversation, start another."""

    type = "new_conversation"
    field_codes = {"language": "validation_error"}
    template_id: str | None = None
    language: Language | None = None


class Resume(ClientFrame):
    """``resume``: the history of ``conversation_id``, then switch to it."""

    type = "resume"
    conversation_id: str
    after_message_id: str | None = None


class RefreshCharacters(ClientFrame):
    """``refresh_characters``: an operator's reload of the settings folder."""

    type = "refresh_characters"
    field_codes = {"admin_token": "forbidden"}
    admin_token: str | None = None


class StartListening(ClientFrame):
    """``start_listening``: open a live speech-to-text session (defaults: ``pcm16``, 16 kHz)."""

    type = "start_listening"
    format: Literal["pcm16", "webm"] | None = None
    sample_rate: Annotated[int, Meta(ge=8000, le=48000)] | None = None


class StopListening(ClientFrame):
    """``stop_listening``: close the live session."""

    type = "stop_listening"


class AudioSettings(ClientFrame):
    """``audio_settings``: spoken replies on or off, and their format."""

    type = "audio_settings"
    field_codes = {"output_format": "invalid_audio_settings"}
    enabled: bool
    output_format: AudioOutputFormat | None = None


class Interrupt(ClientFrame):
    """``interrupt``: stop a reply (a stop button; speech or typing over audio still playing)."""

    type = "interrupt"
    message_id: str | None = None
    played_sentences: Annotated[int, Meta(ge=0)] | None = None
    cause: Literal["stop", "speech", "message"] = "stop"
    """Why: the stop button (always honoured), or the user speaking or typing over audio still
    playing (honoured like barge-in: audio replies on, the template allows it)."""


MODEL_SETTINGS_KEYS = (
    "model",
    "temperature",
    "top_p",
    "min_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
)
"""What a ``model_settings`` frame may set."""

_MODEL_RULES = get_type_hints(ModelSettings, include_extras=True)

ModelSettingsFrame: type[ClientFrame] = msgspec.defstruct(
    "ModelSettingsFrame",
    [(key, _MODEL_RULES[key] | UnsetType, UNSET) for key in MODEL_SETTINGS_KEYS],
    bases=(ClientFrame,),
    forbid_unknown_fields=True,
    namespace={
        "__doc__": "``model_settings``: sampling overrides (the rules of ``ModelSettings``); "
        "``null`` removes one, an absent key keeps it.",
        "type": "model_settings",
        "error_code": "invalid_model_settings",
    },
)

FRAMES: dict[str, type[ClientFrame]] = {
    frame.type: frame
    for frame in (
        UserMessage,
        NewConversation,
        Resume,
        ModelSettingsFrame,
        RefreshCharacters,
        StartListening,
        StopListening,
        AudioSettings,
        Interrupt,
    )
}
"""Every client frame type and its struct."""


def parse_frame(raw: str, max_bytes: int) -> ClientFrame:
    """The struct of a client text frame ``{"type": ..., "data": {...}}``; FrameError if bad."""
    if len(raw) * 4 > max_bytes and len(raw.encode()) > max_bytes:
        raise FrameError("frame_too_large", f"frames are limited to {max_bytes} bytes")
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nested too deeply
        value = loads_clean(raw)  # lone surrogates escaped: decoded and cleaned (U+FFFD)
        if value is None:
            raise FrameError("invalid_json", SHAPE) from None
    if not isinstance(value, dict):
        raise FrameError("invalid_frame", SHAPE)
    kind = value.get("type")
    if not isinstance(kind, str) or not kind:
        raise FrameError("invalid_frame", "type is required (a string)")
    data = value.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FrameError("invalid_frame", "data must be an object")
    cls = FRAMES.get(kind)
    if cls is None:
        raise FrameError("unknown_type", f"unknown frame type {kind!r}")
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise _invalid(cls, exc) from None


def _invalid(cls: type[ClientFrame], exc: msgspec.ValidationError) -> FrameError:
    """The error of a ``data`` that does not fit ``cls``, naming the field (``data.text``)."""
    detail, path = error_path(exc)
    missing = detail.removeprefix("Object missing required field ")
    if missing != detail:  # "data.text is required"
        path.append(missing.strip("`"))
        message = " is required"
    else:  # "data.sample_rate: expected `int` >= 8000"
        message = ": " + detail[:1].lower() + detail[1:]
    code = cls.field_codes.get(path[0], cls.error_code) if path else cls.error_code
    return FrameError(code, ".".join(["data", *path]) + message)


def merge_model_settings(current: dict[str, Any], change: ClientFrame) -> dict[str, Any]:
    """``change`` (a ``model_settings`` frame) laid over ``current``: a ``null`` removes a key."""
    merged = dict(current)
    for key in MODEL_SETTINGS_KEYS:
        value = getattr(change, key)
        if value is not UNSET:
            merged[key] = value
    return {key: value for key, value in merged.items() if value is not None}
