"""Telemetry: what providers and turns report, for metrics, traces and the per-turn log line.

A :class:`Telemetry` object lives on the runtime. Provider wrappers (:mod:`parley.core.failover`)
report :class:`ProviderCall`, :class:`FallbackTaken` and :class:`BreakerChanged`; the engine wraps
each turn in :meth:`Telemetry.turn`, which reports a :class:`TurnReport` at the end and logs one
line about it (logger ``parley.turn``). Observers (the ``metrics`` plugin) subscribe with
:meth:`Telemetry.subscribe`. Spans go to ``telemetry.tracer`` (a no-op tracer until the
``tracing`` plugin installs a real one).

Trace context travels with an inbound message as a plain dict (W3C ``traceparent``):
:func:`inject` writes the current context into a carrier, :meth:`Telemetry.received` starts a
trace for a message just received and returns its carrier; put it into
``Inbound.metadata["trace"]`` and the turn that answers the message, in whichever process, joins
that trace.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from parley.core.events import (
    AudioChunk,
    ErrorEvent,
    Event,
    MessageCompleted,
    TextDelta,
    TurnStarted,
)

if TYPE_CHECKING:
    from parley.core.inbound import Inbound

__all__ = [
    "BreakerChanged",
    "FallbackTaken",
    "ProviderCall",
    "Telemetry",
    "TurnReport",
    "TurnScope",
    "current_turn",
    "extract",
    "inject",
    "joined",
    "provider_sink",
    "turn_span",
]

log = logging.getLogger(__name__)
turn_log = logging.getLogger("parley.turn")

_PROPAGATOR = TraceContextTextMapPropagator()
_CURRENT: contextvars.ContextVar[TurnScope | None] = contextvars.ContextVar(
    "parley_turn", default=None
)
_SPEECH_ERRORS = frozenset({"tts_failed"})


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One request to one provider: ``seconds`` until its first output (or its failure)."""

    kind: str
    """``llm``, ``stt`` or ``tts``."""
    provider: str
    """The provider's label in its chain (``openai``, ``openai#2``...)."""
    operation: str
    """``stream``, ``transcribe`` or ``synthesize``."""
    seconds: float
    error: str | None = None
    """The error code when it failed (``provider_unavailable``, ``provider_first_token_timeout``...)."""


@dataclass(frozen=True, slots=True)
class FallbackTaken:
    """A provider failed before producing anything; the request went on to ``to_provider``."""

    kind: str
    from_provider: str
    to_provider: str
    code: str


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    """A provider's circuit breaker changed state (``closed``, ``open``, ``half_open``)."""

    kind: str
    provider: str
    state: str


