"""Tracing for every process; OTLP/HTTP export when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from shared.logs import set_identity
from shared.settings import Settings

log = logging.getLogger(__name__)


def setup_tracing(service_name: str, instance_id: str, settings: Settings) -> TracerProvider:
    """Create this process's tracer provider and make it the global one.

    With an OTLP endpoint, spans are recorded (honouring the caller's sampling decision) and
    exported. Without one, nothing would read them: they are not recorded, which saves the CPU,
    while trace context still propagates through HTTP and Kafka headers.
    """
    set_identity(service_name, instance_id)  # every JSON log line names the process
    exporting = bool(settings.otel_exporter_otlp_endpoint)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name, SERVICE_INSTANCE_ID: instance_id}),
        sampler=ParentBased(ALWAYS_ON if exporting else ALWAYS_OFF),
    )
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("exporting traces to %s", settings.otel_exporter_otlp_endpoint)
    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # once per process
        trace.set_tracer_provider(provider)
        if exporting:
            _instrument_clients(provider)
    return provider


def _instrument_clients(provider: TracerProvider) -> None:
    """Spans for every PostgreSQL query (asyncpg) and Redis command, once per process and only
    when spans are exported: without an exporter nothing would read them, and the wrappers would
    cost every query a little. Statements are recorded without their parameters."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    asyncpg_instrumentor = AsyncPGInstrumentor(capture_parameters=False)  # type: ignore[no-untyped-call]
    asyncpg_instrumentor.instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)


class TraceOrigins:
    """The span context a long-lived thing (a workflow run, a campaign) was started in, by key,
    kept in this process's memory (the newest `size` keys), so that work on it that something
    else causes later (a reviewer's decision, a timer, the send loop) can join or link to the
    trace of the request that started it. Not stored anywhere: after a restart, or on another
    instance, the origin is unknown and the work is traced where its own cause is."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._origins: OrderedDict[Hashable, trace.SpanContext] = OrderedDict()

    def remember(self, key: Hashable, context: trace.SpanContext) -> trace.SpanContext:
        """Keep `context` as `key`'s origin unless one is known; returns the origin."""
        known = self._origins.get(key)
        if known is not None:
            self._origins.move_to_end(key)
            return known
        if context.is_valid:
            self._origins[key] = context
            if len(self._origins) > self._size:
                self._origins.popitem(last=False)
        return context

    def get(self, key: Hashable) -> trace.SpanContext | None:
        return self._origins.get(key)


ORIGINS = TraceOrigins()  # this process's: run ids (= campaign ids) to the trace that started them

# Contexts that writers of events use instead of the current one: by correlation id (the event
# being handled in a batch that caused the write, set by shared.consuming) and by event id (set
# by a writer that knows each event's cause, as the workflow engine does).
_by_correlation: ContextVar[Mapping[str, Context] | None] = ContextVar(
    "trace_by_correlation", default=None
)
_by_event: ContextVar[Mapping[object, Context] | None] = ContextVar("trace_by_event", default=None)


@contextlib.contextmanager
def causes(
    by_correlation: Mapping[str, Context] | None = None,
    by_event: Mapping[object, Context] | None = None,
) -> Iterator[None]:
    """Inside: `cause_of` answers from these contexts first (see above)."""
    correlation_token = _by_correlation.set(by_correlation) if by_correlation is not None else None
    event_token = _by_event.set(by_event) if by_event is not None else None
    try:
        yield
    finally:
        if event_token is not None:
            _by_event.reset(event_token)
        if correlation_token is not None:
            _by_correlation.reset(correlation_token)


def cause_of(event_id: object = None, correlation_id: str | None = None) -> Context | None:
    """The trace context an event written now should carry, when it is not the current one:
    the one set for its event id, or for its correlation id (a batch's event that caused it)."""
    by_event = _by_event.get()
    if by_event is not None and event_id in by_event:
        return by_event[event_id]
    by_correlation = _by_correlation.get()
    if by_correlation is not None and correlation_id is not None:
        return by_correlation.get(correlation_id)
    return None


def shutdown_tracing(provider: TracerProvider) -> None:
    """Flush spans still buffered, so a clean stop loses none."""
    provider.force_flush(timeout_millis=5_000)
    provider.shutdown()
