"""``[web]`` settings: identity, limits and browser access for the web adapter."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from msgspec import Meta

from parley.core.config import InvalidSetting

if TYPE_CHECKING:
    from parley.core.config import Settings

__all__ = ["AUDIO_OUTPUT_FORMATS", "WebSettings", "uvicorn_options"]

AudioOutputFormat = Literal["pcm_16000", "pcm_24000", "mp3_44100_128", "opus_48000_64"]
AUDIO_OUTPUT_FORMATS: tuple[str, ...] = get_args(AudioOutputFormat)
"""Spoken reply formats the WebSocket offers."""


@dataclass(slots=True)
class WebSettings:
    """The web adapter (REST, SSE and the WebSocket), read from the ``[web]`` section."""

    enabled: bool = True
    """Serve the web routes and the WebSocket."""
    greeting: bool = True
    """Open new conversations with the template's greeting (false: no greeting here)."""
    auth_secret: str = ""
    """HS256 secret shared with the host site's backend. Set, a signed token (``sub`` and ``exp``)
    identifies the user; empty, callers are identified by device id only and tokens are ignored.
    At least 32 bytes."""
    require_auth: bool = False
    """Refuse anonymous device ids (401); needs ``auth_secret``."""
    cors_origins: list[str] = field(default_factory=list)
    """Origins allowed to call the API from a browser (``["https://example.com"]``, or ``["*"]``).
    Also checked against the ``Origin`` of WebSocket connections. Empty: no CORS headers."""
    max_message_chars: Annotated[int, Meta(ge=1, le=1_000_000)] = 4000
    """Longest user message, in characters (413 over HTTP, an error frame on the socket)."""
    max_body_bytes: Annotated[int, Meta(ge=1024, le=100_000_000)] = 1_048_576
    """Largest request body and largest WebSocket frame, in bytes (413 / an error frame)."""
    rate_limit: Annotated[int, Meta(ge=0, le=1_000_000)] = 60
    """Requests per minute per caller (token user, else device id, else address); the socket's
    user messages count against the same budget. 0 turns rate limiting off."""
    rate_limit_per_address: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
    """Requests per minute per client address, whatever device ids it sends (None: twice
    ``rate_limit``; 0: no limit by address). Shared across processes when ``redis.url`` is set."""
    trusted_proxies: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    """Addresses (or CIDR networks) of reverse proxies whose ``X-Forwarded-For`` names the client;
    ``["*"]`` trusts any peer. Empty: the peer's own address is the client's."""
    rate_limit_namespace: Annotated[str, Meta(min_length=1)] = "parley:rate_limit"
    """Prefix of the rate-limit keys in Redis (when ``redis.url`` is set)."""
    admin_token: str = ""
    """Operator token: ``POST /api/v1/admin/reload-settings`` with ``Authorization: Bearer
    <token>``, or ``{"type": "refresh_characters", "data": {"admin_token": ...}}`` on the socket,
    reloads the settings folder. Empty: reloading over the web is off. At least 16 characters."""
    audio_output_format: AudioOutputFormat = "pcm_24000"
    """Format of spoken replies on the WebSocket unless the client asks for another:
    ``pcm_16000``, ``pcm_24000``, ``mp3_44100_128`` or ``opus_48000_64``."""
    audio_url_hosts: list[str] = field(default_factory=list)
    """Hosts ``audio_urls`` may be fetched from (``media.example.com``; ``*.example.com`` for its
    subdomains). Empty: any host with a public address. A listed host may have a private
    address (an internal media server); unlisted private, loopback and link-local addresses
    are always refused."""
    max_audio_bytes: Annotated[int, Meta(ge=1024, le=100_000_000)] = 10_485_760
    """Largest audio file fetched from ``audio_urls``, in bytes (413 beyond)."""
    audio_url_timeout: Annotated[float, Meta(ge=0.1, le=600)] = 15.0
    """Seconds an ``audio_urls`` download may take, redirects included."""

    def __post_init__(self) -> None:
        if self.rate_limit_per_address is None:
            self.rate_limit_per_address = min(2 * self.rate_limit, 1_000_000)
        for proxy in self.trusted_proxies:
            if proxy != "*":
                try:
                    ipaddress.ip_network(proxy, strict=False)
                except ValueError:
                    message = f"not an address or network: {proxy!r}"
                    raise InvalidSetting("trusted_proxies", message) from None
        if self.admin_token and len(self.admin_token) < 16:
            raise InvalidSetting("admin_token", "must be at least 16 characters long")
        for host in self.audio_url_hosts:
            if not host.strip("*."):
                raise InvalidSetting("audio_url_hosts", f"not a host name: {host!r}")
        if self.auth_secret and len(self.auth_secret.encode()) < 32:
            raise InvalidSetting("auth_secret", "must be at least 32 bytes long (RFC 7518, HS256)")
        if self.require_auth and not self.auth_secret:
            raise InvalidSetting("require_auth", "must be false while web.auth_secret is empty")


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What uvicorn must know of the ``[web]`` settings (``uvicorn.Config(**options)``).

    ``ws_max_size`` is twice ``web.max_body_bytes``: a frame over the limit reaches the app, which
    answers it with a ``frame_too_large`` error frame and keeps the socket open, as HTTP answers
    413; only a frame over twice the limit is closed by uvicorn (1009) before it is read whole.
    ``X-Forwarded-For`` is believed from ``web.trusted_proxies`` only (uvicorn's proxy headers).
    """
    web = settings.section("web", WebSettings)
    return {
        "ws_max_size": 2 * web.max_body_bytes,
        "proxy_headers": bool(web.trusted_proxies),
        "forwarded_allow_ips": list(web.trusted_proxies) or None,
    }
