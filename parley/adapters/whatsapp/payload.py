"""Meta's webhook deliveries: signature check, and the messages and statuses they carry.

Parsing never fails on a delivery's shape: a part of an unexpected type (``entry``, ``value``,
``profile`` or ``text`` given as a string...) is skipped and logged, the rest is read. Text is
cleaned of lone surrogates (:func:`parley.core.text.clean`) and capped at ``max_text_chars``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from parley.core.signing import verify
from parley.core.text import clean

__all__ = [
    "MEDIA_TYPES",
    "WhatsAppMessage",
    "WhatsAppStatus",
    "parse_delivery",
    "parse_statuses",
    "signature_ok",
]

log = logging.getLogger(__name__)


MEDIA_TYPES = frozenset({"image", "video", "document", "sticker"})
"""Message types that carry a media file (``{id, mime_type, sha256, caption?}``)."""

UNREADABLE_TYPES = frozenset({"video", "document", "sticker", "location", "contacts", "order"})
"""Types stored and answered with a polite word: Parley reads text, voice and images only."""


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
    group_id: str | None = None
    """The WhatsApp group the message was written in (Groups API), None in a private chat."""
    new_wa_id: str | None = None
    """``system`` messages of type ``user_changed_number``: the sender's new number."""
    original_chars: int | None = None
    """Set when the text was longer than the cap: its full length (``text`` is cut)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_audio(self) -> bool:
        """An audio file or a voice note."""
        return self.type == "audio"

    @property
    def changed_number(self) -> bool:
        """A ``user_changed_number`` system message: not a turn, an identity move."""
        return self.type == "system" and self.new_wa_id is not None

    def metadata(self) -> dict[str, Any]:
        """What is stored with the pending message (enough to answer it after a restart)."""
        data: dict[str, Any] = {"wa_id": self.wa_id, "type": self.type, **self.extra}
        if self.timestamp:
            data["timestamp"] = self.timestamp
        if self.is_audio or self.type in MEDIA_TYPES:
            data.update(media_id=self.media_id, mime_type=self.mime_type)
        if self.is_audio:
            data["voice"] = self.voice
        if self.group_id:
            data["group_id"] = self.group_id
        if self.original_chars is not None:
            data["original_chars"] = self.original_chars
        return data


@dataclass(frozen=True, slots=True)
class WhatsAppStatus:
    """A status callback: what became of a message Parley sent (``id`` is its wamid)."""

    id: str
    status: str
    """``sent``, ``delivered``, ``read`` or ``failed``."""
    timestamp: str | None = None
    recipient_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


def _dict(value: Any, where: str) -> dict[str, Any]:
    """``value`` when it is an object; {} (logged) for anything else but null."""
    if isinstance(value, dict):
        return value
    if value is not None:
        log.warning("WhatsApp delivery: %s is %s, not an object: skipped", where, _kind(value))
    return {}


def _list(value: Any, where: str) -> list[Any]:
    """``value`` when it is an array; [] (logged) for anything else but null."""
    if isinstance(value, list):
        return value
    if value is not None:
        log.warning("WhatsApp delivery: %s is %s, not an array: skipped", where, _kind(value))
    return []


def _str(value: Any) -> str | None:
    """A string or number as text (cleaned); None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return clean(str(value))
    return None


def _kind(value: Any) -> str:
    return type(value).__name__


def _text_of(message: dict[str, Any], kind: str) -> str:
    """The words a message carries (its text, caption, order note, place...)."""
    if kind == "text":
        return _str(_dict(message.get("text"), "text").get("body")) or ""
    if kind == "button":  # a quick-reply button of a template message
        return _str(_dict(message.get("button"), "button").get("text")) or ""
    if kind == "interactive":
        interactive = _dict(message.get("interactive"), "interactive")
        reply = _dict(interactive.get("button_reply") or interactive.get("list_reply"), "reply")
        return _str(reply.get("title")) or ""
    if kind in MEDIA_TYPES:
        return _str(_dict(message.get(kind), kind).get("caption")) or ""
    if kind == "order":
        return _str(_dict(message.get("order"), "order").get("text")) or ""
    if kind == "location":
        place = _dict(message.get("location"), "location")
        parts = [_str(place.get(k)) for k in ("name", "address")]
        where = ", ".join(p for p in parts if p)
        spot = f"{_str(place.get('latitude'))}, {_str(place.get('longitude'))}"
        return f"{where} ({spot})" if where else spot
    if kind == "contacts":
        names = []
        for contact in _list(message.get("contacts"), "contacts"):
            name = _dict(_dict(contact, "contact").get("name"), "contact name")
            names.append(_str(name.get("formatted_name")) or "")
        return ", ".join(n for n in names if n)
    return ""


