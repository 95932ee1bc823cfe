"""Who is calling: a signed token (HS256 JWT) or an anonymous device id, mapped to a user.

A device id maps to the user of identity (``web``, device id). With ``web.auth_secret`` set, a
token's ``sub`` maps to the user of identity (``web``, ``jwt:<sub>``): device ids cannot contain
``:``, so a device can never pose as a signed-in user. Without a secret, tokens are ignored.

The session API (``/api/v1/chatbot/session``) has its own rule, :func:`session_caller`: without
a secret, the body's ``user_id`` names the user in its own namespace (identity
(``web-session``, user id)), apart from device ids; with a secret, the token is required and
its ``sub`` must be the ``user_id``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jwt

from parley.adapters.web.settings import WebSettings
from parley.core import store

__all__ = [
    "CHANNEL",
    "SESSION_IDENTITY",
    "Caller",
    "IdentityError",
    "bearer_token",
    "identify",
    "rate_limit_key",
    "resolve_identity",
    "session_caller",
    "session_subject",
    "socket_identity",
    "verify_token",
]

CHANNEL = "web"
"""The identities channel of web callers."""

SESSION_IDENTITY = "web-session"
"""The identities channel of session API users named by ``user_id`` (no secret set)."""

MAX_SESSION_USER_ID = 256
"""Longest ``user_id`` of the session API, in characters."""

_DEVICE_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")


class IdentityError(Exception):
    """The caller could not be identified; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Caller:
    """An identified web caller."""

    user_id: str
    """The Parley user."""
    external_id: str
    """The identity's external id: the device id, or ``jwt:<sub>``."""
    subject: str | None = None
    """The token's ``sub`` when a signed token identified the caller."""

    @property
    def authenticated(self) -> bool:
        """True when a signed token identified the caller."""
        return self.subject is not None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; ``""`` for another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def verify_token(token: str, secret: str) -> str:
    """The ``sub`` of a valid HS256 token carrying ``sub`` and ``exp``; IdentityError (401) else."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise IdentityError(401, "token_expired", "the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise IdentityError(401, "invalid_token", f"invalid token: {exc}") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise IdentityError(401, "invalid_token", "invalid token: sub must be a non-empty string")
    return subject


def resolve_identity(
    settings: WebSettings, device_id: str | None, token: str | None
) -> tuple[str, str | None]:
    """(external id, token subject) for the credentials, without touching the database."""
    if settings.auth_secret and token is not None:
        subject = verify_token(token, settings.auth_secret)
        return f"jwt:{subject}", subject
    if settings.require_auth:
        raise IdentityError(
            401, "auth_required", "a signed token is required (Authorization: Bearer <token>)"
        )
    if not device_id:
        raise IdentityError(
            400, "missing_device_id", "send a device id (X-Device-ID header) or a signed token"
        )
    if not _DEVICE_ID.fullmatch(device_id):
        raise IdentityError(
            400,
            "invalid_device_id",
            "a device id is 1 to 128 characters of letters, digits and . _ ~ -",
        )
    return device_id, None


def socket_identity(settings: WebSettings, query: Any, headers: Any) -> tuple[str, str | None]:
    """(external id, token subject) of a WebSocket's caller, from ``?device_id=`` (or
    ``X-Device-ID``) and ``?token=`` (or ``Authorization: Bearer``), without the database."""
    token = query.get("token")
    if token is None:
        token = bearer_token(headers.get("authorization"))
    return resolve_identity(settings, query.get("device_id") or headers.get("x-device-id"), token)


async def identify(settings: WebSettings, device_id: str | None, token: str | None) -> Caller:
    """The caller for these credentials (user created on first sight); IdentityError otherwise."""
    external_id, subject = resolve_identity(settings, device_id, token)
    user = await store.get_or_create_user(CHANNEL, external_id)
    return Caller(user.id, external_id, subject)


def rate_limit_key(settings: WebSettings, headers: Any, client_host: str | None) -> str:
    """Whom a request counts against: the token user, else the device, else the address."""
    token = bearer_token(headers.get("authorization"))
    try:
        return resolve_identity(settings, headers.get("x-device-id"), token)[0]
    except IdentityError:
        return f"addr:{client_host or 'unknown'}"


def session_subject(settings: WebSettings, token: str | None) -> str | None:
    """The token's ``sub`` on the session API: required with ``web.auth_secret`` (401 without),
    None when no secret is set (the session id is then what grants access)."""
    if not settings.auth_secret:
        return None
    if not token:
        raise IdentityError(
            401, "auth_required", "a signed token is required (Authorization: Bearer <token>)"
        )
    return verify_token(token, settings.auth_secret)


async def session_caller(settings: WebSettings, user_id: str, token: str | None) -> Caller:
    """Who creates a session: the token's user (its ``sub`` must be ``user_id``: 403 else) with
    ``web.auth_secret``; without it, ``user_id`` in its own identity namespace."""
    if not user_id.strip() or len(user_id) > MAX_SESSION_USER_ID:
        raise IdentityError(
            422, "validation_error", f"user_id: 1 to {MAX_SESSION_USER_ID} characters"
        )
    subject = session_subject(settings, token)
    if subject is not None:
        if subject != user_id:
            raise IdentityError(403, "user_mismatch", "user_id does not match the token")
        external_id = f"jwt:{subject}"
        user = await store.get_or_create_user(CHANNEL, external_id)
        return Caller(user.id, external_id, subject)
    user = await store.get_or_create_user(SESSION_IDENTITY, user_id)
    return Caller(user.id, user_id)
