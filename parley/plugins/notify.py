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
import hashlib
import hmac
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


def sign(secret: str, body: bytes) -> str:
    """The ``X-Parley-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """What a receiver checks: ``signature`` is the header sent with the raw ``body``."""
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature or "")


def _message(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "name": message.name,
        "character_id": message.character_id,
        "content": message.content,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
    }


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
        "created_at": datetime.now(UTC).isoformat(),
        "conversation_id": conversation.id,
        "user_id": conversation.user_id,
        "channel": conversation.channel,
        "template_id": conversation.template_id,
        "turn_count": conversation.turn_count,
        "status": conversation.status,
        "reason": reason or conversation.reason_ended,
        "messages": [_message(m) for m in messages or ()],
    }


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


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
        attempts, status, error = 0, None, None
        try:
            for attempt in range(settings.retries + 1):
                if attempt:
                    await asyncio.sleep(settings.backoff * 2 ** (attempt - 1))
                attempts += 1
                try:
                    response = await client.post(url, content=raw, headers=headers)
                except Exception as exc:  # timeouts, refused connections, bad URLs...
                    status, error = None, f"{type(exc).__name__}: {exc}".rstrip(": ")
                    continue
                if response.is_success:
                    return True
                status, error = response.status_code, f"HTTP {response.status_code}"
                if not _retryable(response.status_code):
                    break
        except asyncio.CancelledError:
            error = f"cancelled at shutdown (last: {error or 'no answer yet'})"
            await asyncio.shield(self._keep(url, event, body, attempts, status, error))
            raise
        await self._keep(url, event, body, attempts, status, error)
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
