"""What an adapter hands the engine for one turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Inbound"]


@dataclass(slots=True)
class Inbound:
    """One user turn: text and/or audio and/or images, plus platform details."""

    text: str = ""
    audio: bytes | None = None
    audio_mime: str | None = None
    image_urls: list[str] = field(default_factory=list)
    platform_message_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    user_message_id: str | None = None
    """Set when the adapter already stored the user message (e.g. WhatsApp stores first)."""
    idempotency_key: str | None = None
    """The client's key for this message (``Idempotency-Key`` header, a WebSocket ``client_id``):
    a repeat of the key in the same conversation gets the first answer, never a second turn."""
