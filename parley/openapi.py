"""What the OpenAPI document says about errors: the ``{"error": {...}}`` body and its statuses.

Each HTTP route lists the statuses it can answer with (:func:`errors`); every one is documented with
the error body the server really sends (``parley.server.error_response``).
"""

from __future__ import annotations

import msgspec
from litestar.openapi import ResponseSpec

__all__ = [
    "AUTH",
    "BODY",
    "TURN",
    "ErrorBody",
    "ErrorDetail",
    "SessionErrorBody",
    "errors",
]


class ErrorDetail(msgspec.Struct):
    """What went wrong: a stable machine-readable ``code`` and a human ``message``."""

    code: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every HTTP error: ``{"error": {"code", "message"}}`` (provider errors add ``retryable``)."""

    error: ErrorDetail
    retryable: bool | msgspec.UnsetType = msgspec.UNSET
    """Provider errors only: whether the same request may succeed later."""


class SessionErrorBody(msgspec.Struct):
    """An error of the session API: the error body with ``"success": false``."""

    success: bool
    error: ErrorDetail
    retryable: bool | msgspec.UnsetType = msgspec.UNSET


_WHY = {
    400: "Bad request: `invalid_json` (not JSON, or nested too deeply), `missing_device_id`, "
    "`invalid_device_id`.",
    401: "Not identified: `auth_required`, `invalid_token`, `token_expired`.",
    403: "Forbidden: `user_mismatch` (the session's user_id is not the token's sub).",
    404: "Not found (or someone else's): `not_found`, `unknown_template`.",
    409: "Conflict: `session_ended`, `conversation_ended`.",
    413: "Too large: `payload_too_large` (body over web.max_body_bytes), `message_too_long`, "
    "`audio_too_large`.",
    422: "Invalid input: `validation_error`, `unknown_message`, `audio_not_supported`, "
    "`invalid_audio_url`, `audio_url_not_allowed`, `audio_fetch_failed`, `stt_empty`.",
    429: "Rate limited: `rate_limited` (RateLimit-* headers tell when to retry).",
    502: "A provider failed: `provider_unavailable`, `provider_auth`, `provider_rate_limited`, "
    "`provider_error`, `stt_failed`.",
    503: "A part of the server is unavailable (database, Redis): `unavailable`; "
    "Retry-After tells when to retry.",
    504: "A provider timed out: `provider_timeout`.",
}

AUTH = (400, 401, 429, 503)
"""What any identified route may answer: bad credentials, rate limit, an outage."""
BODY = (400, 413, 422)
"""What a route with a JSON body may answer: not JSON, too large, invalid."""
TURN = (409, 502, 504)
"""What a route that runs a turn may answer: an ended conversation, a provider failure."""


def errors(*statuses: int, session: bool = False) -> dict[int, ResponseSpec]:
    """The documented error responses for ``statuses`` (session routes add ``success``)."""
    container = SessionErrorBody if session else ErrorBody
    return {
        status: ResponseSpec(
            data_container=container, description=_WHY[status], generate_examples=False
        )
        for status in sorted(set(statuses))
    }
