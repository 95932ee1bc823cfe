"""Built-in plugin ``web``: registers the web adapter (REST, SSE and WebSocket)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from parley.adapters.web.settings import WebSettings
from parley.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from parley.adapters.web.adapter import WebAdapter
    from parley.core.runtime import Runtime

__all__ = ["make_web_adapter", "register_adapters", "route_handlers"]


def route_handlers() -> list[Any]:
    """Every web route: chat, history, users, ``/ws`` and the session API (its own errors)."""
    from functools import partial

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
        *users.HANDLERS,
        *admin.HANDLERS,
        ws.websocket_handler,
        session_routes,
    ]


def make_web_adapter(runtime: Runtime) -> WebAdapter | None:
    """The adapter, or None when ``web.enabled`` is false. Bad ``[web]`` settings raise here."""
    from parley.adapters.web.adapter import WebAdapter

    settings = runtime.settings.section("web", WebSettings)
    return WebAdapter(runtime, settings, route_handlers) if settings.enabled else None


@hookimpl
def register_adapters(register: Callable[..., None]) -> None:
    """Register ``web``."""
    register("web", make_web_adapter)
