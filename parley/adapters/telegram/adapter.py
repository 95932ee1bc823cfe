"""The Telegram adapter: polling in the background or a webhook route, every message through the
durable inbox.

A message update (polled, or posted to the webhook) is first stored in the inbox, keyed by its
chat and message id (a re-sent update is not stored again), with the chat as its lane; the
webhook answers 200 only then. Any process's claim loop then feeds it to the handlers, one chat's
messages one at a time and in order (different chats concurrently, across processes). The
outer middleware :meth:`TelegramAdapter._guard` stores what arrives from Telegram and runs the
handlers for what the inbox hands back, turning any failure into a short friendly message plus a
log line. Claimed again after a crash, the turn answers the stored user message in place (its
cut reply kept ``interrupted``) and skips the sends already recorded (see
:mod:`parley.adapters.telegram.replies`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import Awaitable, Callable
from contextlib import suppress
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiogram import Dispatcher
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.types import Update
from litestar import Request, Response, post
from pydantic import ValidationError

from parley.adapters.telegram.chats import CHANNEL, RESUMING
from parley.adapters.telegram.handlers import Handlers, invalid_update
from parley.adapters.telegram.replies import SEND_SCOPE, Replier, SendScope
from parley.adapters.telegram.settings import TelegramSettings
from parley.adapters.telegram.transport import TokenFilter, log, make_bot, poll_under_lease
from parley.core import store
from parley.core.background import BackgroundTasks
from parley.core.inbox_turns import settle_leftovers
from parley.core.leases import make_lease
from parley.core.locks import LocalLocks
from parley.core.retry import retrying
from parley.core.store.records import InboxRecord
from parley.core.telemetry import joined
from parley.core.text import TOO_DEEP, clean_json
from parley.server import ApiError

if TYPE_CHECKING:
    from parley.core.adapter_context import AdapterContext

__all__ = ["SECRET_HEADER", "WEBHOOK_PATH", "TelegramAdapter"]

_FROM_INBOX: ContextVar[int | None] = ContextVar("parley_telegram_from_inbox", default=None)
"""The inbox item being fed to the handlers (None: the update comes from Telegram)."""

WEBHOOK_PATH = "/webhooks/telegram"
DEDUP_DAYS = 30
"""Days the delivery keys of earlier versions are kept (Telegram re-delivers for a day at most)."""
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message"]


class TelegramAdapter:
    """A Telegram bot on the engine. ``start`` / ``stop`` run it; webhook mode adds a route."""

    name = "telegram"

    def __init__(self, context: AdapterContext, settings: TelegramSettings) -> None:
        self.context = context
        self.settings = settings
        self.bot = make_bot(settings)
        self.replier = Replier(self.bot, context.telemetry)
        self.dispatcher = Dispatcher(disable_fsm=True)
        self.dispatcher.update.outer_middleware(self._guard)
        self.handlers: Handlers | None = None
        self.token_filter = TokenFilter(settings.resolved_token())
        self._chat_locks = LocalLocks()
        self._inflight = BackgroundTasks("telegram updates")
        """Update handlers running now (aiogram's tasks): stop gives them ``grace``."""
        self._background: asyncio.Task[None] | None = None
        self._started = False
        self.failure: str | None = None
        """Why the bot stopped on its own (a refused token), else None."""

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the handlers on the engine, then poll or register the webhook (in the background)."""
        self.token_filter.install()
        inbox = self.context.inbox  # started before the adapters
        inbox.register(CHANNEL, self._answer_item, drain=5.0)
        inbox.job("telegram-prune", 86400.0, _prune_keys)
        self.handlers = Handlers(self.context.engine, self.settings, self.replier)
        self.dispatcher.include_router(self.handlers.router())
        if self.settings.reply_voice != "never" and self.context.engine.tts is None:
            log.warning("no TTS provider (tts.provider): Telegram replies will be text only")
        if self.settings.mode == "webhook":
            self._background = asyncio.create_task(self._set_webhook())
        else:
            self._background = asyncio.create_task(self._poll())
        self._started = True

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop polling, let updates in progress finish (up to ``grace`` s), close the session."""
        if self._background is not None:
            with suppress(RuntimeError, TimeoutError):  # RuntimeError: polling not started
                await asyncio.wait_for(self.dispatcher.stop_polling(), timeout=grace)
            self._background.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._background
            self._background = None
        await self._inflight.drain(grace)
        await self.bot.session.close()
        self.token_filter.uninstall()
        self._started = False

    async def wait(self) -> None:
        """Until the background work (polling) ends: for ``parley telegram``."""
        if self._background is not None:
            await self._background

    async def _poll(self) -> None:
        lease = make_lease(f"telegram-polling-{self.bot.id}", self.context.settings)
        await poll_under_lease(
            self.dispatcher,
            self.bot,
            lease,
            prepare=self._prepare_polling,
            allowed_updates=ALLOWED_UPDATES,
        )

    async def _prepare_polling(self) -> bool:
        with suppress(TelegramUnauthorizedError):
            await self._retry("deleteWebhook", lambda: self.bot.delete_webhook())
        return not self.failure

    async def _set_webhook(self) -> None:
        with suppress(TelegramUnauthorizedError):
            await self._retry(
                "setWebhook",
                lambda: self.bot.set_webhook(
                    url=self.settings.webhook_url,
                    secret_token=self.settings.webhook_secret,
                    allowed_updates=ALLOWED_UPDATES,
                ),
            )
            log.info("Telegram webhook registered at %s", self.settings.webhook_url)

    async def _retry(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        """Until it succeeds (1 s, 2 s, 4 s... at most 60 s apart), unless the token is refused."""
        try:
            async for attempt in retrying(
                f"Telegram {what}",
                on=lambda exc: not isinstance(exc, TelegramUnauthorizedError),
                retries=None,
                backoff=1.0,
                max_backoff=60.0,
                logger=log,
            ):
                with attempt:
                    await call()
        except TelegramUnauthorizedError:
            self.failure = "the Bot API refused telegram.token (401 Unauthorized)"
            log.error("Telegram %s failed: %s; the bot is not running", what, self.failure)
            raise

    # -- every update ----------------------------------------------------------------------

    async def _guard(
        self,
        handler: Callable[[Update, dict[str, Any]], Awaitable[Any]],
        update: Update,
        data: dict[str, Any],
    ) -> Any:
        message = update.message
        if message is None:
            return None
        if _FROM_INBOX.get() is None:
            # From Telegram (polling): stored first; the claim loop feeds it back.
            await self.enqueue(update.model_dump(mode="json", by_alias=True, exclude_none=True))
            return None
        chat_id = message.chat.id
        try:
            with self._inflight.holding(asyncio.current_task()):
                async with self._chat_locks.hold(str(chat_id)):
                    return await handler(update, data)
        except store.DuplicateMessage:
            log.info("Telegram message %s:%s already stored: skipped", chat_id, message.message_id)
        except Exception as exc:
            log.error(
                "Telegram update %s in chat %s failed: %s: %s",
                update.update_id,
                chat_id,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            await self.replier.apologise(chat_id)
        return None

    # -- the inbox -------------------------------------------------------------------------

    async def enqueue(self, update: dict[str, Any]) -> bool:
        """Store a message update in the inbox (once per chat and message); False for a repeat
        or an update that is not a message."""
        update = clean_json(update)  # lone surrogates and NUL: U+FFFD, storable
        message = update.get("message")
        if not isinstance(message, dict):
            return False
        chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
        chat_id, message_id = chat.get("id"), message.get("message_id")
        if not isinstance(chat_id, int) or not isinstance(message_id, int):
            return False
        _, created = await self.context.inbox.put(
            CHANNEL,
            f"message:{chat_id}:{message_id}",
            f"{CHANNEL}:{chat_id}",
            payload={"update": update, "trace": self.context.telemetry.received(CHANNEL)},
        )
        if not created:
            log.info("Telegram message %s:%s already received: skipped", chat_id, message_id)
        return created

    async def _answer_item(self, item: InboxRecord) -> dict[str, Any]:
        """Feed a stored update to the handlers (the inbox's handler for ``telegram``)."""
        raw = item.payload.get("update") or {}
        update = Update.model_validate(raw, context={"bot": self.bot})
        resuming = None
        if item.attempts > 1 and update.message is not None:
            resuming = await self._resume(item, update.message.chat.id, update.message.message_id)
        scope = SEND_SCOPE.set(SendScope(f"{item.id}"))
        inboxed = _FROM_INBOX.set(item.id)
        resumed = RESUMING.set(resuming)
        try:
            with joined(item.payload.get("trace")):  # the turn joins the trace of its receipt
                await self.dispatcher.feed_update(self.bot, update)
        finally:
            RESUMING.reset(resumed)
            _FROM_INBOX.reset(inboxed)
            SEND_SCOPE.reset(scope)
        return {"resumed": resuming} if resuming else {}

    async def _resume(self, item: InboxRecord, chat_id: int, message_id: int) -> str | None:
        """A turn cut by a crash: its reply left pending becomes ``interrupted``; returns the
        stored user message the turn answers again (None when it was not stored yet)."""
        stored = await store.find_message(CHANNEL, f"{chat_id}:{message_id}")
        if stored is None:
            return None
        leftover = dataclasses.replace(
            item, conversation_id=stored.conversation_id, user_message_id=stored.id
        )
        async with self.context.locks.hold(stored.conversation_id):
            await settle_leftovers(leftover)
        log.info("Telegram message %s:%s cut by a crash: answered again", chat_id, message_id)
        return stored.id

    # -- webhook ---------------------------------------------------------------------------

    def route_handlers(self) -> list[Any]:
        """``POST /webhooks/telegram`` in webhook mode; nothing when polling."""
        if self.settings.mode != "webhook":
            return []
        adapter = self

        @post(
            WEBHOOK_PATH,
            status_code=200,
            include_in_schema=False,
            request_max_body_size=self.settings.max_body_bytes,
        )
        async def telegram_webhook(request: Request[Any, Any, Any]) -> Response[dict[str, bool]]:
            """Receive one update: 403 without the right secret; 200 at once, handled after."""
            given = request.headers.get(SECRET_HEADER, "")
            expected = adapter.settings.webhook_secret
            if not secrets.compare_digest(given.encode(), expected.encode()):
                raise ApiError(403, "forbidden", "wrong or missing secret token")
            if not adapter._started:
                raise ApiError(503, "unavailable", "the Telegram adapter is not running")
            try:
                update = json.loads(await request.body())
            except RecursionError:
                raise ApiError(400, "invalid_json", TOO_DEEP) from None
            except ValueError:
                raise ApiError(400, "bad_request", "the body is not JSON") from None
            if not isinstance(update, dict):
                raise ApiError(400, "bad_request", "an update must be a JSON object")
            await adapter.accept(update)  # stored before Telegram gets its 200
            return Response({"ok": True})

        return [telegram_webhook]

    async def accept(self, update: dict[str, Any]) -> None:
        """Store a webhook update in the inbox (a malformed one is logged and dropped)."""
        try:
            parsed = Update.model_validate(update, context={"bot": self.bot})
        except ValidationError as exc:  # fields the Bot API requires are missing
            log.warning("Telegram update dropped: %s", invalid_update(exc))
            return
        except ValueError as exc:
            log.error("Telegram webhook update not handled: %s: %s", type(exc).__name__, exc)
            return
        await self.enqueue(parsed.model_dump(mode="json", by_alias=True, exclude_none=True))


async def _prune_keys() -> int:
    """Forget the delivery keys earlier versions recorded (once a day, in one process)."""
    pruned = await store.prune_inbound(CHANNEL, datetime.now(UTC) - timedelta(days=DEDUP_DAYS))
    if pruned:
        log.info("forgot %d Telegram delivery keys older than %d days", pruned, DEDUP_DAYS)
    return pruned
