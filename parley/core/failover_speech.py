"""Failover chains for speech: a recording the STT failed on goes to the next STT; a sentence the
TTS failed on goes to the next TTS (see :mod:`parley.core.failover` for the rules they share).

TTS voices belong to a vendor: a fallback of another provider speaks in its own ``voice`` (from
its table), not in the persona's; one of the same provider (a second key) keeps the persona's.
Once a sentence's first byte arrived it is not restarted elsewhere (the listener would hear its
beginning twice): a failure after that stops the message's audio as before (``tts_failed``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from parley.core.failover import Chain, FailoverLLM, classify, warm
from parley.core.failover_settings import Member, build_members, failover_settings
from parley.core.providers import (
    LiveSession,
    ProviderError,
    ProviderTimeout,
    Transcription,
)
from parley.core.telemetry import provider_sink

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.core.providers import ProviderRegistry
    from parley.core.telemetry import Telemetry

__all__ = ["FailoverLiveSTT", "FailoverSTT", "FailoverTTS", "build_chain"]


def build_chain(
    kind: str, primary: Any, registry: ProviderRegistry, settings: Settings, telemetry: Telemetry
) -> Any:
    """``primary`` and the fallbacks of section ``kind`` as one provider of that kind."""
    members = build_members(kind, primary, registry, settings, telemetry)
    config = failover_settings(settings, kind)
    if kind == "llm":
        return FailoverLLM(members, telemetry, config)
    if kind == "tts":
        return FailoverTTS(members, telemetry, config)
    if any(hasattr(member.provider, "live") for member in members):
        return FailoverLiveSTT(members, telemetry, config)
    return FailoverSTT(members, telemetry, config)


class FailoverSTT(Chain):
    """A speech-to-text provider made of a chain of them."""

    kind = "stt"

    async def transcribe(
        self, audio: bytes, *, mime_type: str | None = None, language: str | None = None
    ) -> Transcription:
        """Transcribe with the first provider that succeeds."""
        last: ProviderError | None = None
        previous: tuple[Member, ProviderError] | None = None
        for member in self.candidates():
            self.moved_on(previous, member)
            started = time.perf_counter()
            with self.telemetry.span("stt.transcribe", **{"parley.provider": member.label}) as span:
                try:
                    await warm(member)
                    call = member.provider.transcribe(audio, mime_type=mime_type, language=language)
                    wait = self.wait(member, False)
                    if wait > 0:
                        try:
                            async with asyncio.timeout(wait):
                                result = await call
                        except TimeoutError:
                            raise ProviderTimeout(
                                f"{member.label} did not transcribe within {wait:g} s",
                                provider=member.label,
                            ) from None
                    else:
                        result = await call
                except Exception as exc:
                    error = classify(exc, member.label)
                    span.set_attribute("parley.error", getattr(error or exc, "code", "error"))
                    if error is None:
                        raise
                    self.failed(member, error, started, "transcribe")
                    last, previous = error, (member, error)
                    continue
                except BaseException:
                    member.breaker.release()
                    raise
            self.called(member, "transcribe", started, None)
            self.used(member)
            return dataclasses.replace(result, provider=member.label)
        raise self.exhausted(last)


class FailoverLiveSTT(FailoverSTT):
    """A chain whose members can also transcribe live: a session opens on the first that can."""

    async def live(
        self,
        *,
        encoding: str | None = "pcm16",
        sample_rate: int | None = 16000,
        language: str | None = None,
    ) -> LiveSession:
        """Open a live session on the first provider that opens one (failover on opening only)."""
        last: ProviderError | None = None
        previous: tuple[Member, ProviderError] | None = None
        for member in self.candidates():
            if not hasattr(member.provider, "live"):
                member.breaker.release()
                continue
            self.moved_on(previous, member)
            started = time.perf_counter()
            try:
                session = await member.provider.live(
                    encoding=encoding, sample_rate=sample_rate, language=language
                )
            except Exception as exc:
                error = classify(exc, member.label)
                if error is None:
                    raise
                self.failed(member, error, started, "live")
                last, previous = error, (member, error)
                continue
            except BaseException:
                member.breaker.release()
                raise
            self.called(member, "live", started, None)
            self.used(member)
            return session  # type: ignore[no-any-return]
        raise self.exhausted(last)


class FailoverTTS(Chain):
    """A text-to-speech provider made of a chain of them, falling back sentence by sentence."""

    kind = "tts"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        primary = self.members[0].provider
        self.output_format = getattr(primary, "output_format", None)
        self._vendor = getattr(primary, "name", None)

    def synthesize(
        self, text: str, *, voice: str | None = None, output_format: str | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the audio of the first provider that sends a first byte in time."""
        fmt = output_format or self.output_format

        def start(member: Member) -> AsyncIterator[bytes]:
            same_vendor = getattr(member.provider, "name", None) == self._vendor
            return member.provider.synthesize(  # type: ignore[no-any-return]
                text, voice=voice if same_vendor else None, output_format=fmt
            )

        return self.streamed("synthesize", start, bool, self._spoke, **{"parley.chars": len(text)})

    def _spoke(self, member: Member, data: bytes) -> bytes:
        sink = provider_sink.get()
        if sink is not None:
            sink(member.label)
        return data
