"""Provider failover chains with watchdogs and circuit breakers, behind the usual protocols.

``llm.fallbacks``, ``stt.fallbacks`` and ``tts.fallbacks`` list further providers, each a table
like the section itself (``provider``, ``base_url``, ``model``, ``api_key``, ``voice``...; nothing
is inherited from the primary, so a key never goes to another server). The runtime wraps the
primary and its fallbacks in :class:`FailoverLLM` (here) or
:class:`~parley.core.failover_speech.FailoverSTT` / ``FailoverTTS``; the engine sees one provider.

A request that fails before it produced anything (connection error, 5xx, 429, auth, timeout, or
no first token within ``first_token_timeout``) goes to the next provider at once. A provider whose
breaker is open (``breaker_threshold`` failures in a row) is skipped for ``breaker_cooldown``
seconds, then tried again by one probe. A reply that stops for ``stall_timeout`` seconds after its
first token is *not* continued elsewhere: the user already saw (or heard) its beginning, and
another model would start over. It ends as ``failed`` with its partial text and an
``ErrorEvent("provider_stalled")`` at once; the stalled provider counts one failure.

A fallback LLM answers with its own ``model`` (the persona's or template's model names the
primary's); the other model settings (temperature...) carry over.

With fallbacks, every provider but the last gets ``max_retries = 0`` unless its table sets it:
the next provider is a better retry than the same one after a back-off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from parley.core.breaker import CircuitBreaker
from parley.core.config import InvalidSetting, LLMSettings, SettingsError, parse_section
from parley.core.providers import (
    LLMChunk,
    LLMRequest,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderStalled,
    ProviderTimeout,
    ProviderUnavailable,
)
from parley.core.telemetry import BreakerChanged, FallbackTaken, ProviderCall, current_turn

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.core.providers import ProviderRegistry
    from parley.core.telemetry import Telemetry

__all__ = [
    "FailoverLLM",
    "FailoverSettings",
    "Member",
    "build_members",
    "classify",
    "failover_settings",
    "primary_settings",
    "providers_of",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUTS = {"llm": (5.0, 5.0), "tts": (5.0, 5.0), "stt": (0.0, 0.0)}
"""(first_token_timeout, stall_timeout) by kind when not set; 0 turns a watchdog off."""

_CHAIN_KEYS = ("label", "first_token_timeout", "stall_timeout")
"""Keys of a fallback table that belong to the chain, not to the provider's own settings."""

_FAILOVER_ERRORS = (ProviderAuthError, ProviderRateLimited, ProviderTimeout, ProviderUnavailable)


@dataclass(slots=True)
class FailoverSettings:
    """The failover keys of ``[llm]``, ``[stt]`` and ``[tts]``."""

    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    """Further providers, tried in order: tables with ``provider`` and that provider's keys
    (``base_url``, ``model``, ``api_key``, ``voice``...), an optional ``label`` (metrics) and
    optional ``first_token_timeout`` / ``stall_timeout`` of their own."""
    first_token_timeout: Annotated[float, Meta(ge=0, le=3600)] | None = None
    """LLM: seconds to the first token; TTS: to a sentence's first audio byte; STT: to the
    transcript. Then the request is cancelled and the next provider asked. Default 5 (LLM, TTS),
    off for STT (0 = off)."""
    stall_timeout: Annotated[float, Meta(ge=0, le=3600)] | None = None
    """Seconds without a token (LLM) or audio byte (TTS) once output began; the reply then ends
    as ``failed`` with its partial text. Default 5 (LLM, TTS); 0 = off."""
    breaker_threshold: Annotated[int, Meta(ge=0, le=1000)] = 3
    """Failures in a row after which a provider is skipped (0 = no breaker)."""
    breaker_cooldown: Annotated[float, Meta(ge=0, le=86400)] = 30.0
    """Seconds a provider is skipped before one probe request tries it again."""

    def __post_init__(self) -> None:
        for index, entry in enumerate(self.fallbacks):
            if not isinstance(entry.get("provider"), str) or not entry["provider"]:
                raise InvalidSetting(f"fallbacks[{index}].provider", "a provider name is required")

    def timeouts(self, kind: str) -> tuple[float, float]:
        """(first_token_timeout, stall_timeout) with the kind's defaults filled in."""
        first, stall = DEFAULT_TIMEOUTS[kind]
        if self.first_token_timeout is not None:
            first = self.first_token_timeout
        if self.stall_timeout is not None:
            stall = self.stall_timeout
        return first, stall


