"""``[web]`` settings: identity, limits and browser access for the web adapter."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["WebSettings"]


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
        if self.auth_secret and len(self.auth_secret.encode()) < 32:
            raise ValueError("auth_secret must be at least 32 bytes long (RFC 7518, HS256)")
        if self.require_auth and not self.auth_secret:
            raise ValueError("require_auth must be false while web.auth_secret is empty")
