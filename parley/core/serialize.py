"""Records as JSON: one shape of a stored message for every outside reader (the web API's
history, the socket's ``history`` frame, ``notify`` payloads)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from parley.core.store.records import MessageRecord

__all__ = ["iso", "message_json"]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` (safe in a query string), or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message_json(message: MessageRecord) -> dict[str, Any]:
    """A stored message: id, role, name, character_id, content, status, created_at."""
    return {
        "id": message.id,
        "role": message.role,
        "name": message.name,
        "character_id": message.character_id,
        "content": message.content,
        "status": message.status,
        "created_at": iso(message.created_at),
    }
