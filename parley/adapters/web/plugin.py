"""Built-in plugin ``web``: registers the web adapter (REST, SSE and WebSocket)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from parley.adapters.web.settings import WebSettings
from parley.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from parley.adapters.web.adapter import WebAdapter
    from parley.core.adapter_context import AdapterContext

__all__ = ["make_web_adapter", "register_adapters", "route_handlers"]


def route_handlers(*, memory: bool = True) -> list[Any]:
    """Every web route: chat, history, ``/ws``, the session API (its own errors) and, with the
    ``memory`` plugin loaded (``memory``), the caller's memory erasure."""
    from litestar import Router
    from litestar.exceptions import HTTPException

    from parley.adapters.web import admin, chat, history, sessions, users, ws
    from parley.adapters.web.adapter import session_error, too_deep

    session_routes = Router(
        path="/api/v1/chatbot/session",
        route_handlers=sessions.HANDLERS,
        exception_handlers={
            HTTPException: session_error,
            RecursionError: partial(too_deep, success=False),
            Exception: session_error,
        },
    )
    return [
        *chat.HANDLERS,
        *history.HANDLERS,
        *(users.HANDLERS if memory else ()),
        *admin.HANDLERS,
        ws.websocket_handler,
        session_routes,
    ]


def make_web_adapter(context: AdapterContext) -> WebAdapter | None:
    """The adapter, or None when ``web.enabled`` is false. Bad ``[web]`` settings raise here."""
    from parley.adapters.web.adapter import WebAdapter

    settings = context.section("web", WebSettings)
    if not settings.enabled:
        return None
    memory = context.has_plugin("memory")  # plugins.disable may leave it out
    return WebAdapter(context, settings, partial(route_handlers, memory=memory))


@hookimpl
def register_adapters(register: Callable[..., None]) -> None:
    """Register ``web``."""
    register("web", make_web_adapter)
