"""The typed commands a conversation runtime takes (:mod:`parley.core.conversation`).

Queued commands (:class:`UserTurn`, :class:`Say`, :class:`End`) run one at a time in the order
submitted; :class:`Interrupt` and :class:`ModelSettings` act at once, even while a reply streams.
``origin`` names the submitter (a subscriber id: the events it causes carry it, so that
subscriber knows them for its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from parley.core.inbound import Inbound
from parley.core.speech import SpeechOptions

__all__ = [
    "Command",
    "End",
    "Interrupt",
    "ListeningUnavailable",
    "ModelSettings",
    "Outcome",
    "Say",
    "SilencePrompt",
    "UserTurn",
]

Outcome = Literal["done", "interrupted", "dropped"]
"""What a queued command's future resolves to: stored, cut short, or dropped (its submitter
left before it ran)."""


class ListeningUnavailable(Exception):
    """The engine has no live speech-to-text provider."""


@dataclass(frozen=True, slots=True)
class Command:
    """Base class of every command."""


@dataclass(frozen=True, slots=True)
class UserTurn(Command):
    """The user sent text or audio: run a turn. ``speech`` speaks the replies.

    ``barge_in``: cut the reply in flight short first, when it is spoken and the template allows
    barge-in (a user speaking or typing over the assistant).
    """

    inbound: Inbound
    speech: SpeechOptions | None = None
    origin: str | None = None
    barge_in: bool = False


@dataclass(frozen=True, slots=True)
class Say(Command):
    """Say a fixed text outside a turn (a nudge, an announcement); then end with ``end_reason``."""

    text: str | None
    speech: SpeechOptions | None = None
    end_reason: str | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class End(Command):
    """End the conversation with ``reason`` (after what is queued), saying the end prompt when
    ``farewell``."""

    reason: str
    farewell: bool = True
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Interrupt(Command):
    """Cut the reply in flight short (stored ``interrupted`` with its text so far).

    ``barge_in``: only when that reply is spoken and the template allows barge-in (otherwise a
    stop: always). ``metadata`` is merged into the interrupted message's stored metadata.

    ``message_id``: stop that reply only (a client's stop button names the reply it plays). It is
    cut when it is the one in flight here; when it already finished (its audio may still play at
    the client) and is the conversation's latest assistant message, complete, it is stored
    ``interrupted`` (text kept) under the conversation's lock, and subscribers get
    :class:`~parley.core.events.Interrupted` with ``origin``. Any other message: nothing.
    """

    barge_in: bool = False
    metadata: dict[str, Any] | None = None
    message_id: str | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class ModelSettings(Command):
    """Replace the conversation's model setting overrides (``state.model_settings``), validated
    by the caller; they apply from the next reply."""

    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SilencePrompt(Command):
    """The silence timer's prompt (the runtime queues it itself): the nudge or the timeout."""

    phase: int
    generation: int
