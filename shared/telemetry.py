"""Tracing for every process; OTLP/HTTP export when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from __future__ import annotations

import logging

from opentelemetry import trace
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
    return provider


def shutdown_tracing(provider: TracerProvider) -> None:
    """Flush spans still buffered, so a clean stop loses none."""
    provider.force_flush(timeout_millis=5_000)
    provider.shutdown()
