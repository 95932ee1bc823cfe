"""Who is talking and in which conversation: one open conversation per Telegram chat.

Every Telegram user is an identity (channel ``telegram``, external id = user id). A chat's
conversation belongs to the chat's *owner*: in a private chat that is the user (whose id is the
chat id); in a group it is an identity for the group itself (external id = the chat id, negative
for groups, so it never clashes with a user id), and each message records who wrote it. Finding
the chat's open conversation is then the store's ``find_open_conversation(owner, "telegram")``:
it lives in the database and survives restarts.

A choice made with ``/template`` or ``/lang`` is kept in the conversation's state
(``state["telegram"]``) and carried into the chat's next conversations.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiogram.types import Chat, Message
from aiogram.types import User as TelegramUser

from parley.adapters.telegram.settings import TelegramSettings
from parley.core import store
from parley.core.engine import Engine, Opened
from parley.core.store.records import ConversationRecord, UserRecord
from parley.core.text import clean

__all__ = ["CHANNEL", "RESUMING", "ChatConversations", "Participants", "display_name"]

CHANNEL = "telegram"

RESUMING: ContextVar[str | None] = ContextVar("parley_telegram_resuming", default=None)
"""The stored user message a turn answers again after a crash cut its first try (else None)."""
STATE_KEY = "telegram"


def display_name(user: TelegramUser | None) -> str | None:
    """First and last name of a Telegram user."""
    if user is None:
        return None
    return clean(" ".join(part for part in (user.first_name, user.last_name) if part)) or None


@dataclass(frozen=True, slots=True)
class Participants:
    """The sender of a message and the owner of the chat's conversation (the same in private)."""

    sender: UserRecord | None
    owner: UserRecord
    chat_id: int


class ChatConversations:
    """Resolves a chat's users and its one open conversation."""

    def __init__(self, engine: Engine, settings: TelegramSettings) -> None:
        self.engine = engine
        self.settings = settings

    async def participants(self, message: Message) -> Participants:
        """Create or update the sender's identity and the chat owner's."""
        sender = None
        if message.from_user is not None:
            sender = await store.get_or_create_user(
                CHANNEL, str(message.from_user.id), display_name=display_name(message.from_user)
            )
        chat: Chat = message.chat
        if chat.type == "private" and sender is not None:
            owner = sender
        else:
            name = clean(chat.title or chat.full_name or "") or None
            owner = await store.get_or_create_user(CHANNEL, str(chat.id), display_name=name)
        return Participants(sender, owner, chat.id)

    async def current(self, who: Participants) -> ConversationRecord | None:
        """The chat's open, unexpired conversation, or None."""
        conversation = await store.find_open_conversation(who.owner.id, CHANNEL)
        if conversation is None or self.engine.is_expired(conversation):
            return None
        return conversation

    async def ensure(self, who: Participants) -> Opened:
        """The chat's open conversation, or a new one (an expired one is ended first)."""
        conversation = await self.current(who)
        if conversation is not None:
            return Opened(conversation, None, resumed=True)
        choices = await self._choices(who)
        opened = await self.engine.resume_or_open(
            who.owner.id, CHANNEL, **self._open_args(choices), greet=self.settings.greeting
        )
        await self._remember(opened.conversation, who.chat_id, choices)
        return opened

    async def restart(
        self, who: Participants, *, template_id: str | None = None, language: str | None = None
    ) -> Opened:
        """End the chat's open conversation (``new_conversation``) and open a new one."""
        choices = await self._choices(who)
        if template_id:
            choices["template"] = template_id
        if language:
            choices["language"] = language
        previous = await store.find_open_conversation(who.owner.id, CHANNEL)
        if previous is not None:
            reason = "expired" if self.engine.is_expired(previous) else "new_conversation"
            await self.engine.end(previous.id, reason, farewell=False)
        opened = await self.engine.open(
            who.owner.id, CHANNEL, **self._open_args(choices), greet=self.settings.greeting
        )
        await self._remember(opened.conversation, who.chat_id, choices)
        return opened

    async def set_language(self, conversation: ConversationRecord, code: str) -> None:
        """Switch the conversation (and the chat's next ones) to ``code``."""

        def change(state: dict[str, Any]) -> None:
            state[STATE_KEY] = {**(state.get(STATE_KEY) or {}), "language": code}

        await store.update_state(conversation.id, change, language=code)

    def default_template(self) -> str:
        """``telegram.template``, else ``conversation.default_template``."""
        return self.settings.template or self.engine.settings.conversation.default_template

    def _open_args(self, choices: dict[str, Any]) -> dict[str, Any]:
        known = self.engine.settings.templates
        template = choices.get("template")
        return {
            "template_id": template if template in known else self.default_template(),
            "language": choices.get("language") or None,
        }

    async def _choices(self, who: Participants) -> dict[str, Any]:
        """The template and language picked in the chat's latest Telegram conversation."""
        for conversation, _count in await store.list_conversations(who.owner.id, limit=20):
            if conversation.channel == CHANNEL:
                saved = conversation.state.get(STATE_KEY) or {}
                return {k: saved[k] for k in ("template", "language") if saved.get(k)}
        return {}

    async def _remember(
        self, conversation: ConversationRecord, chat_id: int, choices: dict[str, Any]
    ) -> None:

        def change(state: dict[str, Any]) -> None:
            state[STATE_KEY] = {"chat_id": chat_id, **choices}

        await store.update_state(conversation.id, change)
