"""Running a whole turn for the request/response routes, and mapping its errors to HTTP."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

from litestar.params import HeaderParameter

from parley.core.engine import Engine
from parley.core.events import (
    ErrorEvent,
    MessageCompleted,
    MessageStarted,
    TextDelta,
    Transcript,
    TurnCompleted,
    TurnStarted,
)
from parley.core.inbound import Inbound
from parley.server import ApiError

__all__ = [
    "IDEMPOTENCY_HEADER",
    "IdempotencyKey",
    "Reply",
    "TurnOutcome",
    "check_idempotency_key",
    "error_status",
    "raise_turn_error",
    "run_turn",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name=IDEMPOTENCY_HEADER,
        required=False,
        description=(
            "A key the client picks for this message (a UUID, say): a request repeated with the "
            "same key, after a timeout or a dropped connection, gets the first request's answer "
            "and never runs a second turn."
        ),
    ),
]
"""The optional ``Idempotency-Key`` header of the message routes."""


def check_idempotency_key(value: str | None) -> str | None:
    """The header's key, or None; 422 when empty, too long or not printable ASCII."""
    if value is None:
        return None
    key = value.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise ApiError(
            422,
            "validation_error",
            f"{IDEMPOTENCY_HEADER}: 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
        )
    return key


@dataclass(slots=True)
class Reply:
    """One character's reply in a turn."""

    message_id: str
    character_id: str | None
    character_name: str | None
    text: str = ""
    status: str = "pending"

    def as_json(self) -> dict[str, Any]:
        """``{message_id, character_id, character_name, text, status}``."""
        return {
            "message_id": self.message_id,
            "character_id": self.character_id,
            "character_name": self.character_name,
            "text": self.text,
            "status": self.status,
        }


@dataclass(slots=True)
class TurnOutcome:
    """Everything a finished turn produced."""

    replies: list[Reply] = field(default_factory=list)
    user_message_id: str | None = None
    turn_count: int | None = None
    ended: bool = False
    reason: str | None = None
    error: ErrorEvent | None = None
    transcript: str | None = None
    """What the STT provider heard in the request's audio."""

    @property
    def content(self) -> str:
        """The replies' texts, one paragraph per character."""
        return "\n\n".join(r.text for r in self.replies if r.text and r.status != "failed")

    def reply_fields(self) -> dict[str, Any]:
        """Who answered: the first reply's message id and character, and every reply."""
        first = self.replies[0] if self.replies else None
        return {
            "message_id": first.message_id if first else None,
            "character_id": first.character_id if first else None,
            "character_name": first.character_name if first else None,
            "replies": [reply.as_json() for reply in self.replies],
            "conversation_ended": self.ended,
            "reason": self.reason,
        }


async def run_turn(engine: Engine, conversation_id: str, inbound: Inbound) -> TurnOutcome:
    """Run a turn to its end and gather its replies (the first error is kept)."""
    outcome = TurnOutcome()
    replies: dict[str, Reply] = {}
    async with aclosing(engine.turn(conversation_id, inbound)) as events:
        async for event in events:
            if isinstance(event, TurnStarted):
                outcome.user_message_id = event.user_message_id
            elif isinstance(event, MessageStarted):
                reply = Reply(event.message_id, event.character_id, event.character_name)
                replies[event.message_id] = reply
                outcome.replies.append(reply)
            elif isinstance(event, TextDelta) and event.message_id in replies:
                replies[event.message_id].text += event.text
            elif isinstance(event, MessageCompleted) and event.message_id in replies:
                replies[event.message_id].text = event.text
                replies[event.message_id].status = event.status
            elif isinstance(event, Transcript) and event.final:
                outcome.transcript = event.text
            elif isinstance(event, ErrorEvent):
                outcome.error = outcome.error or event
            elif isinstance(event, TurnCompleted):
                outcome.turn_count = event.turn_count
                outcome.ended = event.conversation_ended
                outcome.reason = event.reason
    return outcome


_STATUS = {
    "not_found": 404,
    "conversation_ended": 409,
    "provider_timeout": 504,
    "stt_empty": 422,
    "stt_unavailable": 422,
}


def error_status(code: str) -> int:
    """HTTP status for an engine error code (provider failures, ``stt_failed`` included, are
    502 Bad Gateway)."""
    return _STATUS.get(code, 502)


def raise_turn_error(error: ErrorEvent, **extra: Any) -> NoReturn:
    """Raise the engine error as an :class:`ApiError`."""
    raise ApiError(
        error_status(error.code), error.code, error.message, retryable=error.retryable, **extra
    )
