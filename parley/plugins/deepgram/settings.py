"""Settings of the ``deepgram`` STT provider: the ``[stt]`` section (no SDK import here)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from parley.core.config import check_range

__all__ = ["DeepgramSettings"]


@dataclass(slots=True)
class DeepgramSettings:
    """``[stt]`` with ``provider = "deepgram"``."""

    provider: str = "deepgram"
    """Registered STT provider name."""
    api_key: str = ""
    """Empty: the ``DEEPGRAM_API_KEY`` environment variable is used."""
    base_url: str = ""
    """REST base, e.g. ``http://deepgram.internal:8080`` for self-hosted Deepgram; empty:
    ``https://api.deepgram.com``. The live WebSocket base is derived from it (http -> ws,
    https -> wss)."""
    model: str = "nova-3"
    """Deepgram model."""
    language: str = ""
    """Empty: the conversation's language. ``detect``: let Deepgram detect it (``multi`` for live
    sessions). A code (``en``, ``de``...): always that language."""
    smart_format: bool = True
    """Punctuation, capitals and formatted numbers, dates, amounts."""
    timeout: float = 30.0
    """Seconds before a request (or opening a live session) is abandoned."""
    max_retries: int = 2
    """Retries of a pre-recorded request on 429, 5xx and connection errors."""
    endpointing: int = 300
    """Live: milliseconds of silence after which a result is ``speech_final``; 0 turns it off."""
    utterance_end_ms: int = 1000
    """Live: a gap of this many milliseconds after the last word sends ``UtteranceEnd``."""
    keepalive_interval: float = 4.0
    """Live: seconds without audio after which a KeepAlive is sent (Deepgram closes after 10)."""

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.model:
            raise ValueError("model must not be empty")
        check_range("timeout", self.timeout, 0.1, 3600)
        check_range("max_retries", self.max_retries, 0, 20)
        check_range("endpointing", self.endpointing, 0, 60_000)
        check_range("utterance_end_ms", self.utterance_end_ms, 1000, 60_000)
        check_range("keepalive_interval", self.keepalive_interval, 0.01, 9)

    def resolved_api_key(self) -> str:
        """``api_key``, or the ``DEEPGRAM_API_KEY`` environment variable."""
        return self.api_key or os.environ.get("DEEPGRAM_API_KEY", "")

    def websocket_base(self) -> str:
        """The live WebSocket base derived from ``base_url``."""
        if not self.base_url:
            return "wss://api.deepgram.com"
        scheme, _, rest = self.base_url.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
