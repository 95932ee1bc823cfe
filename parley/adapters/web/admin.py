"""Operator actions: reloading the settings folder, with ``web.admin_token``.

``POST /api/v1/admin/reload-settings`` (``Authorization: Bearer <web.admin_token>``) or the
socket's ``refresh_characters`` frame carrying ``data.admin_token``. The folder is read in a
thread (never on the event loop), one reload at a time; every plugin reads the reloaded settings
from the runtime. Without ``web.admin_token``, reloading over the web is off (403).
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from litestar import post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter

from parley.adapters.web.adapter import WebAdapter
from parley.adapters.web.frames import FrameError
from parley.adapters.web.identity import bearer_token
from parley.core.config import Settings, SettingsError
from parley.openapi import errors
from parley.server import ApiError

__all__ = ["HANDLERS", "is_operator", "reload_as_operator", "reload_from_socket"]

log = logging.getLogger(__name__)


def is_operator(web: WebAdapter, token: str | None) -> bool:
    """Whether ``token`` is ``web.admin_token`` (never when no token is configured)."""
    expected = web.settings.admin_token
    if not expected or not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


async def reload_as_operator(web: WebAdapter, token: str | None) -> Settings:
    """Reload the settings for an operator: 403 when off, 401 for a wrong token, 422 when the
    folder is invalid (the current settings stay)."""
    if not web.settings.admin_token:
        raise ApiError(403, "forbidden", "reloading settings over the web is off (web.admin_token)")
    if not is_operator(web, token):
        raise ApiError(401, "invalid_token", "an operator token is required")
    try:
        settings = await web.context.reload()
    except SettingsError as exc:
        raise ApiError(422, "reload_failed", str(exc)) from None
    log.info("settings reloaded by an operator")
    return settings


async def reload_from_socket(web: WebAdapter, token: str | None) -> None:
    """The socket's ``refresh_characters``: an operator's reload; FrameError for anyone else."""
    try:
        await reload_as_operator(web, token)
    except ApiError as exc:
        code = "forbidden" if exc.status_code in (401, 403) else exc.code
        raise FrameError(code, exc.detail) from None


@post(
    "/api/v1/admin/reload-settings",
    status_code=200,
    summary="Reload the settings folder (operators)",
    responses=errors(400, 401, 403, 422, 429, 503),
)
async def reload_settings(
    web: NamedDependency[WebAdapter],
    authorization: Annotated[
        str | None,
        HeaderParameter(
            name="Authorization",
            required=True,
            description="Bearer <web.admin_token>.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Re-read personas, templates and language packs without a restart."""
    settings = await reload_as_operator(web, bearer_token(authorization))
    return {
        "reloaded": True,
        "templates": sorted(settings.templates),
        "personas": sorted(settings.personas),
        "languages": sorted(settings.languages),
    }


HANDLERS = [reload_settings]
