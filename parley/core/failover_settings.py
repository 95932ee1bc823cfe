"""Failover chains from settings: the ``fallbacks`` and watchdog keys of ``[llm]``, ``[stt]`` and
``[tts]``, and the members (provider, label, breaker, own timeouts) a chain is built from.

A fallback table is a section of its own for its ``provider``: nothing is inherited from the
primary (a key never goes to another server). With fallbacks, every provider but the last gets
``max_retries = 0`` unless its table sets it: the next provider is a better retry than the same
one after a back-off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from parley.core.breaker import CircuitBreaker
from parley.core.config import InvalidSetting, LLMSettings, SettingsError, parse_section
from parley.core.telemetry import BreakerChanged

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.core.providers import ProviderRegistry
    from parley.core.telemetry import Telemetry

__all__ = [
    "DEFAULT_TIMEOUTS",
    "FailoverSettings",
    "Member",
    "MemberTimeouts",
    "build_members",
    "failover_settings",
    "primary_settings",
]

log = logging.getLogger("parley.core.failover")

DEFAULT_TIMEOUTS = {"llm": (5.0, 5.0), "tts": (5.0, 5.0), "stt": (0.0, 0.0)}
"""(first_token_timeout, stall_timeout) by kind when not set; 0 turns a watchdog off."""

_CHAIN_KEYS = ("label", "first_token_timeout", "stall_timeout")
"""Keys of a fallback table that belong to the chain, not to the provider's own settings."""


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
        _with_hints(timeouts, provider, config if position == 0 else None)
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


def _with_hints(timeouts: MemberTimeouts, provider: Any, section: FailoverSettings | None) -> None:
    """Fill unset timeouts from the provider's own ``first_token_timeout`` / ``stall_timeout``
    attributes (a local model on a CPU is slower than a cloud API). For the primary (``section``
    given) an explicit section value wins over the hint; a fallback's own table always wins."""
    for key in ("first_token_timeout", "stall_timeout"):
        hint = getattr(provider, key, None)
        explicit = section is not None and getattr(section, key) is not None
        if getattr(timeouts, key) is None and isinstance(hint, int | float) and not explicit:
            setattr(timeouts, key, float(hint))


def _breaker_reporter(telemetry: Telemetry, kind: str, label: str) -> Callable[[str], None]:
    def report(state: str) -> None:
        log.warning("%s provider %s: circuit breaker %s", kind, label, state)
        telemetry.emit(BreakerChanged(kind, label, state))

    return report
