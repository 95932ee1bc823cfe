"""JSON shapes shared by the routes and the socket: messages, conversations, characters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from parley.core.engine import Engine, EngineError
from parley.core.serialize import iso, message_json
from parley.core.store.records import ConversationRecord

__all__ = ["characters", "conversation_json", "iso", "message_json", "timestamp"]


def timestamp() -> str:
    """Now, ISO 8601 in UTC with milliseconds (``2026-01-31T12:00:00.000Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def conversation_json(conversation: ConversationRecord, message_count: int) -> dict[str, Any]:
    """A conversation as ``GET /api/v1/conversations`` lists it."""
    return {
        "id": conversation.id,
        "template": conversation.template_id,
        "template_id": conversation.template_id,
        "channel": conversation.channel,
        "language": conversation.language,
        "status": conversation.status,
        "started_at": iso(conversation.started_at),
        "ended_at": iso(conversation.ended_at),
        "last_activity_at": iso(conversation.last_activity_at),
        "reason_ended": conversation.reason_ended,
        "turn_count": conversation.turn_count,
        "message_count": message_count,
    }


def characters(engine: Engine, template_id: str) -> list[dict[str, str]]:
    """The template's characters ``[{id, name}]`` in speaking order ([] for an unknown template)."""
    try:
        personas = engine.personas(engine.template(template_id))
    except (EngineError, KeyError):
        return []
    return [{"id": persona.id, "name": persona.name} for persona in personas]