def failover_settings(settings: Settings, kind: str) -> FailoverSettings:
    """The failover keys of section ``kind``, validated (SettingsError naming the key)."""
    section = settings.raw.get(kind) or {}
    return parse_section(kind, section if isinstance(section, dict) else {}, FailoverSettings)


def _no_retries(section: dict[str, Any]) -> dict[str, Any]:
    return section if "max_retries" in section else {**section, "max_retries": 0}


def _section_settings(
    settings: Settings, kind: str, section: dict[str, Any], where: str
) -> Settings:
    """``settings`` with section ``kind`` replaced by ``section`` (errors name ``where``)."""
    raw = {**settings.raw, kind: section}
    if kind != "llm":
        return settings.with_overrides(raw=raw)
    try:
        llm = parse_section(kind, section, LLMSettings)
    except SettingsError as exc:
        raise SettingsError(str(exc).replace(f"{kind}.", f"{where}.", 1)) from None
    return settings.with_overrides(llm=llm, raw=raw)


def primary_settings(settings: Settings, kind: str) -> Settings:
    """The settings the primary provider of ``kind`` is built from: without retries of its own
    when fallbacks follow (unless ``max_retries`` is set)."""
    section = settings.raw.get(kind)
    if not isinstance(section, dict) or not failover_settings(settings, kind).fallbacks:
        return settings
    return _section_settings(settings, kind, _no_retries(section), kind)


@dataclass(slots=True)
class MemberTimeouts:
    """Watchdog overrides a fallback table may carry (a slow local model needs more time)."""

    first_token_timeout: Annotated[float, Meta(ge=0, le=3600)] | None = None
    stall_timeout: Annotated[float, Meta(ge=0, le=3600)] | None = None


@dataclass(slots=True)
class Member:
    """One provider of a chain, with its label, breaker and own watchdog timeouts."""

    label: str
    provider: Any
    breaker: CircuitBreaker
    timeouts: MemberTimeouts = field(default_factory=MemberTimeouts)


def build_members(
    kind: str,
    primary: Any,
    registry: ProviderRegistry,
    settings: Settings,
    telemetry: Telemetry,
) -> list[Member]:
    """The chain of ``kind``: ``primary`` then each ``fallbacks`` entry, built by its factory."""
    config = failover_settings(settings, kind)
    providers: list[tuple[str | None, Any, MemberTimeouts]] = [(None, primary, MemberTimeouts())]
    last = len(config.fallbacks) - 1
    for index, entry in enumerate(config.fallbacks):
        where = f"{kind}.fallbacks[{index}]"
        section = {key: value for key, value in entry.items() if key not in _CHAIN_KEYS}
        timeouts = parse_section(where, entry, MemberTimeouts)
        if index < last:
            section = _no_retries(section)
        name = section["provider"]
        if name not in getattr(registry, kind):
            known = ", ".join(sorted(getattr(registry, kind))) or "none"
            raise SettingsError(f"{where}.provider: no {kind} provider named {name!r} ({known})")
        provider = registry.make(kind, name, _section_settings(settings, kind, section, where))
        providers.append((entry.get("label"), provider, timeouts))
    members: list[Member] = []
    for position, (label, provider, timeouts) in enumerate(providers):
        label = label or getattr(provider, "name", kind)
        if any(m.label == label for m in members):
            label = f"{label}#{position + 1}"
        breaker = CircuitBreaker(
            config.breaker_threshold,
            config.breaker_cooldown,
            on_change=_breaker_reporter(telemetry, kind, label),
        )
        members.append(Member(label, provider, breaker, timeouts))
    return members


