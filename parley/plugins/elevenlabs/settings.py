"""Settings of the ``elevenlabs`` TTS provider: the ``[tts]`` section (no SDK import here)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from parley.core.config import check_range

__all__ = ["OUTPUT_FORMAT", "ElevenLabsSettings"]

OUTPUT_FORMAT = re.compile(
    r"^(mp3_(22050|24000|44100)_\d+|pcm_(8000|16000|22050|24000|32000|44100|48000)"
    r"|ulaw_8000|alaw_8000|opus_48000_(32|64|96|128|192))$"
)
"""The streaming endpoint's ``output_format`` values."""


@dataclass(slots=True)
class ElevenLabsSettings:
    """``[tts]`` with ``provider = "elevenlabs"``."""

    provider: str = "elevenlabs"
    """Registered TTS provider name."""
    api_key: str = ""
    """Empty: the ``ELEVENLABS_API_KEY`` environment variable is used."""
    base_url: str = ""
    """API base; empty: ``https://api.elevenlabs.io``."""
    model: str = "eleven_flash_v2_5"
    """``eleven_flash_v2_5`` (fastest), ``eleven_turbo_v2_5``, ``eleven_multilingual_v2``..."""
    voice: str = "JBFqnCBsd6RMkjVDRZzb"
    """Default voice id; a persona's ``voice`` wins."""
    output_format: str = "mp3_44100_128"
    """Format when an adapter asks for none: ``mp3_44100_128``, ``pcm_16000``, ``opus_48000_64``..."""
    timeout: float = 30.0
    """Seconds before a request is abandoned."""
    max_retries: int = 2
    """Retries on 429, 5xx and connection errors before the first byte."""

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.model:
            raise ValueError("model must not be empty")
        if not self.voice:
            raise ValueError("voice must not be empty")
        if not OUTPUT_FORMAT.match(self.output_format):
            raise ValueError(
                "output_format must be an ElevenLabs format such as mp3_44100_128, pcm_16000 "
                f"or opus_48000_64, got {self.output_format!r}"
            )
        check_range("timeout", self.timeout, 0.1, 3600)
        check_range("max_retries", self.max_retries, 0, 20)

    def resolved_api_key(self) -> str:
        """``api_key``, or the ``ELEVENLABS_API_KEY`` environment variable."""
        return self.api_key or os.environ.get("ELEVENLABS_API_KEY", "")
