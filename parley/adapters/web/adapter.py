"""The web adapter: mounts the REST, SSE and WebSocket routes and configures CORS and limits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Request, Response, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import HeaderParameter

from parley.adapters.web.audio_urls import AudioFetcher
from parley.adapters.web.identity import (
    Caller,
    IdentityError,
    bearer_token,
    identify,
    rate_limit_key,
)
from parley.adapters.web.settings import WebSettings
from parley.core.engine import Engine
from parley.server import ApiError, error_response, log_unhandled

if TYPE_CHECKING:
    from parley.adapters.web.ws import WebSession
    from parley.core.runtime import Runtime

__all__ = ["Limiter", "WebAdapter", "provide_caller", "provide_web"]

log = logging.getLogger(__name__)

DEVICE_HEADER = "X-Device-ID"


class Limiter:
    """A sliding one-minute window per key (user messages on the WebSocket); 0 = no limit."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one hit for ``key``; False when the window is full."""
        if not self.per_minute:
            return True
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - 60:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return False
        hits.append(now)
        return True


class WebAdapter:
    """Serves websites and apps: session API, device chat (JSON and SSE), history, ``/ws``."""

    name = "web"

    def __init__(self, runtime: Runtime, settings: WebSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.sockets: set[WebSession] = set()
        self.limiter = Limiter(settings.rate_limit)
        self.audio = AudioFetcher(settings)

    @property
    def engine(self) -> Engine:
        """The runtime's engine (after start-up)."""
        return self.runtime.engine

    def route_handlers(self) -> list[Any]:
        """One router holding every web route, with the adapter and the caller as dependencies."""
        from parley.adapters.web import chat, history, sessions, users, ws

        middleware = []
        if self.settings.rate_limit:
            limit = RateLimitConfig(
                rate_limit=("minute", self.settings.rate_limit),
                identifier_for_request=partial(_rate_limit_key, self.settings),
            )
            middleware.append(limit.middleware)
        session_routes = Router(
            path="/api/v1/chatbot/session",
            route_handlers=sessions.HANDLERS,
            exception_handlers={HTTPException: _session_error, Exception: _session_error},
        )
        router = Router(
            path="/",
            route_handlers=[
                *chat.HANDLERS,
                *history.HANDLERS,
                *users.HANDLERS,
                ws.websocket_handler,
                session_routes,
            ],
            dependencies={
                "web": Provide(provide_web, sync_to_thread=False),
                "caller": Provide(provide_caller),
            },
            middleware=middleware,
            request_max_body_size=self.settings.max_body_bytes,
            tags=["web"],
        )
        return [router]

    def configure_app(self, app_config: dict[str, Any]) -> None:
        """CORS for ``web.cors_origins``."""
        if self.settings.cors_origins:
            app_config["cors_config"] = CORSConfig(
                allow_origins=list(self.settings.cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", DEVICE_HEADER],
                expose_headers=[
                    "RateLimit-Limit",
                    "RateLimit-Remaining",
                    "RateLimit-Reset",
                    "RateLimit-Policy",
                ],
                max_age=600,
            )

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a WebSocket from ``origin`` may connect (any, when no origins are configured)."""
        origins = self.settings.cors_origins
        return not origins or "*" in origins or origin is None or origin in origins

    async def start(self) -> None:
        """Nothing runs in the background: sockets live with their connections."""

    async def stop(self) -> None:
        """Close the open sockets and wait for them (running replies are stored as interrupted)."""
        sockets = list(self.sockets)
        await asyncio.gather(*(s.close(1001, "server shutting down") for s in sockets))
        if sockets:
            waits = [asyncio.create_task(s.done.wait()) for s in sockets]
            _, late = await asyncio.wait(waits, timeout=5)
            for wait in late:
                wait.cancel()
        await self.audio.aclose()


# Litestar deep-copies routers when it registers them: what they hold must not reach the runtime.


def provide_web(state: State) -> WebAdapter:
    """The app's web adapter."""
    adapter: WebAdapter = state.runtime.adapters["web"]
    return adapter


def _rate_limit_key(settings: WebSettings, request: Request[Any, Any, Any]) -> str:
    client = request.client.host if request.client else None
    return rate_limit_key(settings, request.headers, client)


async def provide_caller(
    web: NamedDependency[WebAdapter],
    device_id: Annotated[
        str | None,
        HeaderParameter(
            name=DEVICE_HEADER,
            required=False,
            description="Anonymous device id (letters, digits, . _ ~ -; up to 128).",
        ),
    ] = None,
    authorization: Annotated[
        str | None,
        HeaderParameter(
            name="Authorization",
            required=False,
            description="Bearer <HS256 JWT with sub and exp> when web.auth_secret is set.",
        ),
    ] = None,
) -> Caller:
    """The identified caller; 400 without credentials, 401 for a bad token or a refused device."""
    try:
        return await identify(web.settings, device_id, bearer_token(authorization))
    except IdentityError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


def _session_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors of the session routes also carry ``"success": false``."""
    if not isinstance(exc, HTTPException):
        log_unhandled(request, exc)
    return error_response(exc, success=False)
