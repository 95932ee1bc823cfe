"""Device chat: ``POST /chat/`` (one JSON reply) and ``POST /chat/stream`` (Server-Sent Events).

The device keeps one open conversation (channel ``web``, shared with ``/ws``) until it ends or
idles past ``conversation.session_ttl``; the next request then starts a new one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody
from litestar.response import ServerSentEvent
from msgspec import Meta

from parley.adapters.web.access import check_text
from parley.adapters.web.adapter import WebAdapter
from parley.adapters.web.audio_urls import check_url
from parley.adapters.web.identity import CHANNEL, Caller
from parley.adapters.web.shapes import timestamp
from parley.adapters.web.turns import (
    IdempotencyKey,
    check_idempotency_key,
    raise_turn_error,
    run_turn,
)
from parley.core.engine import Engine
from parley.core.events import ErrorEvent, MessageStarted, TextDelta, Transcript, TurnCompleted
from parley.core.inbound import Inbound
from parley.openapi import AUTH, BODY, TURN, errors
from parley.server import ApiError, log_failure, outage_error

__all__ = ["HANDLERS", "ChatRequest", "sse_lines"]

log = logging.getLogger(__name__)

MAX_MEDIA_URLS = 10
MAX_AUDIO_URLS = 1
"""The engine transcribes one recording per turn."""
MAX_URL_CHARS = 4096
"""Longest http(s) media URL (a ``data:`` URL is bounded by ``web.max_body_bytes``)."""

MediaUrl = Annotated[
    str,
    Meta(
        pattern=rf"^(?:data:image/|(?=.{{1,{MAX_URL_CHARS}}}$)https?://)",
        description=f"An http(s) URL of at most {MAX_URL_CHARS} characters, or a "
        "`data:image/...` URL.",
    ),
]


class ChatRequest(msgspec.Struct):
    """``POST /chat/`` and ``/chat/stream``: the fields' types are the rules (a bad value is a
    422 ``validation_error`` naming the field)."""

    content: str = ""
    """The user's message (may be empty when media_urls carries images)."""
    media_urls: Annotated[list[MediaUrl], Meta(max_length=MAX_MEDIA_URLS)] = msgspec.field(
        default_factory=list
    )
    """Images for vision models: http(s) URLs or ``data:image/...`` URLs."""
    audio_urls: Annotated[list[str], Meta(max_length=MAX_AUDIO_URLS)] = msgspec.field(
        default_factory=list
    )
    """Voice messages (at most one) fetched and transcribed before the turn; the transcript
    follows ``content``."""


class StreamEvent(msgspec.Struct):
    """One Server-Sent Event of ``/chat/stream`` (the OpenAPI document describes each event)."""

    data: str
    """A JSON object: a piece ``{content, is_final: false, message_id, character_id,
    character_name, timestamp}``, the final ``{content: "", is_final: true, conversation_id,
    turn_count, conversation_ended, reason}`` or an error ``{error, is_final: true}``."""
    event: str | msgspec.UnsetType = msgspec.UNSET
    id: str | msgspec.UnsetType = msgspec.UNSET
    retry: int | msgspec.UnsetType = msgspec.UNSET


async def build_inbound(web: WebAdapter, body: ChatRequest) -> Inbound:
    """The request (its types checked by Litestar) as an :class:`Inbound`, its audio fetched;
    422 / 413 for what types cannot say (each audio URL's own rules, an empty request, text
    longer than ``web.max_message_chars``)."""
    for url in body.audio_urls:
        check_url(url)
    if body.audio_urls and web.engine.stt is None:
        raise ApiError(
            422,
            "audio_not_supported",
            "audio_urls: voice input is not available on this server (no speech-to-text "
            "provider); send text",
        )
    text = check_text(body.content, web.settings, name="content", allow_empty=True)
    if not text and not body.media_urls and not body.audio_urls:
        raise ApiError(422, "validation_error", "content: must not be empty")
    inbound = Inbound(text=text, image_urls=list(body.media_urls))
    for url in body.audio_urls:
        audio = await web.audio.fetch(url)
        inbound.audio, inbound.audio_mime = audio.data, audio.mime_type
        inbound.metadata["audio"] = audio.metadata()
    return inbound


