"""The record a live conversation keeps of its conversation, current from its events.

A turn in any process moves the conversation's expiry and publishes ``TurnCompleted``; an end
publishes ``ConversationEnded``. Following those, a live conversation knows whether its
conversation is still open without reading it before each turn.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from parley.core.events import ConversationEnded, ErrorEvent, Event, TurnCompleted
from parley.core.store.records import ConversationRecord

__all__ = ["EXPIRY_MARGIN", "GONE", "follow", "surely_open"]

EXPIRY_MARGIN = 5.0
"""Seconds (at most a tenth of ``conversation.session_ttl``): a conversation this close to its
expiry is read again before a turn (the record follows the events, a little behind the stored
expiry)."""

GONE = frozenset({"conversation_ended", "not_found"})
"""Error codes of a turn refused because its conversation ended or was erased."""


def surely_open(record: ConversationRecord | None, ttl: float) -> ConversationRecord | None:
    """``record`` while it is open and not within ``EXPIRY_MARGIN`` of its expiry, else None."""
    if record is None or not record.is_open:
        return None
    if record.expires_at is None:
        return record
    margin = timedelta(seconds=min(EXPIRY_MARGIN, ttl / 10))
    return record if record.expires_at - margin > datetime.now(UTC) else None


def follow(
    record: ConversationRecord | None, event: Event, mine: bool, ttl: float
) -> ConversationRecord | None:
    """``record`` after ``event`` (``mine``: of a turn run here); None when it must be read
    again."""
    if record is None:
        return None
    if isinstance(event, ConversationEnded):
        return dataclasses.replace(record, status="ended")
    if isinstance(event, TurnCompleted):
        now = datetime.now(UTC)
        return dataclasses.replace(
            record,
            turn_count=event.turn_count,
            last_activity_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    if isinstance(event, ErrorEvent) and mine and event.code in GONE:
        return None  # ended or erased where no event said so: read it again
    return record
