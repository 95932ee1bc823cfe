"""The plugin manager factory and the hook caller.

Built-in plugins are registered by the same manager as third-party ones (entry-point group
``parley``). The app owns the manager: nothing here is a module global loaded at import time.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from parley.core import hookspecs
from parley.core.hookspecs import PROJECT

__all__ = [
    "DEFAULT_PLUGINS",
    "Hooks",
    "PluginInfo",
    "PluginManager",
    "describe_plugins",
    "make_plugin_manager",
]

log = logging.getLogger(__name__)

DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("openai", "parley.plugins.openai.plugin"),
    ("echo", "parley.plugins.echo.plugin"),
    ("deepgram", "parley.plugins.deepgram.plugin"),
    ("elevenlabs", "parley.plugins.elevenlabs.plugin"),
    ("local", "parley.plugins.local.plugin:LocalPlugin"),
    ("mentions", "parley.plugins.mentions"),
    ("health", "parley.plugins.health"),
    ("clock", "parley.plugins.clock"),
    ("router", "parley.plugins.router:RouterPlugin"),
    ("memory", "parley.plugins.memory:MemoryPlugin"),
    ("notify", "parley.plugins.notify:NotifyPlugin"),
    ("metrics", "parley.plugins.metrics:MetricsPlugin"),
    ("tracing", "parley.plugins.tracing:TracingPlugin"),
    ("web", "parley.adapters.web.plugin"),
    ("whatsapp", "parley.adapters.whatsapp.plugin"),
    ("telegram", "parley.adapters.telegram.plugin"),
    ("widget", "parley.adapters.widget.plugin"),
)
"""(name, module) of every built-in plugin, registered like any other.

``module:Class`` registers a new instance of ``Class`` per plugin manager: plugins that keep
state (background tasks, clients) get it from their ``startup`` hook, never from a global.
"""


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, refusing at registration what :class:`Hooks` does not run.

    Hooks calls each implementation on its own (to await it, to isolate its failure, to chain
    results), so pluggy wrappers (``wrapper=True`` / ``hookwrapper=True``) have nothing to wrap:
    such a plugin is refused with ``pluggy.PluginValidationError``, as is an ``async``
    implementation of a ``register_*`` hook (they are called synchronously at start-up).
    """

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` (pluggy's checks first, then Parley's)."""
        registered = super().register(plugin, name)
        if registered is None:  # blocked (plugins.disable)
            return None
        try:
            _check(self, plugin, registered)
        except pluggy.PluginValidationError:
            self.unregister(plugin)
            raise
        return registered


def _check(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if impl.hookwrapper or impl.wrapper:
                raise pluggy.PluginValidationError(
                    plugin,
                    f"plugin {name!r}: hook {caller.name} is a wrapper; Parley calls every "
                    "implementation itself and runs no wrappers (docs/hooks.md)",
                )
            fn = impl.function
            if caller.name.startswith("register_") and (
                inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
            ):
                raise pluggy.PluginValidationError(
                    plugin, f"plugin {name!r}: hook {caller.name} must be a plain function"
                )


def _load_builtin(target: str) -> object:
    module, _, attr = target.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr)() if attr else loaded


def make_plugin_manager(
    disable: Iterable[str] = (),
    *,
    entry_points: bool = True,
    extra: Iterable[tuple[str, object]] = (),
) -> pluggy.PluginManager:
    """Build a plugin manager: built-ins, then entry points of group ``parley``, then ``extra``.

    Plugins named in ``disable`` (settings ``plugins.disable``) are not loaded.
    """
    pm = PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = set(disable)
    for name in disabled:
        pm.set_blocked(name)
    for name, module in DEFAULT_PLUGINS:
        if name not in disabled:
            pm.register(_load_builtin(module), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(PROJECT)
    for name, plugin in extra:
        if name not in disabled:
            pm.register(plugin, name=name)
    pm.check_pending()
    return pm


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``parley plugins`` prints about one plugin."""

    name: str
    source: str
    hooks: tuple[str, ...]


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Each loaded plugin with where it came from and the hooks it implements."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    builtin = {name for name, _ in DEFAULT_PLUGINS}
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        if id(plugin) in dists:
            dist = dists[id(plugin)]
            source = f"entry point ({dist.project_name} {dist.version})"
        elif name in builtin:
            source = "built-in"
        else:
            source = "registered"
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        infos.append(PluginInfo(name=name, source=source, hooks=hooks))
    return infos


class Hooks:
    """Calls hooks the way docs/hooks.md promises, one implementation at a time.

    Order is pluggy's (the last registered first; ``tryfirst``/``trylast`` move). Each result is
    awaited when it is awaitable; an implementation that raises is logged with its plugin's name
    and skipped. ``firstresult`` hooks stop at the first non-None result *after* awaiting it.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def _impls(self, name: str) -> list[pluggy.HookImpl]:
        return list(reversed(getattr(self.pm.hook, name).get_hookimpls()))

    def _firstresult(self, name: str) -> bool:
        spec = getattr(self.pm.hook, name).spec
        return bool(spec and spec.opts.get("firstresult"))

    async def _call_one(self, impl: pluggy.HookImpl, name: str, kwargs: dict[str, Any]) -> Any:
        args = {arg: kwargs[arg] for arg in impl.argnames if arg in kwargs}
        try:
            result = impl.function(**args)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("hook %s of plugin %r failed; the turn goes on", name, impl.plugin_name)
            return None
        return result

    def call_sync(self, name: str, **kwargs: Any) -> list[Any]:
        """Call a ``register_*`` contribution hook (plain functions only); failures are logged."""
        results = []
        for impl in self._impls(name):
            args = {arg: kwargs[arg] for arg in impl.argnames if arg in kwargs}
            try:
                result = impl.function(**args)
            except Exception:
                log.exception("hook %s of plugin %r failed", name, impl.plugin_name)
                continue
            if result is not None:
                results.append(result)
        return results

    async def call(self, name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of ``name`` in order; return their non-None results (for a
        ``firstresult`` hook, at most the first)."""
        if self._firstresult(name):
            first = await self.first(name, **kwargs)
            return [] if first is None else [first]
        results = []
        for impl in self._impls(name):
            result = await self._call_one(impl, name, kwargs)
            if result is not None:
                results.append(result)
        return results

    async def first(self, name: str, **kwargs: Any) -> Any:
        """Call implementations until one returns non-None (firstresult hooks)."""
        for impl in self._impls(name):
            result = await self._call_one(impl, name, kwargs)
            if result is not None:
                return result
        return None

    async def chain(self, name: str, key: str, value: Any, **kwargs: Any) -> Any:
        """Pass ``value`` through each implementation as ``key``; a non-None result replaces it
        for the next one (so an in-place edit and a returned value combine)."""
        for impl in self._impls(name):
            result = await self._call_one(impl, name, {**kwargs, key: value})
            if result is not None:
                value = result
        return value
