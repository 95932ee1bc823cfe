"""What a WhatsApp delivery carries besides plain turns: statuses, number changes, groups, media.

- Status callbacks are recorded on the reply they refer to (``whatsapp_delivery`` in its
  metadata; ``failed`` marks the reply ``failed`` with Meta's errors), never downgraded by a
  callback arriving out of order.
- ``user_changed_number`` moves the sender's identity to the new number: history follows.
- Group messages are ignored (logged) unless ``whatsapp.group_replies`` is on; replies then go
  to the group.
- Before a turn, :func:`prepare` fetches what the message needs: the voice note's audio, the
  image for a vision model. What Parley cannot read (video, documents, stickers, places,
  contacts, orders, unsupported messages, an over-long text, a file that cannot be downloaded)
  gets a polite answer instead of a turn.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import Any

from parley.adapters.whatsapp.graph import GraphClient, GraphError
from parley.adapters.whatsapp.payload import (
    UNREADABLE_TYPES,
    WhatsAppMessage,
    WhatsAppStatus,
)
from parley.adapters.whatsapp.settings import WhatsAppSettings
from parley.core import store
from parley.core.inbound import Inbound

__all__ = [
    "APOLOGIES",
    "GROUP_PREFIX",
    "Unanswerable",
    "keep_for_turns",
    "prepare",
    "recipient",
    "record_statuses",
    "remember_sent",
]

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"

GROUP_PREFIX = "group:"
"""A reply target that is a group (``group:<group id>``) rather than a number."""

APOLOGIES = {
    "unsupported_type": "Sorry, I can read text, listen to voice notes and look at pictures, "
    "but not this kind of message.",
    "message_too_long": "Sorry, that message is too long for me. Could you send it in shorter "
    "parts?",
    "media_download_failed": "Sorry, I couldn't get that file. Could you send it again, or type "
    "your message?",
    "media_too_large": "Sorry, that file is too large for me.",
}
"""What the user reads when a message gets no turn; the cause goes to the log and metadata."""

_RANK = {"sent": 1, "delivered": 2, "read": 3}


@dataclass(frozen=True, slots=True)
class Unanswerable:
    """Why a stored message gets an apology instead of a turn."""

    code: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def apology(self) -> str:
        """The polite answer sent to the user."""
        return APOLOGIES.get(self.code, APOLOGIES["unsupported_type"])


def recipient(metadata: dict[str, Any]) -> str:
    """Where replies to a stored message go: the group it came from, else the sender."""
    group = metadata.get("group_id")
    return f"{GROUP_PREFIX}{group}" if group else str(metadata["wa_id"])


async def keep_for_turns(
    messages: list[WhatsAppMessage], group_replies: bool
) -> list[WhatsAppMessage]:
    """The messages that become turns; number changes are applied, group messages dropped
    (logged) unless ``group_replies``."""
    kept = []
    for message in messages:
        if message.changed_number:
            assert message.new_wa_id is not None
            moved = await store.move_identity(CHANNEL, message.wa_id, message.new_wa_id)
            log.info("WhatsApp user changed number: identity %s", "moved" if moved else "kept")
        elif message.group_id and not group_replies:
            log.info(
                "WhatsApp group message %s ignored (whatsapp.group_replies is off)", message.wamid
            )
        else:
            kept.append(message)
    return kept


async def remember_sent(wamid: str | None, message_id: str) -> None:
    """Note which stored reply a sent WhatsApp message (``wamid``) belongs to."""
    if wamid:
        await store.record_send(CHANNEL, f"wamid:{wamid}", message_id)


async def record_statuses(statuses: list[WhatsAppStatus]) -> int:
    """Record each status on its reply; return how many were recorded."""
    recorded = 0
    for status in statuses:
        message_id = await store.sent(CHANNEL, f"wamid:{status.id}")
        message = await store.get_message(message_id) if message_id else None
        if message is None:
            log.info("WhatsApp status %s for an unknown message: ignored", status.status)
            continue
        metadata = dict(message.metadata)
        delivery = dict(metadata.get("whatsapp_delivery") or {})
        fields: dict[str, Any] = {}
        if status.status == "failed":
            delivery.update(status="failed", at=status.timestamp, errors=status.errors)
            fields["status"] = "failed"
            log.warning(
                "WhatsApp reply %s failed: %s",
                message.id,
                ", ".join(str(e.get("code")) for e in status.errors) or "no error code",
            )
        elif delivery.get("status") == "failed" or _RANK.get(status.status, 0) <= _RANK.get(
            str(delivery.get("status")), 0
        ):
            continue  # out of order, or after a failure: keep what is known
        else:
            delivery.update(status=status.status, at=status.timestamp)
        metadata["whatsapp_delivery"] = delivery
        await store.update_message(message.id, metadata=metadata, **fields)
        recorded += 1
    return recorded


async def prepare(
    graph: GraphClient, settings: WhatsAppSettings, inbound: Inbound
) -> Unanswerable | None:
    """Fill ``inbound`` with what the turn needs (audio, image); or say why there is no turn."""
    metadata = inbound.metadata
    kind = metadata.get("type")
    if metadata.get("original_chars") is not None:
        return Unanswerable("message_too_long", {"original_chars": metadata["original_chars"]})
    if kind in UNREADABLE_TYPES or kind == "unsupported":
        return Unanswerable("unsupported_type", {"type": kind})
    if kind == "audio":
        inbound.text = ""
        fetched = await _download(graph, metadata, settings.max_media_bytes)
        if isinstance(fetched, Unanswerable):
            return fetched
        inbound.audio, mime = fetched
        inbound.audio_mime = mime or metadata.get("mime_type")
    elif kind == "image":
        fetched = await _download(graph, metadata, settings.max_image_bytes)
        if isinstance(fetched, Unanswerable):
            return fetched
        data, mime = fetched
        mime = (mime or metadata.get("mime_type") or "image/jpeg").split(";")[0]
        # A data: URL: the Graph download URL needs the access token, which must not reach the
        # LLM provider.
        inbound.image_urls = [f"data:{mime};base64," + base64.b64encode(data).decode("ascii")]
    return None


async def _download(
    graph: GraphClient, metadata: dict[str, Any], max_bytes: int
) -> tuple[bytes, str | None] | Unanswerable:
    try:
        info = await graph.media_info(str(metadata.get("media_id")))
        if info.file_size is not None and info.file_size > max_bytes:
            return Unanswerable("media_too_large", {"file_size": info.file_size})
        return await graph.download(info.url, max_bytes=max_bytes), info.mime_type
    except GraphError as exc:
        code = "media_too_large" if exc.code == "too_large" else "media_download_failed"
        return Unanswerable(code, {"graph": exc.as_metadata()})
