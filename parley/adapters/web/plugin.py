"""Built-in plugin ``web``: registers the web adapter (REST, SSE and WebSocket)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from parley.adapters.web.settings import WebSettings
from parley.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from parley.adapters.web.adapter import WebAdapter
    from parley.core.runtime import Runtime

__all__ = ["make_web_adapter", "register_adapters"]


def make_web_adapter(runtime: Runtime) -> WebAdapter | None:
    """The adapter, or None when ``web.enabled`` is false. Bad ``[web]`` settings raise here."""
    from parley.adapters.web.adapter import WebAdapter

    settings = runtime.settings.section("web", WebSettings)
    return WebAdapter(runtime, settings) if settings.enabled else None


@hookimpl
def register_adapters(register: Callable[..., None]) -> None:
    """Register ``web``."""
    register("web", make_web_adapter)
