"""Talking to the Bot API: the aiogram Bot, 429 retries, bounded downloads, token redaction,
polling under a lease (one process polls a bot at a time).

Imports aiogram: only the Telegram adapter imports this module.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter

from parley.core.retry import retrying

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiogram import Dispatcher
    from aiogram.methods import Response, TelegramMethod

    from parley.adapters.telegram.settings import TelegramSettings
    from parley.core.leases import Lease

__all__ = [
    "MAX_DOWNLOAD",
    "DownloadError",
    "RetryAfterMiddleware",
    "TokenFilter",
    "download",
    "log",
    "make_bot",
    "poll_under_lease",
]

log = logging.getLogger("parley.adapters.telegram")
"""The one logger of the adapter (its token filter applies to records logged here)."""

STOP_GRACE = 10.0
"""Seconds polling gets to stop cleanly when its lease is lost or the adapter stops."""

MAX_DOWNLOAD = 20 * 1024 * 1024
"""The Bot API's own cap on downloads from its cloud servers."""

_FILTERED_LOGGERS = (
    "parley.adapters.telegram",
    "aiogram.dispatcher",
    "aiogram.event",
    "aiogram.middlewares",
    "aiogram.webhook",
)


class DownloadError(Exception):
    """A file could not be fetched (too large, gone, unreachable)."""


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Retries a request the Bot API answered with 429, after its ``retry_after`` seconds.

    Through the one retry policy (:func:`parley.core.retry.retrying`): the server-given delay is
    the wait; a delay over ``max_wait`` and any other error are raised at once.
    """

    def __init__(self, *, attempts: int = 3, max_wait: float = 60.0) -> None:
        self.attempts = attempts
        self.max_wait = max_wait

    def _wait(self, exc: Exception) -> bool | float:
        """``retry_after`` of a 429 (False: not a 429, or a wait longer than ``max_wait``)."""
        if isinstance(exc, TelegramRetryAfter) and exc.retry_after <= self.max_wait:
            return float(exc.retry_after)
        return False

    async def __call__(
        self, make_request: Any, bot: Bot, method: TelegramMethod[Any]
    ) -> Response[Any]:
        """Call the next layer; on 429 wait ``retry_after`` and try again (bounded)."""
        async for attempt in retrying(
            f"Bot API {type(method).__name__}",
            on=self._wait,
            retries=self.attempts - 1,
            backoff=0.0,  # never used: every retry waits the server-given delay
            max_backoff=self.max_wait,
            describe=_flood_control,
            logger=log,
        ):
            with attempt:
                return await make_request(bot, method)
        raise AssertionError("unreachable")  # pragma: no cover


def _flood_control(exc: Exception) -> str:
    retry_after = getattr(exc, "retry_after", "?")
    return f"flood control (429), retrying in {retry_after} s"


class TokenFilter(logging.Filter):
    """Replaces the bot token with ``<token>`` in log messages and tracebacks."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def redact(self, text: str) -> str:
        """``text`` without the token."""
        return text.replace(self.token, "<token>") if self.token else text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True

    def install(self) -> None:
        """Attach to the adapter's and aiogram's loggers."""
        for name in _FILTERED_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def uninstall(self) -> None:
        """Detach from every logger it was attached to."""
        for name in _FILTERED_LOGGERS:
            logging.getLogger(name).removeFilter(self)


def make_bot(settings: TelegramSettings) -> Bot:
    """An aiogram Bot on ``telegram.api_base`` that honours 429 ``retry_after``."""
    api = TelegramAPIServer.from_base(settings.api_base, is_local=False)
    session = AiohttpSession(api=api, timeout=60.0)
    session.middleware(RetryAfterMiddleware())
    return Bot(settings.resolved_token(), session=session)


def _read_local(path: str, limit: int) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise DownloadError(f"file larger than {limit} bytes")
    return data


async def download(bot: Bot, file_id: str, *, limit: int = MAX_DOWNLOAD) -> bytes:
    """getFile + download, capped at ``limit`` bytes.

    A self-hosted Bot API server in ``--local`` mode answers an absolute path on its own disk
    instead of a downloadable one: such a path is read from the file system.
    """
    file = await bot.get_file(file_id)
    if file.file_size and file.file_size > limit:
        raise DownloadError(f"file of {file.file_size} bytes exceeds {limit}")
    if not file.file_path:
        raise DownloadError("the Bot API gave no file path")
    if os.path.isabs(file.file_path):
        return await asyncio.to_thread(_read_local, file.file_path, limit)
    url = bot.session.api.file_url(bot.token, file.file_path)
    data = bytearray()
    async for chunk in bot.session.stream_content(url=url, timeout=60):
        data += chunk
        if len(data) > limit:
            raise DownloadError(f"file larger than {limit} bytes")
    return bytes(data)


async def poll_under_lease(
    dispatcher: Dispatcher,
    bot: Bot,
    lease: Lease,
    *,
    prepare: Callable[[], Awaitable[bool]],
    allowed_updates: list[str],
) -> None:
    """Poll getUpdates only while this process holds ``lease``; wait for it otherwise.

    The Bot API serves one getUpdates at a time per bot (a second one gets 409 Conflict), so
    of several processes one polls and the others stand by; when the poller stops or dies, one
    of them takes over (after the lease's ttl for a dead one). Updates the old poller fetched
    but did not confirm come again: the adapter skips those already handled. ``prepare`` runs
    each time the lease is taken (deleteWebhook) and returns False to give polling up.
    Returns when polling stops on its own; the lease is then released and closed.
    """

    async def poll() -> None:
        if not await prepare():
            return
        log.info("Telegram polling started (lease %s, holder %s)", lease.name, lease.holder)
        polling = asyncio.ensure_future(
            dispatcher.start_polling(
                bot,
                # Each update is handled (stored in the inbox: quick) before the next getUpdates,
                # whose offset is what tells Telegram the earlier ones arrived: nothing is
                # acknowledged before it is stored.
                handle_as_tasks=False,
                handle_signals=False,
                close_bot_session=False,
                allowed_updates=allowed_updates,
            )
        )
        try:
            await asyncio.shield(polling)
        except asyncio.CancelledError:
            # Lease lost or shutting down: aiogram stops cleanly only through stop_polling
            # (cancelling start_polling leaves its getUpdates loop running).
            if not polling.done():
                with suppress(RuntimeError, TimeoutError):  # RuntimeError: not started yet
                    async with asyncio.timeout(STOP_GRACE):
                        await dispatcher.stop_polling()
                polling.cancel()  # nothing when it stopped; else the last resort
                await asyncio.wait({polling})
            raise

    try:
        await lease.run(poll)
    finally:
        await lease.close()
