"""The web adapter: mounts the REST, SSE and WebSocket routes and configures CORS and limits."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Request, Response, Router
from litestar.config.cors import CORSConfig
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import HeaderParameter

from parley.adapters.web import limits
from parley.adapters.web.audio_urls import AudioFetcher
from parley.adapters.web.identity import (
    Caller,
    IdentityError,
    bearer_token,
    identify,
)
from parley.adapters.web.limits import Limiter
from parley.adapters.web.settings import WebSettings
from parley.core.engine import Engine
from parley.core.text import TOO_DEEP, loads_clean
from parley.server import ApiError, error_response, log_unhandled

if TYPE_CHECKING:
    from parley.core.adapter_context import AdapterContext

__all__ = [
    "WebAdapter",
    "provide_caller",
    "provide_device_caller",
    "provide_web",
    "session_error",
    "too_deep",
]

log = logging.getLogger(__name__)

DEVICE_HEADER = "X-Device-ID"


class WebAdapter:
    """Serves websites and apps: session API, device chat (JSON and SSE), history, ``/ws``."""

    name = "web"

    def __init__(
        self,
        context: AdapterContext,
        settings: WebSettings,
        handlers: Callable[[], list[Any]] = list,
    ) -> None:
        self.context = context
        self.settings = settings
        self.handlers = handlers
        """The route handlers to mount (``plugin.py`` names them: no import cycle back here)."""
        self.sockets: set[Any] = set()
        """Open ``/ws`` sessions (``ws.WebSession``)."""
        self.limiter = Limiter(
            settings.rate_limit,
            settings.rate_limit_per_address or 0,
            redis=_redis(context.settings.redis.url),
            namespace=settings.rate_limit_namespace,
        )
        self.audio = AudioFetcher(settings)

    @property
    def engine(self) -> Engine:
        """The engine (after start-up)."""
        return self.context.engine

    def route_handlers(self) -> list[Any]:
        """One router holding every web route, with the adapter and the caller as dependencies."""
        middleware = limits.middlewares(self.settings)
        router = Router(
            path="/",
            route_handlers=self.handlers(),
            dependencies={
                "web": Provide(provide_web(self), sync_to_thread=False),
                "caller": Provide(
                    provide_caller if self.settings.auth_secret else provide_device_caller
                ),
            },
            middleware=middleware,
            exception_handlers={RecursionError: too_deep},
            before_request=clean_body,
            request_max_body_size=self.settings.max_body_bytes,
            tags=["web"],
        )
        return [router]

    def configure_app(self, app_config: dict[str, Any]) -> None:
        """CORS for ``web.cors_origins``; rate limits counted in Redis when ``redis.url`` is set."""
        redis_url = self.context.settings.redis.url
        if redis_url:
            namespace = self.settings.rate_limit_namespace
            stores = app_config.setdefault("stores", {})
            stores[limits.STORE] = limits.redis_store(redis_url, f"{namespace}:http")
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
        await self.limiter.aclose()


def provide_web(adapter: WebAdapter) -> Callable[[], WebAdapter]:
    """The provider of the ``web`` dependency: ``adapter`` itself. Litestar deep-copies routers
    when it registers them, and so what they hold, but not a function: the closure keeps the
    adapter (a bound method or a value would be a copy)."""

    def web() -> WebAdapter:
        return adapter

    return web


async def clean_body(request: Request[Any, Any, Any]) -> None:
    """A JSON body escaping lone surrogates (``"\\ud83d"``, valid JSON that strict decoders
    refuse) is decoded leniently and its strings cleaned (U+FFFD) before the route reads it."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()  # within request_max_body_size (413 beyond)
    cleaned = loads_clean(body)
    if cleaned is not None:
        request._body = request._connection_state.body = json.dumps(cleaned).encode()


def _redis(url: str) -> Any:
    """A Redis client for ``redis.url`` (None when empty)."""
    if not url:
        return None
    from redis.asyncio import Redis

    return Redis.from_url(url)


_DEVICE_SCHEMA = {"pattern": r"^[A-Za-z0-9._~-]{1,128}$", "minLength": 1, "maxLength": 128}
"""The device id's shape, for the OpenAPI document only (a bad one is answered by
:func:`identify` with 400 ``invalid_device_id``)."""


async def _caller(web: WebAdapter, device_id: str | None, authorization: str | None) -> Caller:
    try:
        return await identify(web.settings, device_id, bearer_token(authorization))
    except IdentityError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


async def provide_caller(
    web: NamedDependency[WebAdapter],
    device_id: Annotated[
        str | None,
        HeaderParameter(
            name=DEVICE_HEADER,
            required=False,
            description="Anonymous device id (letters, digits, . _ ~ -; up to 128); "
            "not needed with a token.",
            schema_extra=_DEVICE_SCHEMA,
        ),
    ] = None,
    authorization: Annotated[
        str | None,
        HeaderParameter(
            name="Authorization",
            required=False,
            description="Bearer <HS256 JWT with sub and exp> (web.auth_secret is set).",
        ),
    ] = None,
) -> Caller:
    """The identified caller (device id or token); 400 without credentials, 401 for a bad token
    or a refused device."""
    return await _caller(web, device_id, authorization)


async def provide_device_caller(
    web: NamedDependency[WebAdapter],
    device_id: Annotated[
        str | None,
        HeaderParameter(
            name=DEVICE_HEADER,
            required=True,  # documented as required; a missing one is our 400, not Litestar's
            description="Anonymous device id (letters, digits, . _ ~ -; up to 128).",
            schema_extra=_DEVICE_SCHEMA,
        ),
    ] = None,
) -> Caller:
    """The caller when ``web.auth_secret`` is empty: the device id is required (400 without)."""
    return await _caller(web, device_id, None)


def too_deep(request: Request[Any, Any, Any], exc: Exception, **extra: Any) -> Response[Any]:
    """A JSON body nested deeper than the decoder goes: the client's mistake, 400 ``invalid_json``
    (logged at DEBUG only)."""
    log.debug("%s %s: JSON body nested too deeply", request.method, request.url.path)
    return error_response(ApiError(400, "invalid_json", TOO_DEEP), **extra)


def session_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors of the session routes also carry ``"success": false``."""
    if not isinstance(exc, HTTPException):
        log_unhandled(request, exc)
    return error_response(exc, success=False)
