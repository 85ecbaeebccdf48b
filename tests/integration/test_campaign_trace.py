"""One trace follows a campaign request: from `POST /api/ai-assistant/intent` through the intent
service, the workflow's steps (extract, draft, the review wait) and the campaign service, across
the outboxes, to each email's SMTP send, which the send loop makes later in a trace of its own
linked to the campaign's. Spans are collected with a local OTLP receiver."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.api import wait_for_state
from tests.support.campaign_rows import QUICK_SENDING, add_candidate, add_job, letters
from tests.support.otlp import OtlpReceiver
from tests.support.smtp import SmtpTestServer
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TRACE_ID = "5cf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
OTEL = {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_BSP_SCHEDULE_DELAY": "100"}
ADDRESS = re.compile(r"[^@\s\"'<>]+@[^@\s\"'<>]+\.[a-z]{2,}", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    links: tuple[tuple[str, str], ...]  # (trace id, span id) of each link
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


class Receiver(OtlpReceiver):
    """The local receiver, keeping each span's attributes and links as well."""

    def __init__(self) -> None:
        super().__init__()
        self.full: list[Span] = []
        self._full_lock = threading.Lock()

    def _collect(self, request: ExportTraceServiceRequest) -> None:
        super()._collect(request)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            service=str(resource.get("service.name", "?")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            links=tuple((k.trace_id.hex(), k.span_id.hex()) for k in span.links),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self._full_lock:
            self.full += spans

    def all(self) -> list[Span]:
        with self._full_lock:
            return list(self.full)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """Session-scoped so that it outlives the module's processes (the launcher stops them at the
    module's end): a service stopping with its collector gone retries its last export until
    killed."""
    receiver = Receiver()
    with receiver:
        yield receiver


@pytest.fixture(scope="module")
def mail_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(receiver: Receiver, mail_server: SmtpTestServer) -> Stack:
    otel = {**OTEL, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
    return Stack(
        {
            "intent": otel,
            "workflow": {**otel, **QUICK_SENDING},
            "campaign": {**otel, **QUICK_SENDING, **mail_server.env},
        },
        gateway_env=otel,
        user="tracy-recruiter",
        scopes=("workflows", "review", "assistant"),
    )


def wait_until_spans(receiver: Receiver, done: Any, timeout: float = 20) -> list[Span]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = receiver.all()
        if done(spans):
            return spans
        time.sleep(0.2)
    raise AssertionError(f"the spans never got there: {sorted({s.name for s in receiver.all()})}")


async def test_a_campaign_request_is_one_trace_to_each_send(
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    tag: str,
    receiver: Receiver,
    mail_server: SmtpTestServer,
) -> None:
    title = f"Trace Platform Engineer {letters(tag)}"
    await add_job(db, title, skills=["python"], external_ref=tag)
    for n in range(3):
        await add_candidate(
            db, f"Tr{n} {tag}", email=f"tr{n}-{tag}@example.com", city="Berlin",
            seniority="senior", years=70 - n, skills=["python"],
        )  # fmt: skip

    response = await api.post(
        "/api/ai-assistant/intent",
        json={"message": f"Email the 3 best python developers in Berlin about the {title} role"},
        headers={"traceparent": TRACEPARENT},
    )
    assert response.status_code == 200, response.text
    detected = response.json()
    assert (detected["intent"], detected["needs_clarification"]) == ("email_campaign", False)
    run_id = detected["workflow_id"]
    await wait_for_state(api, run_id, "await_review")
    approved = await api.post(f"/api/campaigns/{run_id}/approve-all")
    assert approved.status_code == 200, approved.text
    await wait_for_state(api, run_id, "monitoring")  # every email sent
    sent = await db.fetch(
        "SELECT to_address FROM campaign.emails WHERE campaign_id = $1 AND status = 'sent'",
        uuid.UUID(run_id),
    )
    assert len(sent) == 3
    addresses = {r["to_address"] for r in sent}

    def in_trace(span: Span) -> bool:
        return span.trace_id == TRACE_ID

    def linked(span: Span) -> bool:
        return any(trace_id == TRACE_ID for trace_id, _ in span.links)

    def state_span(spans: list[Span], state: str) -> Span | None:
        return next(
            (
                s
                for s in spans
                if s.service == "workflow" and in_trace(s)
                and s.attributes.get("workflow.state") == state
            ),
            None,
        )  # fmt: skip

    def complete(spans: list[Span]) -> bool:
        return len([s for s in spans if s.name == "smtp send"]) >= 3 and (
            state_span(spans, "monitoring") is not None
        )

    wait_until_spans(receiver, complete)
    await asyncio.sleep(1.0)  # the last batches of every process
    spans = receiver.all()
    traced = [s for s in spans if in_trace(s)]

    # Every service has spans in the request's trace.
    assert {"gateway", "intent", "workflow", "campaign"} <= {s.service for s in traced}, {
        s.service for s in traced
    }
    # The run's every transition is in it: the steps requested, the review wait, the sending.
    for state in ("extract_candidates", "generate_drafts", "await_review"):
        assert state_span(spans, state) is not None, state
    # The reviewer's decision (another request, another trace) and the sender's end of sending
    # (the send loop's trace) end the waits: those transitions stay in the campaign's trace,
    # linked to what caused them.
    for state in ("await_sending", "monitoring"):
        transition = state_span(spans, state)
        assert transition is not None, state
        assert transition.links, transition
        assert all(trace_id != TRACE_ID for trace_id, _ in transition.links)
    # The campaign service handles the step requests in the trace.
    assert any(s.service == "campaign" and "step.requested" in s.name for s in traced), sorted(
        {(s.service, s.name) for s in traced if "db.system" not in s.attributes}
    )
    # PostgreSQL spans, in the trace.
    assert any(s.attributes.get("db.system") == "postgresql" for s in traced), sorted(
        {s.name for s in traced}
    )

    # One SMTP span per email, each in a send trace linked to the campaign's trace.
    smtp = [s for s in spans if s.name == "smtp send"]
    assert len(smtp) == 3, smtp
    by_id = {s.span_id: s for s in spans}
    for span in smtp:
        assert span.attributes["email.outcome"] == "sent"
        assert span.attributes["email.recipient.domain"] == "example.com"
        parent = by_id[span.parent_span_id]
        assert parent.name == "campaign send email"
        assert linked(parent) or in_trace(parent), parent

    # No span anywhere carries an email address.
    for span in spans:
        for key, value in span.attributes.items():
            text = str(value)
            assert not any(a in text for a in addresses), (span.name, key, value)
            assert not ADDRESS.search(text), (span.name, key, value)
