"""Built-in plugin ``notify``: POSTs ``turn_completed`` and ``conversation_ended`` to your URLs.

Off until ``notify.urls`` lists at least one URL. Each event is one JSON body POSTed to every URL
in a background task, so a slow or broken receiver never slows or fails a turn. With
``notify.secret`` the body is signed: ``X-Parley-Signature: sha256=<hex HMAC-SHA256 of the raw
body>``. A delivery is retried (timeouts, connection errors, 408, 429, 5xx) with exponential
backoff; one that still fails is logged and kept in the ``parley_failed_delivery`` table
(``store.list_failed_deliveries()``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from msgspec import Meta

from parley.core import store
from parley.core.background import BackgroundTasks
from parley.core.hookspecs import hookimpl
from parley.core.retry import retrying
from parley.core.serialize import iso, message_json
from parley.core.signing import sign, verify
from parley.core.store.records import ConversationRecord, MessageRecord

if TYPE_CHECKING:
    import httpx

    from parley.core.plugin_context import PluginContext

__all__ = ["EVENTS", "NotifyPlugin", "NotifySettings", "payload", "sign", "verify"]

log = logging.getLogger(__name__)

Event = Literal["turn_completed", "conversation_ended"]
EVENTS: tuple[str, ...] = get_args(Event)
SIGNATURE_HEADER = "X-Parley-Signature"


@dataclass(slots=True)
class NotifySettings:
    """``[notify]``: outbound notifications."""

    urls: list[Annotated[str, Meta(pattern=r"^https?://")]] = field(default_factory=list)
    """Receivers (http:// or https://); empty: notifications are off."""
    secret: str = ""
    """HMAC-SHA256 key for ``X-Parley-Signature``; empty: bodies are sent unsigned."""
    timeout: Annotated[float, Meta(ge=0.01, le=600)] = 5.0
    """Seconds per attempt."""
    retries: Annotated[int, Meta(ge=0, le=20)] = 3
    """Attempts after the first one."""
    backoff: Annotated[float, Meta(ge=0, le=600)] = 1.0
    """Seconds before the first retry; doubled for each further one."""
    events: list[Event] = field(default_factory=lambda: list(EVENTS))
    """Which events to send."""


def payload(
    event: str,
    conversation: ConversationRecord,
    *,
    messages: list[MessageRecord] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """The JSON body of one notification."""
    return {
        "event": event,
        "id": str(uuid.uuid4()),
        "created_at": iso(datetime.now(UTC)),
        "conversation_id": conversation.id,
        "user_id": conversation.user_id,
        "channel": conversation.channel,
        "template_id": conversation.template_id,
        "turn_count": conversation.turn_count,
        "status": conversation.status,
        "reason": reason or conversation.reason_ended,
        "messages": [message_json(m) for m in messages or ()],
    }


MAX_BACKOFF = 300.0
"""Longest wait between two attempts of a delivery, in seconds."""


class _Undelivered(Exception):
    def __init__(self, retryable: bool) -> None:
        self.retryable = retryable


def _again(exc: Exception) -> bool:
    return isinstance(exc, _Undelivered) and exc.retryable


@dataclass(slots=True)
class _Tries:
    """The attempts of one delivery so far, and how the last one failed."""

    attempts: int = 0
    status: int | None = None
    error: str | None = None

    async def post(
        self, client: httpx.AsyncClient, url: str, raw: bytes, headers: dict[str, str]
    ) -> None:
        self.attempts += 1
        try:
            response = await client.post(url, content=raw, headers=headers)
        except Exception as exc:  # timeouts, refused connections, bad URLs...
            self.status, self.error = None, f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise _Undelivered(retryable=True) from None
        if response.is_success:
            return
        code = response.status_code
        self.status, self.error = code, f"HTTP {code}"
        raise _Undelivered(retryable=code in (408, 429) or code >= 500)


class NotifyPlugin:
    """One instance per plugin manager; inert until ``startup`` finds ``notify.urls``."""

    def __init__(self) -> None:
        self.settings: NotifySettings | None = None
        self.client: httpx.AsyncClient | None = None
        self.tasks = BackgroundTasks("notify")

    @hookimpl
    def register_settings(self, register: Callable[..., None]) -> None:
        """Declare ``[notify]`` so a bad value stops start-up."""
        register("notify", NotifySettings)

    @hookimpl
    def startup(self, context: PluginContext) -> None:
        """Read ``[notify]`` and open the HTTP client when there are URLs."""
        settings = context.section("notify", NotifySettings)  # validated at collect time
        self.tasks = context.tasks("notify")
        if not settings.urls:
            return
        import httpx

        if not settings.secret:
            log.warning("notify.secret is empty: notifications are sent unsigned")
        self.settings = settings
        self.client = httpx.AsyncClient(timeout=settings.timeout)

    @hookimpl
    async def shutdown(self) -> None:
        """Give deliveries in flight one ``notify.timeout``, cancel the rest, close the client."""
        settings, client = self.settings, self.client
        await self.tasks.drain(settings.timeout if settings else 0)
        self.settings = self.client = None
        if client is not None:
            await client.aclose()

    @hookimpl
    def turn_completed(
        self, conversation: ConversationRecord, messages: list[MessageRecord]
    ) -> None:
        """Send ``turn_completed`` with the turn's messages."""
        self._send("turn_completed", payload("turn_completed", conversation, messages=messages))

    @hookimpl
    def conversation_ended(self, conversation: ConversationRecord, reason: str) -> None:
        """Send ``conversation_ended`` with the reason."""
        self._send("conversation_ended", payload("conversation_ended", conversation, reason=reason))

    def _send(self, event: str, body: dict[str, Any]) -> None:
        settings = self.settings
        if settings is None or event not in settings.events:
            return
        for url in settings.urls:
            self.tasks.spawn(self.deliver(url, event, body), name=f"notify:{event}")

    async def deliver(self, url: str, event: str, body: dict[str, Any]) -> bool:
        """POST ``body`` to ``url`` with retries; keep it as a failed delivery if it never lands."""
        settings, client = self.settings, self.client
        if settings is None or client is None:
            return False
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "parley-notify",
            "X-Parley-Event": event,
            "X-Parley-Delivery": body["id"],
        }
        if settings.secret:
            headers[SIGNATURE_HEADER] = sign(settings.secret, raw)
        tries = _Tries()
        try:
            async for attempt in retrying(
                f"notify: {event} to {url}",
                on=_again,
                describe=lambda _: tries.error or "failed",
                logger=log,
                retries=settings.retries,
                backoff=settings.backoff,
                max_backoff=MAX_BACKOFF,
            ):
                with attempt:
                    await tries.post(client, url, raw, headers)
            return True
        except _Undelivered:
            pass
        except asyncio.CancelledError:
            error = f"cancelled at shutdown (last: {tries.error or 'no answer yet'})"
            await asyncio.shield(self._keep(url, event, body, tries.attempts, tries.status, error))
            raise
        await self._keep(url, event, body, tries.attempts, tries.status, tries.error)
        return False

    async def _keep(
        self,
        url: str,
        event: str,
        body: dict[str, Any],
        attempts: int,
        status: int | None,
        error: str | None,
    ) -> None:
        log.warning("notify: %s to %s failed after %d attempt(s): %s", event, url, attempts, error)
        try:
            await store.add_failed_delivery(
                url, event, body, attempts=attempts, status_code=status, error=error
            )
        except Exception:
            log.exception("notify: could not store the failed delivery")
