"""Checks shared by every route and the socket: ownership and the size and shape of input."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from parley.adapters.web.identity import Caller
from parley.adapters.web.settings import WebSettings
from parley.core import store
from parley.core.store.records import ConversationRecord
from parley.core.text import clean
from parley.server import ApiError

__all__ = [
    "LANGUAGE_MAX",
    "Language",
    "check_language",
    "check_text",
    "owned_conversation",
    "owned_message",
]

LANGUAGE_MAX = 16
"""Longest language code: the stored conversation's column (``Conversation.language``)."""

Language = Annotated[
    str,
    Meta(
        max_length=LANGUAGE_MAX,
        pattern=r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}$(?!\n)",  # Python's $ allows "\n"
        description="A language code like `en` or `pt-BR`.",
    ),
]
"""A language code, checked by its type (request bodies, client frames, :func:`check_language`)."""


async def owned_conversation(
    caller: Caller, conversation_id: str, *, what: str = "conversation"
) -> ConversationRecord:
    """The caller's conversation; 404 when it does not exist or belongs to someone else."""
    conversation = await store.get_conversation(conversation_id)
    if conversation is None or conversation.user_id != caller.user_id:
        raise ApiError(404, "not_found", f"{what} not found")
    return conversation


async def owned_message(conversation: ConversationRecord, message_id: str) -> None:
    """422 unless ``message_id`` is a message of ``conversation`` (a resume cursor)."""
    message = await store.get_message(message_id)
    if message is None or message.conversation_id != conversation.id:
        raise ApiError(422, "unknown_message", "no message with this id in the conversation")


def check_text(text: str, settings: WebSettings, *, name: str, allow_empty: bool = False) -> str:
    """The stripped text (lone surrogates replaced: storable); 422 when empty, 413 when longer
    than ``web.max_message_chars``."""
    text = clean(text).strip()
    if not text and not allow_empty:
        raise ApiError(422, "validation_error", f"{name}: must not be empty")
    if len(text) > settings.max_message_chars:
        raise ApiError(
            413,
            "message_too_long",
            f"{name}: longer than {settings.max_message_chars} characters",
        )
    return text


def check_language(language: str | None) -> str | None:
    """A :data:`Language` given outside a struct (a query parameter); 422 otherwise."""
    try:
        return msgspec.convert(language, Language | None)
    except msgspec.ValidationError:
        raise ApiError(
            422, "validation_error", f"language: not a language code: {language!r}"
        ) from None
