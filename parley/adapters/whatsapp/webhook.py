"""The webhook Meta calls: ``GET`` for the verification handshake, ``POST`` for deliveries."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get, post
from litestar.enums import MediaType
from litestar.handlers import HTTPRouteHandler

from parley.adapters.whatsapp.intake import keep_for_turns, record_statuses
from parley.adapters.whatsapp.payload import (
    WhatsAppMessage,
    parse_delivery,
    parse_statuses,
    signature_ok,
)
from parley.adapters.whatsapp.settings import WhatsAppSettings
from parley.core.text import TOO_DEEP, clean_json
from parley.server import ApiError

__all__ = ["PATH", "webhook_routes"]

log = logging.getLogger(__name__)

PATH = "/webhooks/whatsapp"


def webhook_routes(
    settings: WhatsAppSettings, intake: Callable[[list[WhatsAppMessage]], Awaitable[int]]
) -> list[HTTPRouteHandler]:
    """The two route handlers of ``PATH``: deliveries' messages go to ``intake`` (the adapter's:
    stored and put in the inbox; returns how many were new)."""

    @get(PATH, include_in_schema=False, sync_to_thread=False)
    def verify(request: Request[Any, Any, Any]) -> Response[str]:
        """Meta's subscription handshake: echo ``hub.challenge`` when the token matches."""
        query = request.query_params
        token = query.get("hub.verify_token") or ""
        challenge = query.get("hub.challenge")
        if (
            query.get("hub.mode") == "subscribe"
            and challenge is not None
            and hmac.compare_digest(token.encode(), settings.verify_token.encode())
        ):
            return Response(challenge, media_type=MediaType.TEXT, status_code=200)
        raise ApiError(403, "forbidden", "webhook verification failed")

    @post(
        PATH,
        include_in_schema=False,
        status_code=200,
        request_max_body_size=settings.max_body_bytes,
    )
    async def deliver(request: Request[Any, Any, Any]) -> dict[str, int]:
        """Check the signature, store every inbound message, answer at once; turns run later."""
        body = await request.body()
        if not signature_ok(body, request.headers.get("x-hub-signature-256"), settings.app_secret):
            log.warning("WhatsApp delivery with a missing or wrong signature refused")
            raise ApiError(401, "invalid_signature", "missing or wrong X-Hub-Signature-256")
        try:
            data = clean_json(json.loads(body))  # lone surrogates and NUL: U+FFFD, storable
        except RecursionError:
            raise ApiError(400, "invalid_json", TOO_DEEP) from None
        except ValueError:
            raise ApiError(400, "bad_request", "the body is not JSON") from None
        await record_statuses(parse_statuses(data, settings.phone_number_id))
        received = parse_delivery(data, settings.phone_number_id, max_chars=settings.max_text_chars)
        messages = await keep_for_turns(received, settings.group_replies)
        stored = await intake(messages)
        return {"received": len(received), "stored": stored}

    return [verify, deliver]
