"""The stable serialised form of engine events, for the event bus between processes.

One published event is a MessagePack map (audio stays raw bytes)::

    {"v": 1, "conversation_id": "...", "origin": "..." | null, "node": "...",
     "type": "MessageStarted", "event": {"message_id": "...", ...}}

``type`` is the event's class name in :mod:`parley.core.events` and ``event`` its fields by name.
Fields are only ever added (with defaults), never renamed, so processes of neighbouring versions
understand each other: a decoder ignores fields it does not know and fills missing ones with
their defaults. An unknown ``type`` or a newer ``v`` raises :class:`CodecError`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from parley.core import events
from parley.core.events import Event

__all__ = ["VERSION", "CodecError", "Envelope", "decode", "encode"]

VERSION = 1

_TYPES: dict[str, type[Event]] = {
    name: cls
    for name in events.__all__
    if isinstance(cls := getattr(events, name), type)
    and issubclass(cls, Event)
    and cls is not Event
}


class CodecError(ValueError):
    """Bytes that are not a published event this version understands."""


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """One event of one conversation, as the bus carries it.

    ``origin`` names who asked for the work that produced it (a subscriber id, e.g. one
    WebSocket; None for REST, webhooks and timers); ``node`` is the process that published it.
    """

    conversation_id: str
    event: Event
    origin: str | None = None
    node: str = ""


def encode(envelope: Envelope) -> bytes:
    """The envelope as MessagePack bytes."""
    event = envelope.event
    name = type(event).__name__
    if _TYPES.get(name) is not type(event):
        raise CodecError(f"not a parley event: {name}")
    return msgspec.msgpack.encode(
        {
            "v": VERSION,
            "conversation_id": envelope.conversation_id,
            "origin": envelope.origin,
            "node": envelope.node,
            "type": name,
            "event": {f.name: getattr(event, f.name) for f in dataclasses.fields(event)},
        }
    )


def decode(raw: bytes) -> Envelope:
    """The envelope encoded in ``raw``; CodecError when it is not one."""
    try:
        value: Any = msgspec.msgpack.decode(raw)
    except msgspec.DecodeError as exc:
        raise CodecError(f"not MessagePack: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("v"), int):
        raise CodecError("not an event envelope")
    if value["v"] > VERSION:
        raise CodecError(f"event version {value['v']} is newer than {VERSION}")
    cls = _TYPES.get(value.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise CodecError(f"unknown event type {value.get('type')!r}")
    try:
        event = msgspec.convert(value.get("event") or {}, cls)
        return Envelope(
            msgspec.convert(value.get("conversation_id"), str),
            event,
            msgspec.convert(value.get("origin"), str | None),
            msgspec.convert(value.get("node") or "", str),
        )
    except msgspec.ValidationError as exc:
        raise CodecError(f"bad {cls.__name__}: {exc}") from None
