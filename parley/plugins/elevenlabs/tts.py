"""The ``elevenlabs`` TTS provider: ``POST /v1/text-to-speech/{voice}/stream``, bytes as they come.

The key is passed explicitly (the SDK reads ELEVENLABS_API_KEY when it is imported, which is too
early for settings). Requests go through an explicit ``httpx.AsyncClient`` (respx in tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError

from parley.core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from parley.plugins.elevenlabs.settings import OUTPUT_FORMAT, ElevenLabsSettings

__all__ = ["ElevenLabsTTS"]

NAME = "elevenlabs"

KEEPALIVE_SECONDS = 120.0
"""How long an idle connection is kept for the next sentence. httpx's default (5 s) is shorter
than the pause between two spoken turns: each turn's first sentence would open a new TLS
connection (two more round trips before the request leaves). A connection the server closed
meanwhile is noticed and replaced (httpcore checks an idle socket before reusing it)."""


class ElevenLabsTTS:
    """Streams speech from ElevenLabs; ``output_format`` is the default format."""

    name = NAME

    def __init__(
        self, settings: ElevenLabsSettings, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self.output_format = settings.output_format
        self._http = http_client or httpx.AsyncClient(
            timeout=settings.timeout,
            limits=httpx.Limits(
                max_connections=100,
                max_keepalive_connections=20,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
        )
        self.client = AsyncElevenLabs(
            base_url=settings.base_url or None,
            api_key=settings.resolved_api_key(),
            timeout=settings.timeout,
            httpx_client=self._http,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def synthesize(
        self, text: str, *, voice: str | None = None, output_format: str | None = None
    ) -> AsyncIterator[bytes]:
        """Yield audio for ``text`` as it arrives, in ``voice`` (default ``tts.voice``)."""
        voice_id = voice or self.settings.voice
        fmt = output_format or self.output_format
        if not OUTPUT_FORMAT.match(fmt):
            raise ProviderError(f"ElevenLabs cannot stream {fmt!r}", provider=NAME)
        if not text.strip():
            return
        stream = self.client.text_to_speech.stream(
            voice_id,
            text=text,
            model_id=self.settings.model,
            output_format=fmt,  # type: ignore[arg-type]
            request_options={
                "max_retries": self.settings.max_retries,
                "timeout_in_seconds": int(max(1, self.settings.timeout)),
                # None: bytes as they arrive. The SDK's default (1024) holds a first chunk that
                # is smaller back until the next one comes (docs/benchmarks.md).
                "chunk_size": None,  # type: ignore[typeddict-item]
            },
        )
        try:
            async for chunk in stream:
                if chunk:
                    yield chunk
        except Exception as exc:
            raise self._error(exc, voice_id) from exc
        finally:
            await stream.aclose()

    def _error(self, exc: Exception, voice_id: str) -> ProviderError:
        error = _map_error(exc, voice_id)
        key = self.settings.resolved_api_key()
        if key and key in error.message:
            error = type(error)(error.message.replace(key, "***"), provider=NAME)
        return error


def _body_message(body: Any) -> str:
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("status") or detail)[:200]
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return str(detail[0].get("msg") or detail[0])[:200]
    return str(detail)[:200] if detail else ""


def _map_error(exc: Exception, voice_id: str) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ApiError):
        status = exc.status_code
        message = _body_message(exc.body)
        if status in (401, 403):
            return ProviderAuthError(
                f"ElevenLabs authentication failed ({status}): check tts.api_key or "
                f"ELEVENLABS_API_KEY ({message})",
                provider=NAME,
            )
        if status == 404:
            return ProviderError(
                f"ElevenLabs voice {voice_id!r} not found (404): check tts.voice or the "
                "persona's voice",
                provider=NAME,
            )
        if status == 429:
            return ProviderRateLimited(f"ElevenLabs rate limited (429): {message}", provider=NAME)
        if status is not None and status >= 500:
            return ProviderUnavailable(f"ElevenLabs error ({status}): {message}", provider=NAME)
        return ProviderError(f"ElevenLabs request failed ({status}): {message}", provider=NAME)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout("ElevenLabs did not answer in time", provider=NAME)
    if isinstance(exc, httpx.TransportError):
        return ProviderUnavailable(f"ElevenLabs unreachable: {exc}", provider=NAME)
    return ProviderError(f"ElevenLabs error: {type(exc).__name__}: {exc}", provider=NAME)
