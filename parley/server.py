"""Builds the Litestar app from what plugins and adapters register."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.status_codes import (
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from parley.core.config import Settings
from parley.core.outages import Outage, describe
from parley.core.plugin_context import PluginContext
from parley.core.runtime import Runtime

__all__ = [
    "CLOSE_TRY_AGAIN_LATER",
    "ApiError",
    "create_app",
    "error_body",
    "error_response",
    "log_failure",
    "log_unhandled",
    "outage_error",
    "outage_frame",
]

log = logging.getLogger(__name__)

CLOSE_TRY_AGAIN_LATER = 1013
"""WebSocket close code for a socket that cannot start during an outage (RFC 6455 registry)."""

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(HTTPException):
    """An HTTP error with a stable machine-readable ``code``; rendered as ``{"error": {...}}``."""

    def __init__(self, status_code: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(detail=message, status_code=status_code)
        self.code = code
        self.extra = extra


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every HTTP error."""
    return {**extra, "error": {"code": code, "message": message}}


def error_response(exc: Exception, **extra: Any) -> Response[Any]:
    """The JSON error response for ``exc``: HTTP errors keep their status, an outage (database or
    Redis unreachable) is a 503 with ``Retry-After``, anything else is a 500.

    ``extra`` keys go into the body next to ``error`` (the session routes add ``success: false``).
    """
    outage = None if isinstance(exc, HTTPException) else describe(exc)
    if outage is not None:
        return Response(
            error_body(outage.code, outage.message, **extra),
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(outage.retry_after)},
        )
    if not isinstance(exc, HTTPException):
        body = error_body("internal_error", "something went wrong on our side", **extra)
        return Response(body, status_code=HTTP_500_INTERNAL_SERVER_ERROR)
    status = exc.status_code
    if isinstance(exc, ApiError):
        body = error_body(exc.code, exc.detail, **{**extra, **exc.extra})
    elif isinstance(exc, ValidationException):
        status = HTTP_422_UNPROCESSABLE_ENTITY
        detail = "; ".join(
            f"{e.get('key') or 'body'}: {e.get('message')}"
            for e in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(e, dict)
        )
        body = error_body("validation_error", detail or exc.detail, **extra)
    else:
        body = error_body(_CODES.get(status, "error"), exc.detail, **extra)
    return Response(body, status_code=status, headers=getattr(exc, "headers", None))


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return error_response(exc)


def log_failure(exc: BaseException, where: str) -> Outage | None:
    """Log a failure at ``where``: one warning line for an outage (returned), else the traceback."""
    outage = describe(exc)
    if outage is None:
        log.error("%s failed", where, exc_info=exc)
    else:
        log.warning("%s unavailable on %s: %s", outage.part, where, outage.detail)
    return outage


def log_unhandled(request: Request[Any, Any, Any], exc: Exception) -> None:
    """Log an error that is no HTTP error (an outage as one warning line)."""
    log_failure(exc, f"{request.method} {request.url.path}")


def outage_frame(exc: BaseException, where: str = "websocket") -> dict[str, Any] | None:
    """The WebSocket error frame for an outage behind ``exc`` (logged as one warning line):
    ``{"type": "error", "code": "unavailable", "message", "retry_after"}``; None for anything
    else (not logged: the caller logs it).
    """
    outage = describe(exc)
    if outage is None:
        return None
    log_failure(exc, where)
    return {"type": "error", **outage_error(outage)}


def outage_error(outage: Outage) -> dict[str, Any]:
    """``{"code", "message", "retry_after"}`` of an outage, for error frames and SSE lines."""
    return {"code": outage.code, "message": outage.message, "retry_after": outage.retry_after}


def _server_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log_unhandled(request, exc)
    return error_response(exc)


def create_app(settings: Settings, runtime: Runtime | None = None) -> Litestar:
    """The Litestar app: routes from plugins and adapters; the runtime starts with the app.

    Every route may ask for the dependency ``context: NamedDependency[PluginContext]`` (what
    ``startup`` hooks get); no route reads the runtime (``state.runtime`` is for the app's owner:
    the test servers read its settings).
    """
    runtime = runtime or Runtime(settings)
    runtime.collect()
    context = runtime.context

    def provide_context() -> PluginContext:
        """The plugin context of the running instance."""
        return context

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    # Adapters may add app-level settings (CORS, middleware, stores...) to this dict.
    app_config: dict[str, Any] = {}
    for adapter in runtime.adapters.values():
        configure = getattr(adapter, "configure_app", None)
        if configure is not None:
            configure(app_config)
    dependencies = app_config.setdefault("dependencies", {})
    dependencies["context"] = Provide(provide_context, sync_to_thread=False)
    return Litestar(
        route_handlers=runtime.route_handlers(),
        lifespan=[lifespan],
        state=State({"runtime": runtime}),
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        openapi_config=OpenAPIConfig(title="Parley", version="0.1.0", path="/schema"),
        **app_config,
    )
