"""``[web]`` settings: identity, limits and browser access for the web adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.core.config import Settings

__all__ = ["AUDIO_OUTPUT_FORMATS", "WebSettings", "ws_max_size"]

AUDIO_OUTPUT_FORMATS = ("pcm_16000", "pcm_24000", "mp3_44100_128", "opus_48000_64")
"""Spoken reply formats the WebSocket offers."""


@dataclass(slots=True)
class WebSettings:
    """The web adapter (REST, SSE and the WebSocket), read from the ``[web]`` section."""

    enabled: bool = True
    """Serve the web routes and the WebSocket."""
    auth_secret: str = ""
    """HS256 secret shared with the host site's backend. Set, a signed token (``sub`` and ``exp``)
    identifies the user; empty, callers are identified by device id only and tokens are ignored.
    At least 32 bytes."""
    require_auth: bool = False
    """Refuse anonymous device ids (401); needs ``auth_secret``."""
    cors_origins: list[str] = field(default_factory=list)
    """Origins allowed to call the API from a browser (``["https://example.com"]``, or ``["*"]``).
    Also checked against the ``Origin`` of WebSocket connections. Empty: no CORS headers."""
    max_message_chars: int = 4000
    """Longest user message, in characters (413 over HTTP, an error frame on the socket)."""
    max_body_bytes: int = 1_048_576
    """Largest request body and largest WebSocket frame, in bytes (413 / an error frame)."""
    rate_limit: int = 60
    """Requests per minute per caller (token user, else device id, else address); the socket's
    user messages count against the same budget. 0 turns rate limiting off."""
    audio_output_format: str = "pcm_24000"
    """Format of spoken replies on the WebSocket unless the client asks for another:
    ``pcm_16000``, ``pcm_24000``, ``mp3_44100_128`` or ``opus_48000_64``."""
    audio_url_hosts: list[str] = field(default_factory=list)
    """Hosts ``audio_urls`` may be fetched from (``media.example.com``; ``*.example.com`` for its
    subdomains). Empty: any host with a public address. A listed host may have a private
    address (an internal media server); unlisted private, loopback and link-local addresses
    are always refused."""
    max_audio_bytes: int = 10_485_760
    """Largest audio file fetched from ``audio_urls``, in bytes (413 beyond)."""
    audio_url_timeout: float = 15.0
    """Seconds an ``audio_urls`` download may take, redirects included."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_message_chars <= 1_000_000:
            raise ValueError(
                f"max_message_chars must be between 1 and 1000000, got {self.max_message_chars}"
            )
        if not 1024 <= self.max_body_bytes <= 100_000_000:
            raise ValueError(
                f"max_body_bytes must be between 1024 and 100000000, got {self.max_body_bytes}"
            )
        if not 0 <= self.rate_limit <= 1_000_000:
            raise ValueError(f"rate_limit must be between 0 and 1000000, got {self.rate_limit}")
        if self.audio_output_format not in AUDIO_OUTPUT_FORMATS:
            raise ValueError(
                f"audio_output_format must be one of {', '.join(AUDIO_OUTPUT_FORMATS)}, "
                f"got {self.audio_output_format!r}"
            )
        if not 1024 <= self.max_audio_bytes <= 100_000_000:
            raise ValueError(
                f"max_audio_bytes must be between 1024 and 100000000, got {self.max_audio_bytes}"
            )
        if not 0.1 <= self.audio_url_timeout <= 600:
            raise ValueError(
                f"audio_url_timeout must be between 0.1 and 600, got {self.audio_url_timeout}"
            )
        for host in self.audio_url_hosts:
            if not isinstance(host, str) or not host.strip("*."):
                raise ValueError(f"audio_url_hosts: not a host name: {host!r}")
        if self.auth_secret and len(self.auth_secret.encode()) < 32:
            raise ValueError("auth_secret must be at least 32 bytes long (RFC 7518, HS256)")
        if self.require_auth and not self.auth_secret:
            raise ValueError("require_auth must be false while web.auth_secret is empty")


def ws_max_size(settings: Settings) -> int:
    """uvicorn's ``ws_max_size`` for these settings: twice ``web.max_body_bytes``.

    A frame over ``web.max_body_bytes`` then reaches the app, which answers it with a
    ``frame_too_large`` error frame and keeps the socket open, as HTTP answers 413; only a frame
    over twice the limit is closed by uvicorn (1009) before it is read whole.
    """
    return 2 * settings.section("web", WebSettings).max_body_bytes
