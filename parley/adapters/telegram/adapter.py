"""The Telegram adapter: polling in the background or a webhook route, one guard for every update.

Every update passes :meth:`TelegramAdapter._guard` (an aiogram outer middleware) before any
handler: it serialises the updates of one chat (in arrival order; different chats run
concurrently), skips an update already handled — same ``update_id``, or same chat and message id —
through ``store.claim_inbound`` (in the database, so also after a restart), and turns any failure
into a short friendly message plus a log line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiogram import Dispatcher
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.types import Update
from litestar import Request, Response, post
from pydantic import ValidationError

from parley.adapters.telegram.chats import CHANNEL
from parley.adapters.telegram.handlers import Handlers, invalid_update
from parley.adapters.telegram.replies import Replier
from parley.adapters.telegram.settings import TelegramSettings
from parley.adapters.telegram.transport import TokenFilter, log, make_bot, poll_under_lease
from parley.core import store
from parley.core.leases import make_lease
from parley.core.locks import LocalLocks
from parley.core.retry import retrying
from parley.server import ApiError

if TYPE_CHECKING:
    from parley.core.runtime import Runtime

__all__ = ["SECRET_HEADER", "WEBHOOK_PATH", "TelegramAdapter"]

WEBHOOK_PATH = "/webhooks/telegram"
DEDUP_DAYS = 30
"""Days a handled update is remembered (Telegram re-delivers for a day at most)."""
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message"]


class TelegramAdapter:
    """A Telegram bot on the engine. ``start`` / ``stop`` run it; webhook mode adds a route."""

    name = "telegram"

    def __init__(self, runtime: Runtime, settings: TelegramSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.bot = make_bot(settings)
        self.replier = Replier(self.bot)
        self.dispatcher = Dispatcher(disable_fsm=True)
        self.dispatcher.update.outer_middleware(self._guard)
        self.handlers: Handlers | None = None
        self.token_filter = TokenFilter(settings.resolved_token())
        self._chat_locks = LocalLocks()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._background: asyncio.Task[None] | None = None
        self._started = False
        self.failure: str | None = None
        """Why the bot stopped on its own (a refused token), else None."""

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the handlers on the engine, then poll or register the webhook (in the background)."""
        self.token_filter.install()
        # Telegram re-delivers an update for a day at most: keys older than this are dead weight.
        cutoff = datetime.now(UTC) - timedelta(days=DEDUP_DAYS)
        pruned = await store.prune_inbound("telegram", cutoff)
        if pruned:
            log.info("forgot %d Telegram delivery keys older than %d days", pruned, DEDUP_DAYS)
        self.handlers = Handlers(self.runtime.engine, self.settings, self.replier)
        self.dispatcher.include_router(self.handlers.router())
        if self.settings.reply_voice != "never" and self.runtime.engine.tts is None:
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
        if self._inflight:
            _done, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=grace)
        await self.bot.session.close()
        self.token_filter.uninstall()
        self._started = False

    async def wait(self) -> None:
        """Until the background work (polling) ends: for ``parley telegram``."""
        if self._background is not None:
            await self._background

    async def _poll(self) -> None:
        lease = make_lease(f"telegram-polling-{self.bot.id}", self.runtime.settings)
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
        chat_id = message.chat.id
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            async with self._chat_locks.hold(str(chat_id)):
                keys = (f"update:{update.update_id}", f"message:{chat_id}:{message.message_id}")
                for key in keys:
                    if not await store.claim_inbound(CHANNEL, key):
                        log.info("Telegram %s already handled: skipped", key)
                        return None
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
        finally:
            if task is not None:
                self._inflight.discard(task)
        return None

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
            except (ValueError, RecursionError):  # not JSON, or nested too deeply
                raise ApiError(400, "bad_request", "the body is not JSON") from None
            if not isinstance(update, dict):
                raise ApiError(400, "bad_request", "an update must be a JSON object")
            adapter.accept(update)
            return Response({"ok": True})

        return [telegram_webhook]

    def accept(self, update: dict[str, Any]) -> None:
        """Handle a webhook update in a tracked background task."""
        task = asyncio.create_task(self._feed(update))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _feed(self, update: dict[str, Any]) -> None:
        try:
            await self.dispatcher.feed_raw_update(self.bot, update)
        except ValidationError as exc:  # fields the Bot API requires are missing
            log.warning("Telegram update dropped: %s", invalid_update(exc))
        except Exception as exc:
            log.error("Telegram webhook update not handled: %s: %s", type(exc).__name__, exc)
