"""What a plugin's ``startup`` and ``shutdown`` hooks and every route receive: a narrow view of
the running instance (settings, store access, engine commands, background tasks). The runtime
stays private."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from parley.core import store
from parley.core.background import BackgroundTasks
from parley.core.events import Event

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.core.providers import LLMProvider, STTProvider, TTSProvider
    from parley.core.store.records import ConversationRecord
    from parley.core.telemetry import Telemetry

__all__ = ["Host", "PluginContext"]

T = TypeVar("T")


class _Commands(Protocol):
    def say(
        self, conversation_id: str, text: str | None, *, end_reason: str | None = None
    ) -> AsyncIterator[Event]: ...

    async def end(self, conversation_id: str, reason: str) -> ConversationRecord: ...


class Host(Protocol):
    """What a context reads of the running instance (:class:`~parley.core.runtime.Runtime` is
    one; a protocol, so that this module imports nothing that imports the plugin manager)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def llm(self) -> LLMProvider | None: ...

    @property
    def stt(self) -> STTProvider | None: ...

    @property
    def tts(self) -> TTSProvider | None: ...

    @property
    def telemetry(self) -> Telemetry: ...

    @property
    def engine(self) -> _Commands: ...

    @property
    def locks(self) -> object | None: ...


class PluginContext:
    """Handed to ``startup(context)`` and ``shutdown(context)``; keep it for later use. Routes
    get the same object as the dependency ``context`` (``NamedDependency[PluginContext]``).

    Everything here is documented in docs/plugins.md; nothing else of the runtime is promised.
    """

    def __init__(self, runtime: Host) -> None:
        self._runtime = runtime
        self._tasks: dict[str, BackgroundTasks] = {}

    @property
    def settings(self) -> Settings:
        """The current settings (a reload replaces them: read them when needed, do not copy)."""
        return self._runtime.settings

    def section(self, name: str, cls: type[T]) -> T:
        """The section ``name`` validated into ``cls`` (declare it with ``register_settings`` so a
        bad value stops start-up instead of failing here)."""
        return self._runtime.settings.section(name, cls)

    @property
    def store(self) -> ModuleType:
        """``parley.core.store``: users, conversations and messages as frozen records."""
        return store

    @property
    def llm(self) -> LLMProvider | None:
        """The configured LLM provider (None before start-up)."""
        return self._runtime.llm

    @property
    def stt(self) -> STTProvider | None:
        """The speech-to-text provider, or None when none is configured."""
        return self._runtime.stt

    @property
    def tts(self) -> TTSProvider | None:
        """The text-to-speech provider, or None when none is configured."""
        return self._runtime.tts

    @property
    def telemetry(self) -> Telemetry:
        """Reports of turns and provider calls (subscribe to them), the tracer, scrape-time
        gauges (``telemetry.gauges["inbox_depth"] = callback``): see docs/operations.md."""
        return self._runtime.telemetry

    def probes(self) -> dict[str, Callable[[], Awaitable[Any]]]:
        """The shared services this process depends on, each with a ping that raises when the
        service is unreachable: ``database`` always, ``redis`` when ``redis.url`` is set (after
        start-up). ``GET /health`` reports them."""
        probes: dict[str, Callable[[], Awaitable[Any]]] = {"database": store.ping}
        client = getattr(self._runtime.locks, "client", None)  # RedisLocks: the Redis in use
        if client is not None:
            probes["redis"] = client.ping
        return probes

    async def say(
        self, conversation_id: str, text: str, *, end_reason: str | None = None
    ) -> list[Event]:
        """Say ``text`` in an open conversation outside a turn (stored as the speaker's message,
        under the conversation's lock); with ``end_reason`` the conversation then ends. Returns
        the events it produced (nothing when the conversation is not open)."""
        return [
            e async for e in self._runtime.engine.say(conversation_id, text, end_reason=end_reason)
        ]

    async def end(self, conversation_id: str, reason: str) -> ConversationRecord:
        """End the conversation with ``reason`` (the language's end prompt is stored first)."""
        return await self._runtime.engine.end(conversation_id, reason)

    def tasks(self, name: str) -> BackgroundTasks:
        """The plugin's group of tracked background tasks, named ``name`` (one per name). Drain
        it in ``shutdown`` with your own grace; whatever still runs after the shutdown hooks is
        cancelled by the runtime."""
        return self._tasks.setdefault(name, BackgroundTasks(name))

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "plugin") -> None:
        """Run ``coro`` in the background, tracked (failures logged, cancelled at shutdown)."""
        self.tasks(name).spawn(coro, name=name)

    async def close(self) -> None:
        """Cancel the background tasks still running (the runtime calls it after ``shutdown``)."""
        for group in self._tasks.values():
            await group.drain(0)
