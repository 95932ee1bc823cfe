"""What the engine answers with besides events: :class:`EngineError` and :class:`Opened`
(both re-exported by :mod:`parley.core.engine`)."""

from __future__ import annotations

from dataclasses import dataclass

from parley.core.store.records import ConversationRecord, MessageRecord

__all__ = ["EngineError", "Opened"]


class EngineError(Exception):
    """A request the engine cannot serve; ``code`` is stable (``not_found``, ``ended``...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Opened:
    """A conversation ready for turns, with the greeting stored when there is one."""

    conversation: ConversationRecord
    greeting: MessageRecord | None = None
    resumed: bool = False
