"""The ``deepgram`` STT provider: pre-recorded audio (bytes or a URL) and live sessions.

REST calls go through an explicit ``httpx.AsyncClient`` (tests intercept it with respx); the live
session is the SDK's WebSocket client, opened against ``stt.base_url`` turned into ws(s)://.
The SDK retries 429 and 5xx ``stt.max_retries`` times; what still fails becomes a
:class:`~parley.core.providers.ProviderError` whose message never holds the key.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import httpx
import websockets.exceptions
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from deepgram.core.api_error import ApiError

from parley.core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    Transcription,
)
from parley.plugins.deepgram.live import DeepgramLiveSession
from parley.plugins.deepgram.settings import DeepgramSettings

__all__ = ["DeepgramSTT"]

NAME = "deepgram"
NO_KEY_PLACEHOLDER = "not-needed"
"""Sent to a self-hosted server when no key is set: the SDK wants one."""
_CONTAINERS = frozenset({"", "webm", "ogg", "container", "mp3", "wav", "mp4", "m4a"})
_RAW_PCM = ("audio/l16", "audio/pcm", "audio/x-raw", "audio/raw")


class DeepgramSTT:
    """Speech-to-text with Deepgram: ``transcribe``, ``transcribe_url`` and ``live``."""

    name = NAME

    def __init__(
        self, settings: DeepgramSettings, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self._http = http_client or httpx.AsyncClient(timeout=settings.timeout)
        rest = settings.base_url or "https://api.deepgram.com"
        live = settings.websocket_base()
        environment = DeepgramClientEnvironment(
            base=rest, production=live, agent=live, agent_rest=rest
        )
        self.client = AsyncDeepgramClient(
            api_key=settings.resolved_api_key() or NO_KEY_PLACEHOLDER,
            environment=environment,
            timeout=settings.timeout,
            httpx_client=self._http,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    # -- pre-recorded ----------------------------------------------------------------------

    def _language(self, language: str | None, *, live: bool = False) -> dict[str, Any]:
        chosen = self.settings.language or language or ""
        if chosen == "detect" or not chosen:
            if live:
                return {"language": "multi"} if chosen == "detect" else {}
            return {"detect_language": True}
        return {"language": chosen}

    def _request_options(self, query: dict[str, Any] | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_retries": self.settings.max_retries,
            "timeout_in_seconds": int(max(1, self.settings.timeout)),
        }
        if query:
            options["additional_query_parameters"] = query
        return options

    async def transcribe(
        self, audio: bytes, *, mime_type: str | None = None, language: str | None = None
    ) -> Transcription:
        """Transcribe a recording in any container Deepgram reads (OGG/Opus, WebM, MP3, WAV...);
        raw PCM when ``mime_type`` is ``audio/l16;rate=16000`` (or ``audio/pcm;rate=...``)."""
        if not audio:
            raise ProviderError("no audio to transcribe", provider=NAME)
        options: dict[str, Any] = {}
        query: dict[str, Any] = {}
        rate = _raw_pcm_rate(mime_type)
        if rate is not None:
            options["encoding"] = "linear16"
            query["sample_rate"] = rate
        try:
            response = await self.client.listen.v1.media.transcribe_file(
                request=audio,
                model=self.settings.model,
                smart_format=self.settings.smart_format,
                **self._language(language),
                **options,
                request_options=self._request_options(query),
            )
        except Exception as exc:
            raise self._error(exc) from exc
        return _transcription(response, language)

    async def transcribe_url(self, url: str, *, language: str | None = None) -> Transcription:
        """Let Deepgram fetch and transcribe the audio at ``url``."""
        try:
            response = await self.client.listen.v1.media.transcribe_url(
                url=url,
                model=self.settings.model,
                smart_format=self.settings.smart_format,
                **self._language(language),
                request_options=self._request_options(),
            )
        except Exception as exc:
            raise self._error(exc) from exc
        return _transcription(response, language)

    # -- live ------------------------------------------------------------------------------

    async def live(
        self,
        *,
        encoding: str | None = "pcm16",
        sample_rate: int | None = 16000,
        language: str | None = None,
    ) -> DeepgramLiveSession:
        """Open a live session (interim results, speech started and utterance end events on)."""
        settings = self.settings
        params: dict[str, Any] = {
            "model": settings.model,
            "interim_results": "true",
            "vad_events": "true",
            "utterance_end_ms": str(settings.utterance_end_ms),
            "endpointing": str(settings.endpointing) if settings.endpointing else "false",
            "smart_format": "true" if settings.smart_format else "false",
            **self._language(language, live=True),
        }
        kind = (encoding or "").lower()
        if kind not in _CONTAINERS:
            params["encoding"] = "linear16" if kind in ("pcm16", "pcm", "linear16") else kind
            params["channels"] = "1"
            if sample_rate:
                params["sample_rate"] = str(sample_rate)
        stack = AsyncExitStack()
        try:
            socket = await asyncio.wait_for(
                stack.enter_async_context(self.client.listen.v1.connect(**params)),
                timeout=settings.timeout,
            )
        except BaseException as exc:
            await stack.aclose()
            if isinstance(exc, Exception):
                raise self._error(exc) from exc
            raise
        session = DeepgramLiveSession(
            socket, stack, keepalive_interval=settings.keepalive_interval, errors=self._error
        )
        session.start()
        return session

    # -- errors ----------------------------------------------------------------------------

    def _error(self, exc: BaseException) -> ProviderError:
        """Map an SDK, HTTP or WebSocket error to a provider error without the key in it."""
        error = _map_error(exc)
        key = self.settings.resolved_api_key()
        if key and key in error.message:
            error = type(error)(error.message.replace(key, "***"), provider=NAME)
        return error


def _raw_pcm_rate(mime_type: str | None) -> int | None:
    """16000 for ``audio/l16;rate=16000``; None for containers."""
    if not mime_type:
        return None
    kind, *params = (part.strip() for part in mime_type.lower().split(";"))
    if kind not in _RAW_PCM:
        return None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "rate" and value.strip().isdigit():
            return int(value)
    return 16000


def _transcription(response: Any, language: str | None) -> Transcription:
    results = getattr(response, "results", None)
    channels = getattr(results, "channels", None) or []
    if not channels:
        raise ProviderError("Deepgram answered without a transcript", provider=NAME)
    channel = channels[0]
    alternatives = channel.alternatives or []
    best = alternatives[0] if alternatives else None
    metadata = getattr(response, "metadata", None)
    return Transcription(
        text=(best.transcript or "") if best else "",
        language=getattr(channel, "detected_language", None) or language or None,
        confidence=getattr(best, "confidence", None),
        duration=getattr(metadata, "duration", None),
    )


def _body_message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("err_msg", "message", "detail", "description"):
            if isinstance(body.get(key), str):
                return body[key]
    return str(body)[:200] if body else ""


def _map_error(exc: BaseException) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ApiError):
        status = exc.status_code
        message = _body_message(exc.body)
        if status in (401, 403):
            return ProviderAuthError(
                f"Deepgram authentication failed ({status}): check stt.api_key or DEEPGRAM_API_KEY",
                provider=NAME,
            )
        if status == 429:
            return ProviderRateLimited(f"Deepgram rate limited (429): {message}", provider=NAME)
        if status is not None and status >= 500:
            return ProviderUnavailable(f"Deepgram error ({status}): {message}", provider=NAME)
        return ProviderError(f"Deepgram request failed ({status}): {message}", provider=NAME)
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
        return ProviderTimeout("Deepgram did not answer in time", provider=NAME)
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        frame = exc.rcvd
        code, reason = (frame.code, frame.reason) if frame is not None else (1006, "")
        return ProviderUnavailable(
            f"Deepgram closed the live session ({code}): {reason or 'no reason given'}",
            provider=NAME,
        )
    if isinstance(exc, httpx.TransportError | OSError | websockets.exceptions.WebSocketException):
        return ProviderUnavailable(f"Deepgram unreachable: {exc}", provider=NAME)
    return ProviderError(f"Deepgram error: {type(exc).__name__}: {exc}", provider=NAME)
