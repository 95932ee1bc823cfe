"""Settings of the ``deepgram`` STT provider: the ``[stt]`` section (no SDK import here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

__all__ = ["DeepgramSettings"]


@dataclass(slots=True)
class DeepgramSettings:
    """``[stt]`` with ``provider = "deepgram"``."""

    provider: str = "deepgram"
    """Registered STT provider name."""
    api_key: str = ""
    """Empty: the ``DEEPGRAM_API_KEY`` environment variable is used."""
    base_url: Annotated[str, Meta(pattern=r"^(https?://|$)")] = ""
    """REST base, e.g. ``http://deepgram.internal:8080`` for self-hosted Deepgram; empty:
    ``https://api.deepgram.com``. The live WebSocket base is derived from it (http -> ws,
    https -> wss)."""
    model: Annotated[str, Meta(min_length=1)] = "nova-3"
    """Deepgram model."""
    language: str = ""
    """Empty: the conversation's language. ``detect``: let Deepgram detect it (``multi`` for live
    sessions). A code (``en``, ``de``...): always that language."""
    smart_format: bool = True
    """Punctuation, capitals and formatted numbers, dates, amounts."""
    timeout: Annotated[float, Meta(ge=0.1, le=3600)] = 30.0
    """Seconds before a request (or opening a live session) is abandoned."""
    max_retries: Annotated[int, Meta(ge=0, le=20)] = 2
    """Retries of a pre-recorded request on 429, 5xx and connection errors."""
    endpointing: Annotated[int, Meta(ge=0, le=60_000)] = 300
    """Live: milliseconds of silence after which a result is ``speech_final``; 0 turns it off."""
    utterance_end_ms: Annotated[int, Meta(ge=1000, le=60_000)] = 1000
    """Live: a gap of this many milliseconds after the last word sends ``UtteranceEnd``."""
    keepalive_interval: Annotated[float, Meta(ge=0.01, le=9)] = 4.0
    """Live: seconds without audio after which a KeepAlive is sent (Deepgram closes after 10)."""

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")

    def resolved_api_key(self) -> str:
        """``api_key``, or the ``DEEPGRAM_API_KEY`` environment variable."""
        return self.api_key or os.environ.get("DEEPGRAM_API_KEY", "")

    def websocket_base(self) -> str:
        """The live WebSocket base derived from ``base_url``."""
        if not self.base_url:
            return "wss://api.deepgram.com"
        scheme, _, rest = self.base_url.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
