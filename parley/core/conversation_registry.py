"""The live conversations of one process (``runtime.conversations``): one
:class:`~parley.core.conversation.LiveConversation` each, created on demand and forgotten when
nothing is attached, queued or listening."""

from __future__ import annotations

from parley.core.bus import EventBus
from parley.core.conversation import LiveConversation
from parley.core.engine import Engine

__all__ = ["Conversations"]


class Conversations:
    """The live conversations of this process."""

    def __init__(self, engine: Engine, bus: EventBus) -> None:
        self.engine = engine
        self.bus = bus
        self._live: dict[str, LiveConversation] = {}

    def get(self, conversation_id: str) -> LiveConversation:
        """The live conversation (created when there is none)."""
        live = self._live.get(conversation_id)
        if live is None:
            live = LiveConversation(self.engine, self.bus, conversation_id, self._forget)
            self._live[conversation_id] = live
        return live

    def find(self, conversation_id: str) -> LiveConversation | None:
        """The live conversation, or None when nothing of it runs here."""
        return self._live.get(conversation_id)

    def _forget(self, live: LiveConversation) -> None:
        if self._live.get(live.id) is live:
            del self._live[live.id]

    def __len__(self) -> int:
        return len(self._live)

    async def close(self) -> None:
        """Stop every live conversation (replies in flight are stored interrupted)."""
        for live in list(self._live.values()):
            await live.close()
