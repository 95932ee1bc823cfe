"""Provider protocols (LLM, STT, TTS), their request/response types, errors and the registry.

A provider implements one small protocol. Vendor SDK imports stay inside the vendor's plugin folder.
Plugins contribute providers through the ``register_*_providers`` hooks by registering a *factory*:
a callable that takes the loaded :class:`~parley.core.config.Settings` and returns the provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from parley.core.config import ModelSettings, Settings

__all__ = [
    "LLMChunk",
    "LLMProvider",
    "LLMRequest",
    "LiveResult",
    "LiveSTTProvider",
    "LiveSession",
    "LiveTranscript",
    "MissingDependency",
    "ProviderAuthError",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderRegistry",
    "ProviderStalled",
    "ProviderTimeout",
    "ProviderUnavailable",
    "STTProvider",
    "SpeechStarted",
    "TTSProvider",
    "ToolCallDelta",
    "Transcription",
    "Usage",
    "UtteranceEnd",
]


class ProviderError(Exception):
    """A provider failed. ``code`` is stable and ends up in the ErrorEvent."""

    code = "provider_error"
    retryable = False

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (HTTP 401/403)."""

    code = "provider_auth"


class ProviderRateLimited(ProviderError):
    """The provider answered 429 after our retries."""

    code = "provider_rate_limited"
    retryable = True


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""

    code = "provider_timeout"
    retryable = True


class ProviderStalled(ProviderTimeout):
    """The provider stopped sending in the middle of its answer (``llm.stall_timeout``)."""

    code = "provider_stalled"


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or answered 5xx after our retries."""

    code = "provider_unavailable"
    retryable = True


class MissingDependency(ImportError):
    """A provider's optional SDK is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, *, provider: str = "") -> None:
        what = f"the {provider} provider" if provider else "this feature"
        super().__init__(f"{what} needs {package}: pip install 'parley[{extra}]'")
        self.package = package
        self.extra = extra


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one LLM call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a streamed tool call (OpenAI ``delta.tool_calls[i]``)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class LLMChunk:
    """One streamed piece: text, tool-call fragments, a finish reason, and/or usage (last chunk)."""

    text: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    provider: str | None = None
    """Which provider of a failover chain produced this chunk (set on the first chunk with
    content by :class:`~parley.core.failover.FailoverLLM`)."""


@dataclass(slots=True)
class LLMRequest:
    """What the engine asks of an LLM: OpenAI-style messages plus the resolved model settings."""

    messages: list[dict[str, Any]]
    model: ModelSettings
    tools: list[dict[str, Any]] = field(default_factory=list)
    """OpenAI-style tool specs the model may call (``{"type": "function", "function": {...}}``)."""
    tool_choice: str | None = None
    """``"none"`` forbids tool calls while still showing the tools (the last round of a reply)."""


@dataclass(frozen=True, slots=True)
class Transcription:
    """The result of speech-to-text."""

    text: str
    language: str | None = None
    confidence: float | None = None
    duration: float | None = None
    provider: str | None = None
    """Which provider of a failover chain transcribed it."""


# -- live (streaming) speech-to-text -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveResult:
    """Base class of what a live STT session yields."""


@dataclass(frozen=True, slots=True)
class SpeechStarted(LiveResult):
    """Voice activity began (the user started talking); ``at`` is seconds into the stream."""

    at: float | None = None


@dataclass(frozen=True, slots=True)
class LiveTranscript(LiveResult):
    """A piece of recognised speech.

    ``is_final`` False: an interim guess that later results replace. ``is_final`` True: this stretch
    of audio will not be revised; an utterance may span several final results. ``speech_final``:
    the speaker paused (endpointing), so the utterance made of the finals so far is complete.
    """

    text: str
    is_final: bool
    speech_final: bool = False
    confidence: float | None = None
    start: float | None = None
    """Seconds into the stream."""
    duration: float | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class UtteranceEnd(LiveResult):
    """A gap in speech after the last final result: the utterance is over even if no
    ``speech_final`` came (noisy audio). ``last_word_end`` is seconds into the stream."""

    last_word_end: float | None = None


@runtime_checkable
class LiveSession(Protocol):
    """One open live transcription stream. Iterate it for results; close it when done.

    Iteration ends after :meth:`close` once the provider has sent its last results; a failure of
    the connection raises :class:`ProviderError` from the iterator. Usable as ``async with``.
    """

    async def send(self, audio: bytes) -> None:
        """Send a piece of audio in the encoding the session was opened with."""
        ...

    async def finalize(self) -> None:
        """Ask for final results of the audio sent so far (the session stays open)."""
        ...

    async def close(self) -> None:
        """Flush, wait briefly for the last results, then close. Safe to call twice."""
        ...

    def __aiter__(self) -> AsyncIterator[LiveResult]:
        """Results as they arrive: SpeechStarted, LiveTranscript, UtteranceEnd."""
        ...

    async def __aenter__(self) -> LiveSession: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class LLMProvider(Protocol):
    """Streams a chat completion."""

    name: str

    def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Yield chunks as the model produces them; raise :class:`ProviderError` on failure."""
        ...


@runtime_checkable
class STTProvider(Protocol):
    """Turns speech into text."""

    name: str

    async def transcribe(
        self, audio: bytes, *, mime_type: str | None = None, language: str | None = None
    ) -> Transcription:
        """Transcribe a whole recording (any container the provider accepts)."""
        ...


@runtime_checkable
class LiveSTTProvider(Protocol):
    """A speech-to-text provider that can also transcribe a live audio stream."""

    name: str

    async def live(
        self,
        *,
        encoding: str | None = "pcm16",
        sample_rate: int | None = 16000,
        language: str | None = None,
    ) -> LiveSession:
        """Open a live session. ``encoding`` ``pcm16`` is mono signed 16-bit little-endian at
        ``sample_rate``; None (or ``webm``, ``ogg``) means a container the provider detects.
        Raise :class:`ProviderError` when the session cannot be opened."""
        ...


@runtime_checkable
class TTSProvider(Protocol):
    """Turns text into speech, streaming bytes as they arrive.

    A provider may also have an ``output_format`` attribute: the format it uses when asked for
    none (the speech pipeline labels audio with it).
    """

    name: str

    def synthesize(
        self, text: str, *, voice: str | None = None, output_format: str | None = None
    ) -> AsyncIterator[bytes]:
        """Yield audio bytes for ``text`` in ``output_format``."""
        ...


LLMFactory = Callable[["Settings"], LLMProvider]
STTFactory = Callable[["Settings"], STTProvider]
TTSFactory = Callable[["Settings"], TTSProvider]


@dataclass
class ProviderRegistry:
    """Provider factories by kind and name, filled by the ``register_*_providers`` hooks."""

    llm: dict[str, LLMFactory] = field(default_factory=dict)
    stt: dict[str, STTFactory] = field(default_factory=dict)
    tts: dict[str, TTSFactory] = field(default_factory=dict)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)

    def make(self, kind: str, name: str, settings: Settings) -> Any:
        """Build the provider ``name`` of ``kind`` (``llm``, ``stt``, ``tts``) from settings."""
        factories: dict[str, Callable[[Settings], Any]] = getattr(self, kind)
        if name not in factories:
            known = ", ".join(sorted(factories)) or "none"
            raise KeyError(f"no {kind} provider named {name!r} (registered: {known})")
        return factories[name](settings)
