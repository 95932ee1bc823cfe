"""Session API: ``/api/v1/chatbot/session`` create, message, end (every body has ``success``).

Its front ends send no device id. Without ``web.auth_secret``, ``user_id`` names the caller on
create (its own identity namespace) and the session id, a random UUID, is what grants access to
message and end. With the secret, every call carries a token: on create its ``sub`` must be
``user_id``; afterwards only the token's user reaches the session.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import delete, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody

from parley.adapters.web.access import Language, check_text, owned_conversation
from parley.adapters.web.adapter import WebAdapter
from parley.adapters.web.identity import (
    CHANNEL,
    Caller,
    IdentityError,
    bearer_token,
    session_caller,
    session_subject,
)
from parley.adapters.web.shapes import characters
from parley.adapters.web.turns import (
    IdempotencyKey,
    check_idempotency_key,
    raise_turn_error,
    run_turn,
)
from parley.core import store
from parley.core.engine import EngineError
from parley.core.inbound import Inbound
from parley.core.store.records import ConversationRecord
from parley.openapi import BODY, errors
from parley.server import ApiError

__all__ = ["HANDLERS", "SESSION_CHANNEL"]

SESSION_CHANNEL = "web-session"
"""Conversation channel of sessions: kept apart from the device's ``web`` conversation."""


class SessionCreate(msgspec.Struct):
    """``POST /api/v1/chatbot/session``."""

    user_id: str
    """The host site's user id (with a token, it must be the token's ``sub``)."""
    template_id: str | None = None
    """Template of the conversation (default ``conversation.default_template``)."""
    language: Language | None = None
    """Language code (default ``conversation.language``)."""


class SessionMessage(msgspec.Struct):
    """``POST /api/v1/chatbot/session/{session_id}/message``."""

    message: str


Authorization = Annotated[
    str | None,
    HeaderParameter(
        name="Authorization",
        required=False,
        description="Bearer <HS256 JWT with sub and exp>: required when web.auth_secret is set.",
    ),
]


async def _open_session(
    web: WebAdapter, authorization: str | None, session_id: str
) -> ConversationRecord:
    """The open session ``session_id``: 404 when unknown (or, with a token, someone else's)."""
    try:
        subject = session_subject(web.settings, bearer_token(authorization))
    except IdentityError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    if subject is None:
        conversation = await store.get_conversation(session_id)
        if conversation is None or conversation.channel != SESSION_CHANNEL:
            raise ApiError(404, "not_found", "session not found")
    else:
        user = await store.get_or_create_user(CHANNEL, f"jwt:{subject}")
        caller = Caller(user.id, f"jwt:{subject}", subject)
        conversation = await owned_conversation(caller, session_id, what="session")
        if conversation.channel != SESSION_CHANNEL:
            raise ApiError(404, "not_found", "session not found")
    if not conversation.is_open:
        raise ApiError(409, "session_ended", "the session has ended")
    return conversation


@post(
    "/",
    status_code=200,
    summary="Start a session",
    responses=errors(*BODY, 401, 403, 404, 429, 503, session=True),
)
async def create_session(
    data: JSONBody[SessionCreate], web: NamedDependency[WebAdapter], authorization: Authorization
) -> dict[str, Any]:
    """Start a conversation; the greeting (if the language has one) is stored and returned."""
    try:
        caller = await session_caller(web.settings, data.user_id, bearer_token(authorization))
    except IdentityError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    try:
        opened = await web.engine.open(
            caller.user_id,
            SESSION_CHANNEL,
            template_id=data.template_id,
            language=data.language,
            greet=web.settings.greeting,
        )
    except EngineError as exc:
        raise ApiError(404, "unknown_template", exc.message) from None
    conversation = opened.conversation
    await store.update_state(conversation.id, lambda state: state.update(web_user_id=data.user_id))
    return {
        "success": True,
        "session_id": conversation.id,
        "message": "Session created successfully",
        "template_id": conversation.template_id,
        "characters": characters(web.engine, conversation.template_id),
        "greeting": opened.greeting.content if opened.greeting else None,
    }


@post(
    "/{session_id:str}/message",
    status_code=200,
    summary="Send a message to a session",
    responses=errors(*BODY, 401, 404, 409, 429, 502, 503, 504, session=True),
)
async def session_message(
    session_id: FromPath[str],
    data: JSONBody[SessionMessage],
    web: NamedDependency[WebAdapter],
    authorization: Authorization,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Run one exchange; ``message_count`` counts the exchanges so far."""
    key = check_idempotency_key(idempotency_key)
    text = check_text(data.message, web.settings, name="message")
    conversation = await _open_session(web, authorization, session_id)
    inbound = Inbound(text=text, idempotency_key=key)
    outcome = await run_turn(web.engine, conversation.id, inbound)
    if outcome.error is not None:
        if outcome.error.code == "conversation_ended":
            raise ApiError(409, "session_ended", outcome.error.message)
        raise_turn_error(outcome.error)
    return {
        "success": True,
        "response": outcome.content,
        "session_id": conversation.id,
        "message_count": outcome.turn_count or 0,
        **outcome.reply_fields(),
    }


@delete(
    "/{session_id:str}",
    status_code=200,
    summary="End a session",
    responses=errors(400, 401, 404, 409, 429, 503, session=True),
)
async def end_session(
    session_id: FromPath[str], web: NamedDependency[WebAdapter], authorization: Authorization
) -> dict[str, Any]:
    """End the conversation with reason ``user_ended``."""
    conversation = await _open_session(web, authorization, session_id)
    ended = await web.engine.end(conversation.id, "user_ended", farewell=False)
    finished = ended.ended_at or ended.last_activity_at
    return {
        "success": True,
        "message": "Session ended successfully",
        "stats": {
            "duration_seconds": round((finished - ended.started_at).total_seconds(), 3),
            "total_messages": await store.count_messages(conversation.id),
        },
    }


HANDLERS = [create_session, session_message, end_session]
