"""Settings of the WhatsApp adapter: the ``[whatsapp]`` section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from msgspec import Meta

from parley.core.config import InvalidSetting

__all__ = ["REPLY_VOICE_MODES", "WhatsAppSettings"]

ReplyVoice = Literal["auto", "always", "never"]
REPLY_VOICE_MODES: tuple[str, ...] = get_args(ReplyVoice)

_REQUIRED_WHEN_ENABLED = ("verify_token", "app_secret", "access_token", "phone_number_id")


@dataclass(slots=True)
class WhatsAppSettings:
    """Meta's WhatsApp Cloud API: a webhook at ``/webhooks/whatsapp`` and the Graph API for replies."""

    enabled: bool = False
    """Mount the webhook and answer WhatsApp messages."""
    greeting: bool = True
    """Open new conversations with the template's greeting (false: no greeting here)."""
    verify_token: str = ""
    """The token typed into Meta's webhook set-up; ``GET /webhooks/whatsapp`` checks it."""
    app_secret: str = ""
    """The Meta app's secret: every delivery's ``X-Hub-Signature-256`` is checked with it."""
    access_token: str = ""
    """Graph API bearer token (a system user's permanent token). Keep it in .secrets.toml."""
    phone_number_id: str = ""
    """The business phone number id replies are sent from; other numbers' messages are ignored."""
    graph_base: Annotated[str, Meta(pattern=r"^https?://")] = "https://graph.facebook.com/v21.0"
    """Graph API base with its version; requests go to ``{graph_base}/{phone_number_id}/messages``."""
    template: str = ""
    """Template of WhatsApp conversations; empty: ``conversation.default_template``."""
    reply_voice: ReplyVoice = "auto"
    """``auto``: a voice note answers a voice note; ``always``: every reply; ``never``: text only."""
    voice_format: Annotated[str, Meta(pattern=r"^pcm_\d+$")] = "pcm_24000"
    """Raw PCM format asked of the TTS provider before conversion to OGG/Opus (``pcm_<rate>``)."""
    timeout: Annotated[float, Meta(ge=0.1, le=600)] = 20.0
    """Seconds before a Graph API request is abandoned."""
    max_retries: Annotated[int, Meta(ge=0, le=10)] = 3
    """Retries of a Graph API request on 5xx, 429 and network errors."""
    retry_backoff: Annotated[float, Meta(ge=0, le=60)] = 0.5
    """Seconds before the first retry; doubled at each further one (capped at 8 s)."""
    max_body_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 3 * 1024 * 1024
    """Largest webhook delivery accepted (Meta sends at most 3 MB); larger ones get 413."""
    max_media_bytes: Annotated[int, Meta(ge=1024, le=100 * 1024 * 1024)] = 16 * 1024 * 1024
    """Largest inbound audio downloaded (WhatsApp's own audio limit is 16 MB)."""
    drain_timeout: Annotated[float, Meta(ge=0, le=600)] = 10.0
    """Seconds ``stop`` waits for running turns; unanswered messages are answered after restart."""
    max_text_chars: Annotated[int, Meta(ge=1, le=1_000_000)] = 4096
    """Longest inbound text answered; a longer one is stored cut (``original_chars`` in its
    metadata) and answered with a polite request for shorter messages."""
    group_replies: bool = False
    """Answer messages written in WhatsApp groups (``group_id``), in the group; false: they are
    logged and ignored."""
    max_image_bytes: Annotated[int, Meta(ge=1024, le=100 * 1024 * 1024)] = 5 * 1024 * 1024
    """Largest inbound image downloaded for a vision model (larger: a polite answer)."""

    def __post_init__(self) -> None:
        self.graph_base = self.graph_base.rstrip("/")
        if self.enabled:
            for key in _REQUIRED_WHEN_ENABLED:
                if not getattr(self, key):
                    raise InvalidSetting(key, "must be set when whatsapp.enabled is true")
