"""A complete TTS provider plugin: it "speaks" silence, 60 ms of PCM per word.

Install it with an entry point in your package's pyproject.toml::

    [project.entry-points.parley]
    silence = "my_package.silence_tts"

and select it with ``tts.provider = "silence"``. tests/examples/test_silence_tts.py runs this file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

from parley import ProviderError, Settings, hookimpl
from parley.audio import pcm_rate


@dataclass(slots=True)
class SilenceSettings:
    """``[tts]`` with ``provider = "silence"``."""

    provider: str = "silence"
    ms_per_word: Annotated[int, Meta(ge=1, le=1000)] = 60
    """Milliseconds of silence per word (msgspec checks the range when the settings load)."""


class SilenceTTS:
    """Implements parley.core.providers.TTSProvider."""

    name = "silence"
    output_format = "pcm_16000"  # used when the adapter asks for no format

    def __init__(self, settings: SilenceSettings) -> None:
        self.settings = settings

    async def synthesize(
        self, text: str, *, voice: str | None = None, output_format: str | None = None
    ) -> AsyncIterator[bytes]:
        """One chunk per word, as a real provider streams bytes as they arrive."""
        fmt = output_format or self.output_format
        rate = pcm_rate(fmt)
        if rate is None:
            # A ProviderError becomes ErrorEvent("tts_failed"); the text reply goes on.
            raise ProviderError(f"silence speaks pcm_<rate> only, not {fmt}", provider=self.name)
        samples = rate * self.settings.ms_per_word // 1000
        for _word in text.split():
            yield b"\0\0" * samples


def make_silence_tts(settings: Settings) -> SilenceTTS:
    """The factory: validate the section (a bad value names its key), build the provider."""
    return SilenceTTS(settings.section("tts", SilenceSettings))


@hookimpl
def register_tts_providers(register: Callable[..., None]) -> None:
    register("silence", make_silence_tts)
