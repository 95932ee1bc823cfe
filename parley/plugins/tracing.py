"""Built-in plugin ``tracing``: OpenTelemetry traces of every turn (``[tracing]``, off by default).

One trace per turn: ``parley.turn`` (conversation, user message and reply ids, status, providers)
with children ``stt.transcribe``, ``llm.stream`` (one per provider tried, per tool round),
``tts.synthesize`` (one per sentence), ``tool.call`` and ``db.query``. When the inbound message
carries a trace context (``Inbound.metadata["trace"]``, see :mod:`parley.core.telemetry`) the
turn joins that trace, in whichever process answers it.

The spans go through the SDK's batch processor to an OTLP/HTTP collector (``exporter = "otlp"``,
needs ``pip install 'parley[otlp]'``) or to stdout (``console``); ``none`` keeps them in process
(tests add their own processor to ``runtime.telemetry.tracer_provider``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from msgspec import Meta

from parley.core.hookspecs import hookimpl
from parley.core.providers import MissingDependency

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from parley.core.plugin_context import PluginContext

__all__ = ["TracingPlugin", "TracingSettings"]


@dataclass(slots=True)
class TracingSettings:
    """``[tracing]``: OpenTelemetry traces."""

    enabled: bool = False
    """Record a trace per turn."""
    exporter: Literal["otlp", "console", "none"] = "otlp"
    """``otlp`` (OTLP over HTTP), ``console`` (stdout) or ``none``."""
    endpoint: str = ""
    """OTLP/HTTP traces URL, e.g. ``http://collector:4318/v1/traces``; empty: the exporter's
    default (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``, else
    ``http://localhost:4318/v1/traces``)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers for the collector (an API key goes here, or in ``OTEL_EXPORTER_OTLP_HEADERS``)."""
    service_name: str = "parley"
    """The ``service.name`` resource attribute."""
    sample_ratio: Annotated[float, Meta(ge=0, le=1)] = 1.0
    """Share of turns traced (0 to 1); a turn that joins a sampled trace is always traced."""
    database: bool = True
    """Also a ``db.query`` span per SQL statement run during a turn."""


def _exporter(settings: TracingSettings) -> SpanExporter | None:
    if settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if settings.exporter == "none":
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise MissingDependency(
            "opentelemetry-exporter-otlp-proto-http", "otlp", provider="tracing"
        ) from None
    return OTLPSpanExporter(endpoint=settings.endpoint or None, headers=settings.headers or None)


class TracingPlugin:
    """Installs a tracer provider on the runtime's telemetry at start-up, flushes it at shutdown."""

    def __init__(self) -> None:
        self.provider: Any = None

    @hookimpl
    def register_settings(self, register: Callable[..., None]) -> None:
        """Declare ``[tracing]``."""
        register("tracing", TracingSettings)

    @hookimpl
    def startup(self, context: PluginContext) -> None:
        """Build the tracer provider and exporter (when enabled)."""
        settings = context.section("tracing", TracingSettings)
        if not settings.enabled:
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        exporter = _exporter(settings)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        if settings.database:
            from parley.plugins.tracing_db import instrument_tortoise

            instrument_tortoise()
        self.provider = provider
        context.telemetry.tracer_provider = provider
        context.telemetry.tracer = provider.get_tracer("parley")

    @hookimpl
    def shutdown(self, context: PluginContext) -> None:
        """Send the spans still buffered, then stop the exporter."""
        if self.provider is not None:
            self.provider.shutdown()
            self.provider = None