@dataclass(slots=True)
class TurnReport:
    """One finished turn, as the per-turn log line and the metrics see it."""

    conversation_id: str
    status: str = "complete"
    """``complete``, ``failed`` (a reply or the transcription failed), ``interrupted``, ``error``."""
    duration_ms: int = 0
    first_token_ms: int | None = None
    first_audio_ms: int | None = None
    user_message_id: str | None = None
    message_ids: list[str] = field(default_factory=list)
    providers: dict[str, list[str]] = field(default_factory=dict)
    """Which provider answered, by kind (in order of use)."""
    fallbacks: int = 0
    errors: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The fields of the log line (``None`` values left out)."""
        out = {
            "conversation_id": self.conversation_id,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "first_token_ms": self.first_token_ms,
            "first_audio_ms": self.first_audio_ms,
            "user_message_id": self.user_message_id,
            "message_ids": self.message_ids,
            "providers": self.providers,
            "fallbacks": self.fallbacks,
            "errors": self.errors,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }
        return {key: value for key, value in out.items() if value is not None}


Record = ProviderCall | FallbackTaken | BreakerChanged | TurnReport
Observer = Callable[[Record], None]


def inject(carrier: dict[str, str] | None = None) -> dict[str, str]:
    """The current trace context as a carrier dict (``traceparent``), to store with an inbox item."""
    carrier = {} if carrier is None else carrier
    _PROPAGATOR.inject(carrier)
    return carrier


def extract(carrier: Any) -> otel_context.Context | None:
    """The trace context of a carrier made by :func:`inject`; None when it carries none."""
    if not isinstance(carrier, dict) or "traceparent" not in carrier:
        return None
    return _PROPAGATOR.extract({k: v for k, v in carrier.items() if isinstance(v, str)})


provider_sink: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "parley_provider_sink", default=None
)
"""Set by the speech pipeline in each sentence's task: a failover chain calls it with the label
of the provider that spoke the sentence (stored as the message's ``tts_providers``)."""


@contextmanager
def joined(carrier: Any) -> Iterator[None]:
    """Make the trace context of ``carrier`` current for the block: turns started inside it join
    that trace (an adapter answering a stored message wraps its handling in it)."""
    context = extract(carrier)
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        with suppress(ValueError):
            otel_context._RUNTIME_CONTEXT.detach(token)  # type: ignore[attr-defined]


def current_turn() -> TurnScope | None:
    """The turn being run in this task (provider wrappers record what they did into it)."""
    return _CURRENT.get()


def turn_span(name: str, **attributes: Any) -> AbstractContextManager[Span]:
    """A span under the current turn's (a no-op outside a turn): tool calls, database work."""
    turn = _CURRENT.get()
    if turn is None:
        return nullcontext(trace.INVALID_SPAN)
    return turn.telemetry.span(name, **attributes)


class Telemetry:
    """Observers of provider calls and turns, and the tracer spans go to (one per runtime)."""

    def __init__(self) -> None:
        self.observers: list[Observer] = []
        self.tracer: trace.Tracer = trace.NoOpTracer()
        self.tracer_provider: Any = None
        """The SDK ``TracerProvider`` when tracing is on (set by the ``tracing`` plugin)."""
        self.gauges: dict[str, Callable[[], float]] = {}
        """Callbacks read at each scrape: ``inbox_depth`` (the inbox registers it), ..."""
        self.live_turns: set[str] = set()
        """Conversations with a turn running in this process."""
        self.metrics: Any = None
        """The ``metrics`` plugin's series while it is on (what ``GET /metrics`` serves)."""

    def subscribe(self, observer: Observer) -> None:
        """Call ``observer(record)`` for every report (it must be quick and must not raise)."""
        self.observers.append(observer)

    def emit(self, record: Record) -> None:
        """Hand ``record`` to every observer; a failing observer is logged and skipped."""
        for observer in self.observers:
            try:
                observer(record)
            except Exception:
                log.exception("telemetry observer %r failed", observer)

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Span]:
        """A span under the current one (not made current: safe around a generator's yields)."""
        span = self.tracer.start_span(name, attributes=_attributes(attributes))
        try:
            yield span
        except BaseException as exc:
            if isinstance(exc, Exception):  # not a cancellation or a closed generator
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def received(self, channel: str, **attributes: Any) -> dict[str, str]:
        """Start the trace of a message just received; returns the carrier for its inbox item."""
        span = self.tracer.start_span(
            "parley.receive", attributes=_attributes({"parley.channel": channel, **attributes})
        )
        span.end()
        return _carrier_of(span) if span.get_span_context().is_valid else inject({})

    def turn(self, conversation_id: str, inbound: Inbound | None = None) -> TurnScope:
        """The scope of one turn: ``async with`` it around the turn, ``observe`` its events."""
        return TurnScope(self, conversation_id, inbound)


def _carrier_of(span: Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def _attributes(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, str | bool | int | float)}