async def device_conversation(
    web: NamedDependency[WebAdapter], caller: NamedDependency[Caller]
) -> str:
    """The device's open conversation (a new one after it ended or expired)."""
    opened = await web.engine.resume_or_open(caller.user_id, CHANNEL, greet=web.settings.greeting)
    return opened.conversation.id


@post(
    "/chat/",
    status_code=200,
    summary="Chat (one JSON reply)",
    responses=errors(*AUTH, *BODY, *TURN),
)
async def chat(
    data: JSONBody[ChatRequest],
    web: NamedDependency[WebAdapter],
    caller: NamedDependency[Caller],
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Answer the device's message with the whole reply."""
    key = check_idempotency_key(idempotency_key)
    inbound = await build_inbound(web, data)
    inbound.idempotency_key = key
    conversation_id = await device_conversation(web, caller)
    outcome = await run_turn(web.engine, conversation_id, inbound)
    if outcome.error is not None:
        raise_turn_error(outcome.error)
    body = {
        "content": outcome.content,
        "conversation_id": conversation_id,
        "turn_count": outcome.turn_count,
        **outcome.reply_fields(),
    }
    if outcome.transcript is not None:
        body["transcript"] = outcome.transcript
    return body


def _line(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


async def sse_lines(engine: Engine, conversation_id: str, inbound: Inbound) -> AsyncIterator[str]:
    """The turn as SSE data payloads: each piece as it arrives, then a final (or error) one."""
    names: dict[str, str | None] = {}
    final: dict[str, Any] = {"conversation_id": conversation_id}
    failed = False
    try:
        async with aclosing(engine.turn(conversation_id, inbound)) as events:
            async for event in events:
                if failed:
                    continue  # let the engine finish its bookkeeping; the stream is over
                if isinstance(event, MessageStarted):
                    names[event.message_id] = event.character_name
                elif isinstance(event, Transcript) and event.final:
                    final["transcript"] = event.text
                elif isinstance(event, TextDelta) and event.text:
                    yield _line(
                        {
                            "content": event.text,
                            "timestamp": timestamp(),
                            "is_final": False,
                            "message_id": event.message_id,
                            "character_id": event.character_id,
                            "character_name": names.get(event.message_id),
                        }
                    )
                elif isinstance(event, ErrorEvent):
                    failed = True
                    error = {"code": event.code, "message": event.message}
                    yield _line({"error": error, "is_final": True, "timestamp": timestamp()})
                elif isinstance(event, TurnCompleted):
                    final.update(
                        turn_count=event.turn_count,
                        conversation_ended=event.conversation_ended,
                        reason=event.reason,
                    )
    except Exception as exc:
        outage = log_failure(exc, f"chat stream of conversation {conversation_id}")
        if not failed:
            error = {"code": "internal_error", "message": "something went wrong on our side"}
            error = outage_error(outage) if outage else error  # database or Redis down
            yield _line({"error": error, "is_final": True, "timestamp": timestamp()})
        return
    if not failed:
        yield _line({"content": "", "timestamp": timestamp(), "is_final": True, **final})


@post(
    "/chat/stream",
    status_code=200,
    summary="Chat (Server-Sent Events)",
    responses={
        200: ResponseSpec(
            data_container=StreamEvent,
            media_type="text/event-stream",
            description="One `data: {json}` line per piece of the reply, then a final one "
            "(`is_final: true`), or an error line (`error`, `is_final: true`).",
            generate_examples=False,
        ),
        **errors(*AUTH, *BODY, 409),
    },
)
async def chat_stream(
    data: JSONBody[ChatRequest],
    web: NamedDependency[WebAdapter],
    caller: NamedDependency[Caller],
    idempotency_key: IdempotencyKey = None,
) -> ServerSentEvent:
    """Stream the reply: one ``data: {...}`` line per piece, then a final line."""
    key = check_idempotency_key(idempotency_key)
    inbound = await build_inbound(web, data)
    inbound.idempotency_key = key
    conversation_id = await device_conversation(web, caller)
    return ServerSentEvent(sse_lines(web.engine, conversation_id, inbound))


HANDLERS = [chat, chat_stream]
