"""Sending to a chat: text (split), voice notes, chat actions and friendly apologies.

Inside a :class:`SendScope` (set while the inbox feeds a stored update) every message sent is
recorded (an outbound send record keyed by the scope and the send's position in the turn) with
its Telegram message id. A turn claimed again after a crash skips the sends already recorded and
edits, instead of sending, a streamed message the first try had started. The window that remains:
a send that reached Telegram but whose record was not written before the crash is sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile
from aiogram.types import Message as TelegramMessage

from parley.adapters.telegram.chats import CHANNEL
from parley.adapters.telegram.text import CAPTION_LIMIT, fits, split_text
from parley.adapters.telegram.transport import log
from parley.core import store

if TYPE_CHECKING:
    from parley.core.telemetry import Telemetry

__all__ = [
    "APOLOGIES",
    "SEND_SCOPE",
    "TOPIC",
    "ChatAction",
    "LiveText",
    "Replier",
    "SendScope",
    "in_topic",
]


@dataclass(slots=True)
class SendScope:
    """The sends of one inbox item's turn, numbered in order."""

    key: str
    count: int = 0

    def next_key(self) -> str:
        """The record key of the next send."""
        self.count += 1
        return f"{self.key}:{self.count}"


SEND_SCOPE: ContextVar[SendScope | None] = ContextVar("parley_telegram_sends", default=None)
"""The send records of the turn being answered (None: sends are not recorded)."""

TOPIC: ContextVar[int | None] = ContextVar("telegram_topic", default=None)
"""The forum topic (``message_thread_id``) of the update being handled: every message sent while
handling it goes to that topic (set by the handlers' router, per update task)."""


def in_topic() -> dict[str, int]:
    """``{"message_thread_id": ...}`` for the current update's topic, or nothing."""
    topic = TOPIC.get()
    return {"message_thread_id": topic} if topic is not None else {}


APOLOGIES = {
    "default": "Sorry, something went wrong on my side. Please try again in a moment.",
    "stt_failed": "Sorry, I couldn't make out that voice note. Could you say it again, or type it?",
    "stt_unavailable": "Sorry, I can't listen to voice notes right now. Please type your message.",
    "too_large": "Sorry, that file is too large for me.",
    "message_too_long": "Sorry, that message is too long for me. Could you send it in shorter "
    "parts?",
}
"""Short messages the user gets when something fails; the cause goes to the log."""


class Replier:
    """Sends messages to chats through one Bot."""

    def __init__(self, bot: Bot, telemetry: Telemetry | None = None) -> None:
        self.bot = bot
        self.telemetry = telemetry
        """Where each send is a ``platform.send`` span (the end of a turn's trace)."""

    def _span(self) -> AbstractContextManager[Any]:
        if self.telemetry is None:
            return nullcontext()
        return self.telemetry.span("platform.send", **{"parley.channel": CHANNEL})

    async def once(self, send: Callable[[], Awaitable[TelegramMessage]]) -> int:
        """Run ``send`` unless the current :class:`SendScope` recorded it as delivered; return
        the Telegram message id (the recorded one when skipped)."""
        scope = SEND_SCOPE.get()
        if scope is None:
            with self._span():
                return (await send()).message_id
        key = scope.next_key()
        recorded = await store.sent(CHANNEL, key)
        if recorded:
            return int(recorded)
        with self._span():
            message_id = (await send()).message_id
        await store.record_send(CHANNEL, key, str(message_id))
        return message_id

    async def send_text(self, chat_id: int, text: str) -> list[int]:
        """Send ``text`` split at paragraph or sentence boundaries; return the message ids."""
        ids = []
        for piece in split_text(text):
            ids.append(
                await self.once(
                    lambda piece=piece: self.bot.send_message(chat_id, piece, **in_topic())
                )
            )
        return ids

    async def send_voice(self, chat_id: int, ogg: bytes, duration: float, text: str) -> None:
        """A voice note with ``text`` as its caption, or followed by it when it is too long."""
        caption = text if text and fits(text, CAPTION_LIMIT) else None
        await self.once(
            lambda: self.bot.send_voice(
                chat_id,
                BufferedInputFile(ogg, filename="reply.ogg"),
                duration=max(1, round(duration)),
                caption=caption,
                **in_topic(),
            )
        )
        if text and caption is None:
            await self.send_text(chat_id, text)

    async def apologise(self, chat_id: int, code: str = "default") -> None:
        """Tell the user something failed; never raises (the failure itself is logged)."""
        try:
            await self.bot.send_message(
                chat_id, APOLOGIES.get(code, APOLOGIES["default"]), **in_topic()
            )
        except Exception as exc:
            log.warning("could not tell chat %s about a failure: %s", chat_id, exc)


class ChatAction:
    """Shows ``typing`` / ``record_voice`` in a chat, re-sent every ``interval`` s until exit."""

    def __init__(self, bot: Bot, chat_id: int, action: str, *, interval: float = 4.0) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.action = action
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                await self.bot.send_chat_action(self.chat_id, self.action, **in_topic())
            except Exception as exc:  # cosmetic: never let it break the turn
                log.debug("chat action %s in chat %s failed: %s", self.action, self.chat_id, exc)
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> ChatAction:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


class LiveText:
    """A text reply that appears at once and grows by editMessageText, at most every ``interval`` s.

    Past 4,096 characters the current message is closed at a boundary and the text goes on in a
    new message.
    """

    def __init__(self, replier: Replier, chat_id: int, prefix: str = "", *, interval: float = 1.0):
        self.replier = replier
        self.chat_id = chat_id
        self.interval = interval
        self.streamed = ""
        self.prefix = prefix
        self.tail = prefix  # the text of the message being edited
        self.shown = ""  # what Telegram currently shows in it
        self.message_id: int | None = None
        self.messages = 0
        self.last_write = 0.0

    async def add(self, delta: str) -> None:
        """Append streamed text; send or edit when due."""
        self.streamed += delta
        self.tail += delta
        if self.message_id is None or time.monotonic() - self.last_write >= self.interval:
            await self._sync()

    async def finish(self, final: str) -> None:
        """Show the finished reply (``final`` may differ from the stream after transform_response)."""
        if final != self.streamed and self.messages <= 1:
            self.tail = self.prefix + final
        if self.message_id is not None:
            wait = self.interval - (time.monotonic() - self.last_write)
            if wait > 0:
                await asyncio.sleep(wait)
        await self._sync()

    async def _sync(self) -> None:
        bot = self.replier.bot
        raw = self.tail
        pieces = split_text(raw)
        if not pieces:
            return
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            if self.message_id is None:
                self.message_id = await self.replier.once(
                    lambda piece=piece: bot.send_message(self.chat_id, piece, **in_topic())
                )
                self.messages += 1
            elif piece != self.shown:
                try:
                    await bot.edit_message_text(
                        text=piece, chat_id=self.chat_id, message_id=self.message_id
                    )
                except TelegramBadRequest as exc:
                    if "not modified" not in str(exc):
                        raise
            self.shown = piece
            if not last:  # this message is full: the rest goes on in a new one
                self.message_id, self.shown = None, ""
        if len(pieces) > 1:  # keep the trailing space the next delta may rely on
            self.tail = pieces[-1] + raw[len(raw.rstrip()) :]
        self.last_write = time.monotonic()
