"""Meta's webhook deliveries: signature check and the inbound messages they carry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from parley.core.signing import verify

__all__ = ["WhatsAppMessage", "parse_delivery", "signature_ok"]

log = logging.getLogger(__name__)


def signature_ok(body: bytes, header: str | None, app_secret: str) -> bool:
    """True when ``header`` is ``sha256=<hex HMAC-SHA256 of body with app_secret>``."""
    return verify(app_secret, body, header)


@dataclass(frozen=True, slots=True)
class WhatsAppMessage:
    """One user message of a delivery, reduced to what a turn needs."""

    wamid: str
    wa_id: str
    type: str
    text: str = ""
    profile_name: str | None = None
    media_id: str | None = None
    mime_type: str | None = None
    voice: bool = False
    timestamp: str | None = None

    @property
    def is_audio(self) -> bool:
        """An audio file or a voice note."""
        return self.type == "audio"

    def metadata(self) -> dict[str, Any]:
        """What is stored with the pending message (enough to answer it after a restart)."""
        data: dict[str, Any] = {"wa_id": self.wa_id, "type": self.type}
        if self.timestamp:
            data["timestamp"] = self.timestamp
        if self.is_audio:
            data.update(media_id=self.media_id, mime_type=self.mime_type, voice=self.voice)
        return data


def _text_of(message: dict[str, Any]) -> str | None:
    """The words of a text-like message, None for types Parley does not answer."""
    kind = message.get("type")
    if kind == "text":
        return str((message.get("text") or {}).get("body") or "")
    if kind == "button":  # a quick-reply button of a template message
        return str((message.get("button") or {}).get("text") or "")
    if kind == "interactive":
        interactive = message.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
        return str(reply.get("title") or "")
    return None


def _message(
    raw: dict[str, Any], names: dict[str, str], fallback_wa_id: str | None
) -> WhatsAppMessage | None:
    wamid, sender, kind = raw.get("id"), raw.get("from") or fallback_wa_id, raw.get("type")
    if not isinstance(wamid, str) or not wamid or not isinstance(sender, str) or not sender:
        return None
    common = {
        "wamid": wamid,
        "wa_id": sender,
        "type": str(kind),
        "profile_name": names.get(sender),
        "timestamp": str(raw["timestamp"]) if raw.get("timestamp") is not None else None,
    }
    if kind == "audio":
        audio = raw.get("audio") or {}
        media_id = audio.get("id")
        if not media_id:
            return None
        return WhatsAppMessage(
            **common,
            media_id=str(media_id),
            mime_type=audio.get("mime_type"),
            voice=bool(audio.get("voice")),
        )
    text = _text_of(raw)
    if not text:
        return None
    return WhatsAppMessage(**common, text=text)


def parse_delivery(data: Any, phone_number_id: str) -> list[WhatsAppMessage]:
    """The user messages of a delivery to ``phone_number_id``, in delivery order.

    Status callbacks, other phone numbers' messages, and message types Parley does not answer
    (images, stickers, reactions, locations...) are left out.
    """
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        return []
    found: list[WhatsAppMessage] = []
    for entry in data.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            if not isinstance(change, dict) or change.get("field") != "messages":
                continue
            value = change.get("value") or {}
            number = (value.get("metadata") or {}).get("phone_number_id")
            if number is not None and str(number) != phone_number_id:
                log.info("ignoring a delivery for phone number %s", number)
                continue
            contacts = [c for c in value.get("contacts") or [] if isinstance(c, dict)]
            names = {
                str(c.get("wa_id")): str((c.get("profile") or {}).get("name"))
                for c in contacts
                if c.get("wa_id") and (c.get("profile") or {}).get("name")
            }
            only = (
                str(contacts[0]["wa_id"])
                if len(contacts) == 1 and contacts[0].get("wa_id")
                else None
            )
            for raw in value.get("messages") or []:
                if not isinstance(raw, dict):
                    continue
                message = _message(raw, names, only)
                if message is None:
                    log.info("ignoring a WhatsApp message of type %r", raw.get("type"))
                    continue
                found.append(message)
    return found
