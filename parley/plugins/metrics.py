"""Built-in plugin ``metrics``: ``GET /metrics`` in the Prometheus text format (``[metrics]``).

Off by default (``metrics.enabled = true`` turns it on). The series (docs/operations.md) come from
the runtime's telemetry: every turn's report, every provider call, fallback and breaker change,
plus gauges read at each scrape (open WebSockets, live conversations, the inbox depth; a plugin
may replace a gauge's callback: ``context.telemetry.gauges["inbox_depth"] = callback``, sync or
async).

Several processes: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by the workers
(before they start) and any worker's ``/metrics`` answers for all of them (prometheus-client's
multiprocess mode); otherwise scrape each process.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from parley.core import store
from parley.core.breaker import CLOSED, HALF_OPEN, OPEN
from parley.core.hookspecs import hookimpl
from parley.core.inbox import JOB_CHANNEL
from parley.core.plugin_context import PluginContext
from parley.core.telemetry import BreakerChanged, FallbackTaken, ProviderCall, TurnReport

if TYPE_CHECKING:
    from parley.core.adapter_context import AdapterContext
    from parley.core.telemetry import Record, Telemetry

__all__ = ["Metrics", "MetricsPlugin", "MetricsSettings"]

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60)
BREAKER_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


@dataclass(slots=True)
class MetricsSettings:
    """``[metrics]``: the Prometheus endpoint."""

    enabled: bool = False
    """Serve ``GET /metrics`` and collect the series."""


class Metrics:
    """The Prometheus series of one runtime, fed by its telemetry."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.turns = Counter("parley_turns", "Finished turns by status.", ["status"], registry=r)
        self.turn_seconds = Histogram(
            "parley_turn_duration_seconds",
            "Turn duration, from the inbound message to the last event.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "parley_time_to_first_token_seconds",
            "From the start of a turn to the reply's first token.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_audio = Histogram(
            "parley_time_to_first_audio_seconds",
            "From the start of a turn to the reply's first audio chunk.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "parley_tokens",
            "LLM tokens by direction (in, out).",
            ["direction", "provider"],
            registry=r,
        )
        self.turn_errors = Counter(
            "parley_turn_errors", "Error events given to users, by code.", ["code"], registry=r
        )
        self.provider_seconds = Histogram(
            "parley_provider_latency_seconds",
            "Seconds from a provider request to its first output (token, transcript, audio byte).",
            ["kind", "provider", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.provider_errors = Counter(
            "parley_provider_errors",
            "Failed provider requests by code.",
            ["kind", "provider", "code"],
            registry=r,
        )
        self.fallbacks = Counter(
            "parley_fallbacks",
            "Requests moved on to the next provider.",
            ["kind", "from_provider", "to_provider", "code"],
            registry=r,
        )
        self.breaker = Gauge(
            "parley_breaker_state",
            "Circuit breaker per provider: 0 closed, 1 half open, 2 open.",
            ["kind", "provider"],
            registry=r,
            multiprocess_mode="max",
        )
        self.sockets = Gauge(
            "parley_open_websockets",
            "Open WebSocket connections.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.live = Gauge(
            "parley_live_conversations",
            "Conversations with a turn running.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.inbox = Gauge(
            "parley_inbox_depth",
            "Inbound messages waiting to be answered (when the inbox reports it).",
            registry=r,
            multiprocess_mode="max",
        )

    def track_breakers(self, context: PluginContext) -> None:
        """Start each provider's breaker series at its current state (after providers are built)."""
        for kind in ("llm", "stt", "tts"):
            for member in getattr(getattr(context, kind, None), "members", ()):
                self.breaker.labels(kind, member.label).set(BREAKER_VALUES[member.breaker.state])

    def observe(self, record: Record) -> None:
        """Update the series from one telemetry record."""
        if isinstance(record, TurnReport):
            self.turns.labels(record.status).inc()
            self.turn_seconds.observe(record.duration_ms / 1000)
            if record.first_token_ms is not None:
                self.first_token.observe(record.first_token_ms / 1000)
            if record.first_audio_ms is not None:
                self.first_audio.observe(record.first_audio_ms / 1000)
            llm = (record.providers.get("llm") or ["none"])[-1]
            if record.tokens_in:
                self.tokens.labels("in", llm).inc(record.tokens_in)
            if record.tokens_out:
                self.tokens.labels("out", llm).inc(record.tokens_out)
            for code in record.errors:
                self.turn_errors.labels(code).inc()
        elif isinstance(record, ProviderCall):
            labels = (record.kind, record.provider)
            if record.error is None:
                self.provider_seconds.labels(*labels, record.operation).observe(record.seconds)
            else:
                self.provider_errors.labels(*labels, record.error).inc()
        elif isinstance(record, FallbackTaken):
            self.fallbacks.labels(
                record.kind, record.from_provider, record.to_provider, record.code
            ).inc()
        elif isinstance(record, BreakerChanged):
            self.breaker.labels(record.kind, record.provider).set(BREAKER_VALUES[record.state])

    async def exposition(self) -> bytes:
        """The text to serve: this process's series, or every worker's in multiprocess mode."""
        telemetry = self.telemetry
        live = await _read(telemetry.gauges.get("live_conversations"))
        self.live.set(len(telemetry.live_turns) if live is None else live)
        depth = await _read(telemetry.gauges.get("inbox_depth"))
        if depth is not None:
            self.inbox.set(depth)
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


async def _read(gauge: Callable[[], Any] | None) -> float | None:
    """A gauge callback's value (sync or async); None when there is none or it failed."""
    if gauge is None:
        return None
    try:
        value = gauge()
        if inspect.isawaitable(value):
            value = await value
        return float(value)
    except Exception:  # the database is down, say: the other series are still served
        log.warning("metrics: a gauge callback failed", exc_info=True)
        return None


async def inbox_depth() -> int:
    """Inbox items waiting or being answered (not the periodic jobs), across all processes."""
    depth = 0
    for status in ("queued", "claimed"):
        items = await store.inbox_items(status=status)
        depth += sum(item.channel != JOB_CHANNEL for item in items)
    return depth


@get("/metrics", tags=["operations"], include_in_schema=False)
async def metrics_endpoint(context: NamedDependency[PluginContext]) -> Response[bytes]:
    """The Prometheus series (404 while ``metrics.enabled`` is off)."""
    metrics: Metrics | None = context.telemetry.metrics
    if metrics is None:
        body = b'{"error": {"code": "not_found", "message": "metrics are off"}}'
        return Response(body, status_code=404, media_type="application/json")
    return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


class SocketCounter:
    """ASGI middleware: counts the open WebSocket connections into a gauge."""

    def __init__(self, app: Any, gauge: Gauge) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        self.gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.dec()


class MetricsPlugin:
    """Registers ``[metrics]`` and ``GET /metrics``; builds the series when enabled."""

    @hookimpl
    def register_settings(self, register: Callable[..., None]) -> None:
        """Declare ``[metrics]``."""
        register("metrics", MetricsSettings)

    @hookimpl
    def register_routes(self, register: Callable[..., None]) -> None:
        """Mount ``GET /metrics``."""
        register(metrics_endpoint)

    @hookimpl
    def register_adapters(self, register: Callable[..., None]) -> None:
        """A small "adapter" whose only part is the WebSocket-counting middleware."""
        register("metrics", _socket_adapter)

    @hookimpl
    def startup(self, context: PluginContext) -> None:
        """Build the series and subscribe them to the runtime's telemetry (when enabled)."""
        if not context.section("metrics", MetricsSettings).enabled:
            return
        metrics = _metrics_of(context.telemetry)
        metrics.track_breakers(context)
        context.telemetry.gauges.setdefault("inbox_depth", inbox_depth)
        context.telemetry.subscribe(metrics.observe)


def _metrics_of(telemetry: Telemetry) -> Metrics:
    if telemetry.metrics is None:
        telemetry.metrics = Metrics(telemetry)
    return telemetry.metrics  # type: ignore[no-any-return]


class _SocketAdapter:
    name = "metrics"

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def route_handlers(self) -> list[Any]:
        return []

    def configure_app(self, app_config: dict[str, Any]) -> None:
        telemetry = self.telemetry

        def middleware(app: Any) -> Any:
            return SocketCounter(app, _metrics_of(telemetry).sockets)

        app_config.setdefault("middleware", []).append(middleware)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def _socket_adapter(context: AdapterContext) -> _SocketAdapter | None:
    enabled = context.section("metrics", MetricsSettings).enabled
    return _SocketAdapter(context.telemetry) if enabled else None
