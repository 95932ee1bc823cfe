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
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

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
from parley.core.telemetry import FallbackTaken, ProviderCall, current_turn

if TYPE_CHECKING:
    from parley.core.failover_settings import FailoverSettings, Member
    from parley.core.telemetry import Telemetry

__all__ = [
    "Chain",
    "FailoverLLM",
    "classify",
    "next_within",
    "warm",
]

log = logging.getLogger(__name__)

_FAILOVER_ERRORS = (ProviderAuthError, ProviderRateLimited, ProviderTimeout, ProviderUnavailable)


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

    def candidates(self) -> Iterator[Member]:
        """Members whose breaker lets a request through now, in order; asked one at a time, so
        a half-open breaker is only claimed for a probe when its member is really tried."""
        for member in self.members:
            if member.breaker.allow():
                yield member

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
                    await warm(member)
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


async def warm(member: Member) -> None:
    """Wait for a provider that loads a model (``ready`` / ``load()``, the local ones) before its
    watchdog starts: loading is not a stall. A failed load fails over like any error."""
    provider = member.provider
    load = getattr(provider, "load", None)
    if load is not None and not getattr(provider, "ready", True):
        await load()


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