class TurnScope:
    """One turn: its span (made current, so provider spans nest under it), timings and report."""

    def __init__(self, telemetry: Telemetry, conversation_id: str, inbound: Inbound | None) -> None:
        self.telemetry = telemetry
        self.report = TurnReport(conversation_id)
        self.inbound = inbound
        self.span: Span = trace.INVALID_SPAN
        self._started = 0.0
        self._tokens: list[contextvars.Token[Any]] = []
        self._otel_token: object | None = None
        self._statuses: list[str] = []

    def ms(self) -> int:
        """Milliseconds since the turn began."""
        return round((time.perf_counter() - self._started) * 1000)

    async def __aenter__(self) -> TurnScope:
        self._started = time.perf_counter()
        metadata = self.inbound.metadata if self.inbound is not None else {}
        attributes: dict[str, Any] = {"parley.conversation_id": self.report.conversation_id}
        if self.inbound is not None:
            attributes["parley.audio"] = self.inbound.audio is not None
            if self.inbound.platform_message_id:
                attributes["parley.platform_message_id"] = self.inbound.platform_message_id
        self.span = self.telemetry.tracer.start_span(
            "parley.turn", context=extract(metadata.get("trace")), attributes=attributes
        )
        self._otel_token = otel_context.attach(trace.set_span_in_context(self.span))
        self._tokens.append(_CURRENT.set(self))
        self.telemetry.live_turns.add(self.report.conversation_id)
        return self

    def provider_used(self, kind: str, provider: str) -> None:
        """A provider of ``kind`` produced output in this turn."""
        used = self.report.providers.setdefault(kind, [])
        if provider not in used:
            used.append(provider)

    def observe(self, event: Event) -> None:
        """Note what an event says about the turn (first token, first audio, status, tokens)."""
        report = self.report
        if isinstance(event, TextDelta) and report.first_token_ms is None and event.text:
            report.first_token_ms = self.ms()
        elif isinstance(event, AudioChunk) and report.first_audio_ms is None:
            report.first_audio_ms = self.ms()
        elif isinstance(event, TurnStarted):
            report.user_message_id = event.user_message_id
            self.span.set_attribute("parley.user_message_id", event.user_message_id)
        elif isinstance(event, MessageCompleted):
            report.message_ids.append(event.message_id)
            self._statuses.append(event.status)
            report.tokens_in += event.tokens_in or 0
            report.tokens_out += event.tokens_out or 0
        elif isinstance(event, ErrorEvent):
            report.errors.append(event.code)

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.telemetry.live_turns.discard(self.report.conversation_id)
        report = self.report
        report.duration_ms = self.ms()
        if exc_type is not None and not issubclass(exc_type, GeneratorExit | Exception):
            report.status = "interrupted"  # cancelled
        elif exc_type is GeneratorExit or "interrupted" in self._statuses:
            report.status = "interrupted"
        elif exc_type is not None:
            report.status = "error"
        elif "failed" in self._statuses or set(report.errors) - _SPEECH_ERRORS:
            report.status = "failed"
        span = self.span
        span.set_attribute("parley.status", report.status)
        if report.message_ids:
            span.set_attribute("parley.message_ids", report.message_ids)
        for kind, used in report.providers.items():
            span.set_attribute(f"parley.{kind}.provider", used)
        if report.status in ("failed", "error"):
            span.set_status(Status(StatusCode.ERROR, ",".join(report.errors) or report.status))
        span.end()
        for token in reversed(self._tokens):
            with suppress(ValueError):  # closed from another context (a finalised generator)
                _CURRENT.reset(token)
        if self._otel_token is not None:
            with suppress(ValueError):
                otel_context._RUNTIME_CONTEXT.detach(self._otel_token)  # type: ignore[attr-defined]
        self.telemetry.emit(report)
        turn_log.info(
            "turn %s %s in %d ms (first token %s ms, first audio %s ms) providers=%s errors=%s",
            report.conversation_id,
            report.status,
            report.duration_ms,
            "-" if report.first_token_ms is None else report.first_token_ms,
            "-" if report.first_audio_ms is None else report.first_audio_ms,
            ",".join(f"{k}:{'>'.join(v)}" for k, v in report.providers.items()) or "-",
            ",".join(report.errors) or "-",
            extra={"turn": report.as_dict()},
        )
