"""Plain records the store hands out. Nothing outside ``parley.core.store`` sees an ORM model."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ConversationRecord",
    "FailedDeliveryRecord",
    "InboxRecord",
    "MessageRecord",
    "UserRecord",
]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A person, across channels."""

    id: str
    display_name: str | None
    memory: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A conversation between a user and the agent(s) of a template."""

    id: str
    user_id: str
    channel: str
    template_id: str
    language: str
    status: str  # "open" | "ended"
    started_at: datetime
    ended_at: datetime | None
    reason_ended: str | None
    last_activity_at: datetime
    turn_count: int
    state: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """True while the conversation has not ended."""
        return self.status == "open"


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message of a conversation (role ``user``, ``assistant``, ``system`` or ``tool``)."""

    id: str
    conversation_id: str
    role: str
    content: str
    status: str  # "complete" | "interrupted" | "failed" | "pending"
    created_at: datetime
    name: str | None = None  # display name of the character that spoke
    character_id: str | None = None  # persona id of the character
    tokens_in: int | None = None
    tokens_out: int | None = None
    intent: str | None = None
    lang: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    channel: str | None = None
    platform_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class FailedDeliveryRecord:
    """An outbound notification that still failed after its retries."""

    id: str
    url: str
    event: str
    payload: dict[str, Any]
    attempts: int
    status_code: int | None
    error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class InboxRecord:
    """An inbound message (or job) in the durable inbox.

    ``status``: ``queued`` (waiting), ``claimed`` (a process answers it under a lease until
    ``lease_until``), ``done`` (its turn is stored; ``result`` says what it produced), ``failed``
    (given up after too many attempts).
    """

    id: int
    channel: str
    key: str
    lane: str
    status: str
    claimed_by: str | None
    lease_until: datetime | None
    attempts: int
    payload: dict[str, Any]
    result: dict[str, Any]
    conversation_id: str | None
    user_message_id: str | None
    created_at: datetime
    done_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """True once the item is ``done`` or ``failed``."""
        return self.status in ("done", "failed")
