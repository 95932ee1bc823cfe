"""Settings of the ``elevenlabs`` TTS provider: the ``[tts]`` section (no SDK import here)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

__all__ = ["OUTPUT_FORMAT", "ElevenLabsSettings"]

_OUTPUT_FORMAT = (
    r"^(mp3_(22050|24000|44100)_\d+|pcm_(8000|16000|22050|24000|32000|44100|48000)"
    r"|ulaw_8000|alaw_8000|opus_48000_(32|64|96|128|192))$"
)
OUTPUT_FORMAT = re.compile(_OUTPUT_FORMAT)
"""The streaming endpoint's ``output_format`` values."""


@dataclass(slots=True)
class ElevenLabsSettings:
    """``[tts]`` with ``provider = "elevenlabs"``."""

    provider: str = "elevenlabs"
    """Registered TTS provider name."""
    api_key: str = ""
    """Empty: the ``ELEVENLABS_API_KEY`` environment variable is used."""
    base_url: Annotated[str, Meta(pattern=r"^(https?://|$)")] = ""
    """API base; empty: ``https://api.elevenlabs.io``."""
    model: Annotated[str, Meta(min_length=1)] = "eleven_flash_v2_5"
    """``eleven_flash_v2_5`` (fastest), ``eleven_turbo_v2_5``, ``eleven_multilingual_v2``..."""
    voice: Annotated[str, Meta(min_length=1)] = "JBFqnCBsd6RMkjVDRZzb"
    """Default voice id; a persona's ``voice`` wins."""
    output_format: Annotated[str, Meta(pattern=_OUTPUT_FORMAT)] = "mp3_44100_128"
    """Format when an adapter asks for none: ``mp3_44100_128``, ``pcm_16000``, ``opus_48000_64``..."""
    timeout: Annotated[float, Meta(ge=0.1, le=3600)] = 30.0
    """Seconds before a request is abandoned."""
    max_retries: Annotated[int, Meta(ge=0, le=20)] = 2
    """Retries on 429, 5xx and connection errors before the first byte."""

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")

    def resolved_api_key(self) -> str:
        """``api_key``, or the ``ELEVENLABS_API_KEY`` environment variable."""
        return self.api_key or os.environ.get("ELEVENLABS_API_KEY", "")
