"""Settings of the WhatsApp adapter: the ``[whatsapp]`` section."""

from __future__ import annotations

from dataclasses import dataclass

from parley.core.config import check_range

__all__ = ["REPLY_VOICE_MODES", "WhatsAppSettings"]

REPLY_VOICE_MODES = ("auto", "always", "never")

_REQUIRED_WHEN_ENABLED = ("verify_token", "app_secret", "access_token", "phone_number_id")


@dataclass(slots=True)
class WhatsAppSettings:
    """Meta's WhatsApp Cloud API: a webhook at ``/webhooks/whatsapp`` and the Graph API for replies."""

    enabled: bool = False
    """Mount the webhook and answer WhatsApp messages."""
    verify_token: str = ""
    """The token typed into Meta's webhook set-up; ``GET /webhooks/whatsapp`` checks it."""
    app_secret: str = ""
    """The Meta app's secret: every delivery's ``X-Hub-Signature-256`` is checked with it."""
    access_token: str = ""
    """Graph API bearer token (a system user's permanent token). Keep it in .secrets.toml."""
    phone_number_id: str = ""
    """The business phone number id replies are sent from; other numbers' messages are ignored."""
    graph_base: str = "https://graph.facebook.com/v21.0"
    """Graph API base with its version; requests go to ``{graph_base}/{phone_number_id}/messages``."""
    template: str = ""
    """Template of WhatsApp conversations; empty: ``conversation.default_template``."""
    reply_voice: str = "auto"
    """``auto``: a voice note answers a voice note; ``always``: every reply; ``never``: text only."""
    voice_format: str = "pcm_24000"
    """Raw PCM format asked of the TTS provider before conversion to OGG/Opus (``pcm_<rate>``)."""
    timeout: float = 20.0
    """Seconds before a Graph API request is abandoned."""
    max_retries: int = 3
    """Retries of a Graph API request on 5xx, 429 and network errors."""
    retry_backoff: float = 0.5
    """Seconds before the first retry; doubled at each further one (capped at 8 s)."""
    max_body_bytes: int = 3 * 1024 * 1024
    """Largest webhook delivery accepted (Meta sends at most 3 MB); larger ones get 413."""
    max_media_bytes: int = 16 * 1024 * 1024
    """Largest inbound audio downloaded (WhatsApp's own audio limit is 16 MB)."""
    drain_timeout: float = 10.0
    """Seconds ``stop`` waits for running turns; unanswered messages are answered after restart."""

    def __post_init__(self) -> None:
        if self.reply_voice not in REPLY_VOICE_MODES:
            raise ValueError(
                f"reply_voice must be one of {', '.join(REPLY_VOICE_MODES)}, "
                f"got {self.reply_voice!r}"
            )
        if not self.graph_base.startswith(("http://", "https://")):
            raise ValueError(f"graph_base must be an http(s) URL, got {self.graph_base!r}")
        self.graph_base = self.graph_base.rstrip("/")
        if not self.voice_format.startswith("pcm_"):
            raise ValueError(f"voice_format must be a pcm_<rate> format, got {self.voice_format!r}")
        check_range("timeout", self.timeout, 0.1, 600)
        check_range("max_retries", self.max_retries, 0, 10)
        check_range("retry_backoff", self.retry_backoff, 0, 60)
        check_range("max_body_bytes", self.max_body_bytes, 1024, 64 * 1024 * 1024)
        check_range("max_media_bytes", self.max_media_bytes, 1024, 100 * 1024 * 1024)
        check_range("drain_timeout", self.drain_timeout, 0, 600)
        if self.enabled:
            for key in _REQUIRED_WHEN_ENABLED:
                if not getattr(self, key):
                    raise ValueError(f"{key} must be set when whatsapp.enabled is true")
