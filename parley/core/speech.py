"""Speech for a streaming reply: sentences are cut as text arrives and spoken while the LLM writes.

The voice issue fills in the splitter and the ordered, concurrent TTS; the contract is
:func:`speak`, which the engine wraps around each responder's event stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from parley.core.events import Event
from parley.core.providers import TTSProvider

__all__ = ["SpeechOptions", "speak"]


@dataclass(frozen=True, slots=True)
class SpeechOptions:
    """Asked for by an adapter: speak replies in ``output_format`` (ElevenLabs format names)."""

    output_format: str = "mp3_44100_128"
    voice: str | None = None
    """Voice id overriding the persona's and ``tts.voice``."""


async def speak(
    events: AsyncIterator[Event],
    *,
    tts: TTSProvider,
    voice: str | None,
    options: SpeechOptions,
) -> AsyncIterator[Event]:
    """Pass ``events`` through, adding Sentence, AudioChunk and AudioCompleted events."""
    async for event in events:
        yield event
