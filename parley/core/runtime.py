"""The runtime: settings + plugins + providers + database + engine + adapters, started together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy

from parley.core import store
from parley.core.adapter import Adapter
from parley.core.adapter_context import AdapterContext
from parley.core.bus import EventBus, RedisEventBus
from parley.core.choice import AUTO, choose
from parley.core.config import Settings, SettingsError
from parley.core.conversation_registry import Conversations
from parley.core.engine import Engine
from parley.core.failover_settings import primary_settings
from parley.core.failover_speech import build_chain
from parley.core.inbox import Inbox, InboxSettings
from parley.core.inbox_turns import start_inbox
from parley.core.loading import load_settings
from parley.core.locks import LocalLocks, RedisLocks
from parley.core.outages import OutageLogFilter
from parley.core.plugin_context import PluginContext
from parley.core.plugins import Hooks, make_plugin_manager
from parley.core.providers import LLMProvider, ProviderRegistry, STTProvider, TTSProvider
from parley.core.telemetry import Telemetry
from parley.core.tools import ToolRegistry

__all__ = ["Runtime"]

log = logging.getLogger(__name__)


class Runtime:
    """Everything a running Parley instance holds. Build one, ``await start()``, ``await stop()``."""

    def __init__(self, settings: Settings, pm: pluggy.PluginManager | None = None) -> None:
        self.settings = settings
        self.pm = pm or make_plugin_manager(settings.plugins.disable)
        self.hooks = Hooks(self.pm)
        self.registry = ProviderRegistry()
        self.tools = ToolRegistry()
        self.adapter_factories: dict[str, Callable[[AdapterContext], Adapter | None]] = {}
        self.adapters: dict[str, Adapter] = {}
        self.running: list[Adapter] = []
        self.routes: list[Any] = []
        self.plugin_settings: dict[str, Any] = {}
        self.notices: list[str] = []
        self.llm: LLMProvider | None = None
        self.stt: STTProvider | None = None
        self.tts: TTSProvider | None = None
        self.telemetry = Telemetry()
        self._engine: Engine | None = None
        self.context = PluginContext(self)
        """What ``startup`` / ``shutdown`` hooks get."""
        self.adapter_context = AdapterContext(self)
        """What adapter factories get (never the runtime itself)."""
        self.locks: LocalLocks | RedisLocks | None = None
        self.inbox: Inbox | None = None
        """The durable inbox; adapters register their channels' handlers in ``start``."""
        self.bus: EventBus | None = None
        self._conversations: Conversations | None = None
        self.started = False
        self.collected = False
        self._reloading = asyncio.Lock()

    @property
    def engine(self) -> Engine:
        """The engine (after :meth:`start`)."""
        if self._engine is None:
            raise RuntimeError("the runtime has not started")
        return self._engine

    @property
    def conversations(self) -> Conversations:
        """The live conversations of this process (after :meth:`start`)."""
        if self._conversations is None:
            raise RuntimeError("the runtime has not started")
        return self._conversations

    def _registrar(self, kind: str) -> Callable[..., None]:
        table = getattr(self.registry, kind)

        def register(name: str, factory: Callable[..., Any]) -> None:
            table[name] = factory

        return register

    def collect(self) -> None:
        """Call the contribution hooks (providers, adapters, routes, tools), build the adapters."""
        if self.collected:
            return
        self.collected = True
        for kind in ("llm", "stt", "tts"):
            self.hooks.call_sync(f"register_{kind}_providers", register=self._registrar(kind))

        def register_adapter(
            name: str, factory: Callable[[AdapterContext], Adapter | None]
        ) -> None:
            self.adapter_factories[name] = factory

        self.hooks.call_sync("register_adapters", register=register_adapter)
        self.hooks.call_sync("register_routes", register=self.routes.append)
        sections: list[tuple[str, type]] = []
        self.hooks.call_sync(
            "register_settings", register=lambda name, cls: sections.append((name, cls))
        )
        for name, cls in sections:  # a SettingsError here stops start-up, naming the key
            self.plugin_settings[name] = self.settings.section(name, cls)
        self.hooks.call_sync("register_tools", register=self.tools.register)
        for persona in self.settings.personas.values():
            missing = [name for name in persona.tools if name not in self.tools]
            if missing:
                self.notices.append(
                    f"personas.{persona.id}.tools: no tool named {', '.join(missing)} "
                    f"(registered: {', '.join(self.tools.names()) or 'none'})"
                )
        for name, factory in self.adapter_factories.items():
            adapter = factory(self.adapter_context)
            if adapter is not None:
                self.adapters[name] = adapter

    def build_llm(self) -> LLMProvider:
        """The configured LLM provider (``auto``: see :mod:`parley.core.choice`); the offline
        ``echo`` one when ``openai`` has neither a key nor a ``base_url``."""
        llm = self.settings.llm
        name = llm.provider
        if name == AUTO:
            return self._choose("llm")
        configured = llm.resolved_api_key() or llm.base_url
        if name == "openai" and not configured and "echo" in self.registry.llm:
            self.notices.append(
                "No LLM API key: set llm.api_key (settings/.secrets.toml or PARLEY_LLM__API_KEY) "
                "or OPENAI_API_KEY. Using the offline 'echo' provider meanwhile."
            )
            name = "echo"
        return self.registry.make("llm", name, primary_settings(self.settings, "llm"))

    def _optional_provider(self, kind: str) -> Any:
        section = self.settings.raw.get(kind) or {}
        name = section.get("provider") if isinstance(section, dict) else None
        if not name:
            return None
        if name == AUTO:
            return self._choose(kind)
        if name not in getattr(self.registry, kind):
            known = ", ".join(sorted(getattr(self.registry, kind))) or "none"
            self.notices.append(
                f"{kind}.provider: no provider named {name!r} (registered: {known})"
            )
            return None
        try:
            return self.registry.make(kind, name, primary_settings(self.settings, kind))
        except SettingsError:
            raise
        except Exception as exc:  # a missing SDK or key must not stop text chat
            off = "voice input is off" if kind == "stt" else "replies are not spoken"
            self.notices.append(f"{kind} provider {name!r} unavailable ({off}): {exc}")
            return None

    def _choose(self, kind: str) -> Any:
        choice = choose(kind, self.settings, self.registry)
        if kind == "llm" and choice.provider is None:
            known = ", ".join(sorted(self.registry.llm)) or "none"
            raise SettingsError(
                f"llm.provider: 'auto' found no usable provider (registered: {known})"
            )
        notice = choice.notice()
        if notice:
            self.notices.append(notice)
        return choice.provider

    def build_providers(self) -> None:
        """Build the LLM, STT and TTS providers once (``start`` does it; ``parley serve`` does it
        earlier so a bad ``stt``/``tts`` setting stops it with the key's name)."""
        if self.llm is not None:
            return
        self.collect()
        # Each wrapped in its failover chain (fallbacks, watchdogs, breakers, telemetry).
        self.llm = build_chain(
            "llm", self.build_llm(), self.registry, self.settings, self.telemetry
        )
        for kind in ("stt", "tts"):
            primary = self._optional_provider(kind)
            if primary is not None:
                primary = build_chain(kind, primary, self.registry, self.settings, self.telemetry)
            setattr(self, kind, primary)

    async def start(self, *, connect_db: bool = True, adapters: bool = True) -> None:
        """Open the database (applying migrations), build providers and the engine, start adapters."""
        self.build_providers()
        assert self.llm is not None
        OutageLogFilter.install("asyncpg.pool")  # one line per reconnection attempt, no traceback
        if connect_db:
            await store.connect(self.settings.database.url)
        redis = self.settings.redis
        self.locks = RedisLocks(redis.url, ttl=redis.lock_ttl) if redis.url else LocalLocks()
        self.bus = RedisEventBus(redis.url) if redis.url else EventBus()
        await self.bus.start()
        self._engine = Engine(
            self.settings,
            self.hooks,
            self.llm,
            stt=self.stt,
            tts=self.tts,
            locks=self.locks,
            tools=self.tools,
            telemetry=self.telemetry,
            bus=self.bus,
        )
        self.inbox = Inbox(self.settings.section("inbox", InboxSettings))
        self._engine.inbox = self.inbox
        start_inbox(self.inbox, self._engine.run_turn, self.locks)
        self._conversations = conversations = Conversations(self._engine, self.bus)
        self.telemetry.gauges.setdefault("live_conversations", lambda: len(conversations))
        self.started = True
        for notice in self.notices:
            log.warning(notice)
        await self.hooks.call("startup", context=self.context)
        if adapters:
            for adapter in self.adapters.values():
                await adapter.start()
                self.running.append(adapter)
        # Claims begin once every adapter's handler is registered (a command that starts an
        # adapter of its own registers it later: the loop picks its channel up then).
        await self.inbox.start()

    async def stop(self) -> None:
        """Stop the inbox's claims and adapters, call ``shutdown`` hooks, close the database."""
        if self.inbox is not None:
            await self.inbox.stop()
        while self.running:
            adapter = self.running.pop()
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter %s failed to stop", adapter.name)
        await self.adapter_context.close()  # the adapters' background tasks
        if self._conversations is not None:
            await self._conversations.close()
        await self.hooks.call("shutdown", context=self.context)
        await self.context.close()
        if self.bus is not None:
            await self.bus.close()
            self.bus = None
        if self.locks is not None:
            await self.locks.close()
        for provider in (self.llm, self.stt, self.tts):
            aclose = getattr(provider, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.exception("provider %s failed to close", getattr(provider, "name", "?"))
        self.llm = self.stt = self.tts = None
        if self.started:
            await store.close()
        self.started = False

    def reload_settings(self) -> Settings:
        """Reload the settings folder (personas, templates, languages...) without a restart.

        The new settings replace ``runtime.settings`` and the engine's; providers, the database
        and adapters keep what they were built with. Raises :class:`SettingsError` (and keeps the
        current settings) when the folder is invalid or the settings were not loaded from one.
        """
        if self.settings.directory is None:
            raise SettingsError("settings: not loaded from a settings folder; nothing to reload")
        return self._apply_settings(*self._load(self.settings.directory))

    async def reload(self) -> Settings:
        """:meth:`reload_settings` off the event loop: the folder is read and validated in a
        thread, then swapped in (one reload at a time)."""
        if self.settings.directory is None:
            raise SettingsError("settings: not loaded from a settings folder; nothing to reload")
        async with self._reloading:
            loaded = await asyncio.to_thread(self._load, self.settings.directory)
            return self._apply_settings(*loaded)

    def _load(self, directory: Path) -> tuple[Settings, dict[str, Any]]:
        """The folder's settings and every plugin section, validated (SettingsError if bad)."""
        settings = load_settings(directory)
        sections = {
            name: settings.section(name, type(current))
            for name, current in self.plugin_settings.items()
        }
        return settings, sections

    def _apply_settings(self, settings: Settings, sections: dict[str, Any]) -> Settings:
        """Swap in the settings: the runtime's, the engine's and the plugins' sections."""
        self.settings = settings
        self.plugin_settings.update(sections)
        if self._engine is not None:
            self._engine.settings = settings
        return settings

    def route_handlers(self) -> list[Any]:
        """Every route handler to mount: plugins' routes plus each adapter's."""
        handlers = list(self.routes)
        for adapter in self.adapters.values():
            handlers.extend(adapter.route_handlers())
        return handlers
