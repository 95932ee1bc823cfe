"""What an adapter factory receives: the plugin context plus what a transport drives (the engine,
the live conversations, the inbox, the conversation locks, a settings reload). The runtime stays
private."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from parley.core.plugin_context import Host, PluginContext

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.core.conversation_registry import Conversations
    from parley.core.engine import Engine
    from parley.core.inbox import Inbox
    from parley.core.locks import Locks

__all__ = ["AdapterContext", "AdapterHost"]


class AdapterHost(Host, Protocol):
    """What an adapter context reads of the running instance (the runtime is one)."""

    @property
    def engine(self) -> Engine: ...

    @property
    def conversations(self) -> Conversations: ...

    @property
    def inbox(self) -> Inbox | None: ...

    @property
    def pm(self) -> Any: ...

    async def reload(self) -> Settings: ...


class AdapterContext(PluginContext):
    """Handed to each ``register_adapters`` factory: ``factory(context)``; keep it.

    Everything a :class:`~parley.PluginContext` offers, plus the parts below, documented in
    docs/adapters.md; nothing else of the runtime is promised. The engine, the live conversations
    and the inbox exist once the runtime has started (an adapter's ``start``), not yet while the
    factory runs.
    """

    def __init__(self, runtime: AdapterHost) -> None:
        super().__init__(runtime)
        self._host = runtime

    @property
    def engine(self) -> Engine:
        """The engine: ``open`` / ``resume_or_open`` / ``turn`` / ``end`` / ``say`` / ``replay``
        (after start-up; RuntimeError before)."""
        return self._host.engine

    @property
    def conversations(self) -> Conversations:
        """The live conversations of this process: ``get(conversation_id)`` is the conversation
        runtime a transport sends commands to and subscribes to (after start-up)."""
        return self._host.conversations

    @property
    def inbox(self) -> Inbox:
        """The durable inbox: ``register(channel, handler)`` in ``start``, then ``put`` what
        arrives before acknowledging it (after start-up)."""
        inbox = self._host.inbox
        if inbox is None:
            raise RuntimeError("the runtime has not started")
        return inbox

    @property
    def locks(self) -> Locks:
        """The per-conversation locks the engine takes (``async with locks.hold(id)``), across
        processes when ``redis.url`` is set (after start-up)."""
        return self.engine.locks

    def has_plugin(self, name: str) -> bool:
        """Whether the plugin ``name`` is loaded (``plugins.disable`` may leave a built-in out)."""
        return self._host.pm.get_plugin(name) is not None

    async def reload(self) -> Settings:
        """Re-read the settings folder (in a thread, one reload at a time) and swap it in;
        SettingsError (the current settings stay) when it is invalid."""
        return await self._host.reload()
