"""Typed events streamed by the engine. Adapters match on the class, never on a string field."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AudioChunk",
    "AudioCompleted",
    "ConversationEnded",
    "ErrorEvent",
    "Event",
    "InterruptRequested",
    "Interrupted",
    "MessageCompleted",
    "MessageStarted",
    "Sentence",
    "TextDelta",
    "Transcript",
    "TurnCompleted",
    "TurnStarted",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every engine event."""


@dataclass(frozen=True, slots=True)
class TurnStarted(Event):
    """A turn began; ``user_message_id`` is the stored user message."""

    conversation_id: str
    user_message_id: str


@dataclass(frozen=True, slots=True)
class Transcript(Event):
    """Speech recognised from the user; ``final`` is False for interim results."""

    text: str
    final: bool = True


@dataclass(frozen=True, slots=True)
class MessageStarted(Event):
    """An assistant message was created (stored) and is about to stream."""

    message_id: str
    character_id: str | None = None
    character_name: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta(Event):
    """A piece of an assistant message's text, as the LLM produced it."""

    message_id: str
    text: str
    character_id: str | None = None


@dataclass(frozen=True, slots=True)
class Sentence(Event):
    """A complete sentence of an assistant message, ready for speech."""

    message_id: str
    index: int
    text: str
    character_id: str | None = None


@dataclass(frozen=True, slots=True)
class AudioChunk(Event):
    """Synthesised audio for one sentence of a message, in order."""

    message_id: str
    sentence_index: int
    chunk_index: int
    data: bytes
    format: str
    character_id: str | None = None


@dataclass(frozen=True, slots=True)
class AudioCompleted(Event):
    """The last audio chunk of a message has been sent."""

    message_id: str
    character_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageCompleted(Event):
    """An assistant message is finished and stored with its final status."""

    message_id: str
    text: str
    status: str
    character_id: str | None = None
    character_name: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    provider: str | None = None
    """The LLM provider that wrote it (its label in the failover chain), when one did."""


@dataclass(frozen=True, slots=True)
class Interrupted(Event):
    """A reply was cut short (barge-in); it is stored with status ``interrupted``."""

    message_id: str


@dataclass(frozen=True, slots=True)
class InterruptRequested(Event):
    """A client asked to cut the reply ``message_id`` short, on a process other than the one
    producing it: that process's conversation runtime cuts it (then :class:`Interrupted`)."""

    message_id: str


@dataclass(frozen=True, slots=True)
class TurnCompleted(Event):
    """The turn is over; ``conversation_ended`` says whether the conversation ended with it."""

    conversation_id: str
    turn_count: int
    conversation_ended: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationEnded(Event):
    """The conversation ended (``user_ended``, ``max_turns``, ``expired``, ``timeout``...)."""

    conversation_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ErrorEvent(Event):
    """Something went wrong; ``code`` is stable and machine-readable."""

    code: str
    message: str
    retryable: bool = False