def _message(
    raw: dict[str, Any], names: dict[str, str], fallback_wa_id: str | None, max_chars: int
) -> WhatsAppMessage | None:
    wamid, kind = _str(raw.get("id")), _str(raw.get("type")) or "unknown"
    sender = _str(raw.get("from")) or fallback_wa_id
    if not wamid or not sender:
        return None
    common: dict[str, Any] = {
        "wamid": wamid,
        "wa_id": sender,
        "type": kind,
        "profile_name": names.get(sender),
        "timestamp": _str(raw.get("timestamp")),
        "group_id": _str(raw.get("group_id")),
    }
    if kind == "system":
        system = _dict(raw.get("system"), "system")
        if system.get("type") != "user_changed_number":
            return None
        new = _str(system.get("new_wa_id")) or _str(system.get("wa_id"))
        return WhatsAppMessage(**common, new_wa_id=new) if new else None
    if kind == "reaction":
        return None  # an emoji on an earlier message: nothing to answer
    if kind == "audio" or kind in MEDIA_TYPES:
        media = _dict(raw.get(kind), kind)
        media_id = _str(media.get("id"))
        if not media_id:
            return None
        common.update(media_id=media_id, mime_type=_str(media.get("mime_type")))
        if kind == "audio":
            common["voice"] = bool(media.get("voice"))
    elif kind == "unsupported":
        errors = [_dict(e, "error") for e in _list(raw.get("errors"), "errors")]
        common["extra"] = {"errors": [e for e in errors if e][:5]}
    text = _text_of(raw, kind)
    if kind in ("text", "button", "interactive") and not text:
        return None
    if len(text) > max_chars:
        return WhatsAppMessage(**common, text=text[:max_chars], original_chars=len(text))
    return WhatsAppMessage(**common, text=text)


def _changes(data: Any, phone_number_id: str) -> list[dict[str, Any]]:
    """The ``value`` of every ``messages`` change for ``phone_number_id``."""
    data = _dict(data, "the body")
    if data.get("object") != "whatsapp_business_account":
        return []
    values = []
    for entry in _list(data.get("entry"), "entry"):
        for change in _list(_dict(entry, "entry[]").get("changes"), "changes"):
            change = _dict(change, "changes[]")
            if change.get("field") != "messages":
                continue
            value = _dict(change.get("value"), "value")
            number = _str(_dict(value.get("metadata"), "metadata").get("phone_number_id"))
            if number is not None and number != phone_number_id:
                log.info("ignoring a delivery for phone number %s", number)
                continue
            values.append(value)
    return values


def parse_delivery(
    data: Any, phone_number_id: str, *, max_chars: int = 4096
) -> list[WhatsAppMessage]:
    """The user messages of a delivery to ``phone_number_id``, in delivery order.

    Status callbacks (:func:`parse_statuses`), other phone numbers' messages, reactions and
    unreadable parts are left out; texts longer than ``max_chars`` are cut (``original_chars``).
    """
    found: list[WhatsAppMessage] = []
    for value in _changes(data, phone_number_id):
        contacts = [_dict(c, "contacts[]") for c in _list(value.get("contacts"), "contacts")]
        names = {}
        for contact in contacts:
            wa_id = _str(contact.get("wa_id"))
            name = _str(_dict(contact.get("profile"), "profile").get("name"))
            if wa_id and name:
                names[wa_id] = name
        only = _str(contacts[0].get("wa_id")) if len(contacts) == 1 else None
        for raw in _list(value.get("messages"), "messages"):
            if not isinstance(raw, dict):
                log.warning("WhatsApp delivery: a message is %s: skipped", _kind(raw))
                continue
            message = _message(raw, names, only, max_chars)
            if message is None:
                log.info("ignoring a WhatsApp message of type %r", _str(raw.get("type")))
                continue
            found.append(message)
    return found


def parse_statuses(data: Any, phone_number_id: str) -> list[WhatsAppStatus]:
    """The status callbacks of a delivery (sent / delivered / read / failed), in order."""
    found = []
    for value in _changes(data, phone_number_id):
        for raw in _list(value.get("statuses"), "statuses"):
            raw = _dict(raw, "statuses[]")
            wamid, status = _str(raw.get("id")), _str(raw.get("status"))
            if not wamid or not status:
                continue
            errors = [_dict(e, "error") for e in _list(raw.get("errors"), "errors")]
            found.append(
                WhatsAppStatus(
                    wamid,
                    status,
                    timestamp=_str(raw.get("timestamp")),
                    recipient_id=_str(raw.get("recipient_id")),
                    errors=[e for e in errors if e][:5],
                )
            )
    return found