def _breaker_reporter(telemetry: Telemetry, kind: str, label: str) -> Callable[[str], None]:
    def report(state: str) -> None:
        log.warning("%s provider %s: circuit breaker %s", kind, label, state)
        telemetry.emit(BreakerChanged(kind, label, state))

    return report


def providers_of(provider: Any) -> list[Any]:
    """The providers inside a failover chain, in order (``[provider]`` for any other one)."""
    members = getattr(provider, "members", None)
    if isinstance(members, list):
        return [member.provider for member in members]
    return [] if provider is None else [provider]


def classify(exc: BaseException, label: str) -> ProviderError | None:
    """The error as a ProviderError when the next provider should be tried, else None."""
    if isinstance(exc, _FAILOVER_ERRORS):
        return exc
    if isinstance(exc, ProviderError):
        return None  # a request error (bad input): another provider would refuse it too
    if isinstance(exc, Exception):
        log.error("%s failed unexpectedly", label, exc_info=exc)
        return ProviderUnavailable(f"{label} failed: {type(exc).__name__}", provider=label)
    return None


class Chain:
    """What the LLM, STT and TTS wrappers share: members, telemetry, fallback bookkeeping."""

    kind = ""

    def __init__(self, members: list[Member], telemetry: Telemetry, config: FailoverSettings):
        self.members = members
        self.telemetry = telemetry
        self.first_timeout, self.stall_timeout = config.timeouts(self.kind)
        self.name = getattr(members[0].provider, "name", members[0].label)

    def __getattr__(self, name: str) -> Any:
        """Anything else is the primary's (``ready``, ``model_name``...): the chain stands in
        for the provider configured in the section."""
        if name.startswith("__") or name == "members":
            raise AttributeError(name)
        return getattr(self.members[0].provider, name)

    @property
    def primary(self) -> Any:
        """The first provider of the chain (the one configured in the section itself)."""
        return self.members[0].provider

    def candidates(self) -> list[Member]:
        """Members whose breaker lets a request through now, in order."""
        return [member for member in self.members if member.breaker.allow()]

    def failed(self, member: Member, error: ProviderError, started: float, operation: str) -> None:
        """Note a failure of ``member`` (breaker, metrics, log)."""
        member.breaker.failure()
        log.warning("%s provider %s failed: %s", self.kind, member.label, error.message)
        self.called(member, operation, started, error.code)

    def called(self, member: Member, operation: str, started: float, error: str | None) -> None:
        """Report one call (``seconds`` to its first output or its failure)."""
        seconds = time.perf_counter() - started
        self.telemetry.emit(ProviderCall(self.kind, member.label, operation, seconds, error))

    def moved_on(self, previous: tuple[Member, ProviderError] | None, member: Member) -> None:
        """Report the fallback from ``previous`` (if any) to ``member``."""
        if previous is None:
            return
        self.telemetry.emit(
            FallbackTaken(self.kind, previous[0].label, member.label, previous[1].code)
        )
        turn = current_turn()
        if turn is not None:
            turn.report.fallbacks += 1

    def used(self, member: Member) -> None:
        """``member`` produced output: close its breaker, note it on the turn."""
        member.breaker.success()
        turn = current_turn()
        if turn is not None:
            turn.provider_used(self.kind, member.label)

    def exhausted(self, last: ProviderError | None) -> ProviderError:
        """The error when no provider could answer."""
        if last is not None:
            return last
        return ProviderUnavailable(
            f"every {self.kind} provider is cooling down after repeated failures",
            provider=self.name,
        )

    async def aclose(self) -> None:
        """Close every member that can be closed."""
        for member in self.members:
            aclose = getattr(member.provider, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.exception("provider %s failed to close", member.label)

    async def streamed(
        self,
        operation: str,
        start: Callable[[Member], AsyncIterator[Any]],
        has_output: Callable[[Any], bool],
        on_first: Callable[[Member, Any], Any],
        **attributes: Any,
    ) -> AsyncIterator[Any]:
        """The items of the first member whose stream produces output in time.

        Before any output a failure (or ``first_token_timeout``) moves on to the next member;
        after it, a failure (or ``stall_timeout``: ProviderStalled) is raised.
        """
        last: ProviderError | None = None
        previous: tuple[Member, ProviderError] | None = None
        for member in self.candidates():
            self.moved_on(previous, member)
            started = time.perf_counter()
            items = start(member)
            produced = False
            name = f"{self.kind}.{operation}"
            with self.telemetry.span(
                name, **{"parley.provider": member.label, **attributes}
            ) as span:
                try:
                    while True:
                        wait = self.wait(member, produced)
                        try:
                            item = await next_within(items, wait)
                        except StopAsyncIteration:
                            break
                        except TimeoutError:
                            raise self._timed_out(member, produced, wait) from None
                        if not produced and has_output(item):
                            produced = True
                            self.called(member, operation, started, None)
                            span.set_attribute("parley.first_output_ms", _ms(started))
                            self.used(member)
                            item = on_first(member, item)
                        yield item
                except Exception as exc:
                    error = classify(exc, member.label)
                    span.set_attribute("parley.error", getattr(error or exc, "code", "error"))
                    if produced or error is None:
                        if produced and error is not None:
                            member.breaker.failure()
                        if error is not None and error is not exc:
                            raise error from exc
                        raise
                    self.failed(member, error, started, operation)
                    last, previous = error, (member, error)
                    continue
                except BaseException:
                    member.breaker.release()
                    raise
                finally:
                    await _close(items)
            if not produced:  # an empty answer is still an answer
                self.called(member, operation, started, None)
                self.used(member)
            return
        raise self.exhausted(last)

    def wait(self, member: Member, produced: bool) -> float:
        """How long to wait for ``member``'s next output (its own timeouts win)."""
        own = member.timeouts
        if produced:
            return self.stall_timeout if own.stall_timeout is None else own.stall_timeout
        return self.first_timeout if own.first_token_timeout is None else own.first_token_timeout

    def _timed_out(self, member: Member, produced: bool, seconds: float) -> ProviderError:
        if produced:
            return ProviderStalled(
                f"{member.label} stopped for {seconds:g} s in the middle of its answer",
                provider=member.label,
            )
        return ProviderTimeout(
            f"{member.label} sent nothing within {seconds:g} s", provider=member.label
        )


async def next_within(items: AsyncIterator[Any], seconds: float) -> Any:
    """The next item, waiting at most ``seconds`` (0: no limit); TimeoutError otherwise."""
    if seconds <= 0:
        return await anext(items)
    async with asyncio.timeout(seconds):
        return await anext(items)


class FailoverLLM(Chain):
    """An LLM provider made of a chain of LLM providers, with first-token and stall watchdogs."""

    kind = "llm"

    def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Stream from the first provider that produces a first token in time."""
        # A fallback uses its own model; the sampling settings carry over.
        own_model = dataclasses.replace(
            request, model=dataclasses.replace(request.model, model=None)
        )
        return self.streamed(
            "stream",
            lambda member: member.provider.stream(
                request if member is self.members[0] else own_model
            ),
            lambda chunk: bool(chunk.text or chunk.tool_calls),
            lambda member, chunk: dataclasses.replace(chunk, provider=member.label),
        )


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def _close(items: Any) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # a stream that failed may fail again when closed
            log.debug("closing a provider stream failed", exc_info=True)
