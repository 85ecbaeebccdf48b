"""One HTTP request that crosses Kafka yields spans of both processes in one trace."""

from __future__ import annotations

import time

import pytest

from tests.support.api import MakeKey
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.stack import StartGateway, StartService

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def wait_for_spans(
    receiver: OtlpReceiver, services: set[str], timeout: float = 15
) -> list[ReceivedSpan]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = [s for s in receiver.snapshot() if s.trace_id == TRACE_ID]
        if services <= {s.service for s in spans}:
            return spans
        time.sleep(0.1)
    raise AssertionError(f"no spans from {services} in trace; got {receiver.snapshot()}")


async def test_request_through_kafka_is_one_trace(
    start_gateway: StartGateway, start_service: StartService, make_key: MakeKey
) -> None:
    with OtlpReceiver() as receiver:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        start_service("intent", **otel)
        gateway = start_gateway(**otel)
        key = await make_key("admin")
        # The caller's own trace context is honoured, so the whole trace is known in advance.
        traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
        async with gateway.client(key) as http:
            response = await http.get(
                "/api/services/intent/ping", headers={"traceparent": traceparent}
            )
        assert response.status_code == 200, response.text

        spans = wait_for_spans(receiver, {"gateway", "intent"})

    by_service = {s.service for s in spans}
    assert by_service == {"gateway", "intent"}
    gateway_ids = {s.span_id for s in spans if s.service == "gateway"}
    intent_spans = [s for s in spans if s.service == "intent"]
    # The service's consumer span is a child of a gateway span: the context rode in Kafka headers.
    assert any(s.parent_span_id in gateway_ids for s in intent_spans), spans


async def test_a_gateway_that_exports_nothing_still_passes_the_callers_trace_on(
    start_gateway: StartGateway, start_service: StartService, make_key: MakeKey
) -> None:
    """A gateway without an exporter records nothing, but the caller's trace context still
    reaches the services it asks through Kafka, and theirs may be exported."""
    with OtlpReceiver() as receiver:
        start_service(
            "intent", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="100"
        )
        gateway = start_gateway()
        key = await make_key("admin")
        async with gateway.client(key) as http:
            response = await http.get(
                "/api/services/intent/ping",
                headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
            )
        assert response.status_code == 200, response.text

        spans = wait_for_spans(receiver, {"intent"})

    assert {s.service for s in spans} == {"intent"}
    # The command's consumer span is in the caller's trace (wait_for_spans takes only those).
    assert any(s.name.startswith("intent.commands") for s in spans), spans
