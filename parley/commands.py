"""The commands a live conversation takes (``context.conversations.get(id).submit(command)``).

Queued commands (:class:`UserTurn`, :class:`Say`, :class:`End`) run one at a time in the order
submitted; :class:`Interrupt` and :class:`ModelSettings` act at once, even while a reply streams.
They live here rather than in :mod:`parley` because ``ModelSettings`` there is the settings
class (an ``LLMRequest``'s ``model``), while this one is the command that replaces a
conversation's overrides. docs/adapters.md says how an adapter uses them.
"""

from __future__ import annotations

from parley.core.conversation_commands import (
    Command,
    End,
    Interrupt,
    ListeningUnavailable,
    ModelSettings,
    Say,
    UserTurn,
)

__all__ = [
    "Command",
    "End",
    "Interrupt",
    "ListeningUnavailable",
    "ModelSettings",
    "Say",
    "UserTurn",
]
