"""JSON log lines (LOG_FORMAT=json): trace ids of the current span, exceptions on one line, the
access log's fields; and the text format, still there for developers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from shared import logs
from shared.settings import Settings


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.StreamHandler[Any]]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


FASTSTREAM_LOGGERS = ("faststream", "faststream.access.kafka")


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("sampler", [ALWAYS_ON, ALWAYS_OFF])
def test_a_record_inside_a_span_carries_its_trace_and_span_ids_in_hex(
    captured: tuple[logging.Logger, io.StringIO, Any], sampler: Any
) -> None:
    # Unsampled spans (no OTLP endpoint) still have ids, which propagate to other services.
    logger, stream, _ = captured
    tracer = TracerProvider(sampler=sampler).get_tracer("test")
    logs.set_identity("intent", "abc123")
    with tracer.start_as_current_span("work") as span:
        logger.info("inside %s", "the span")
    logger.info("outside")
    context = span.get_span_context()
    inside, outside = lines(stream)
    assert inside["message"] == "inside the span"
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert len(inside["trace_id"]) == 32
    assert len(inside["span_id"]) == 16
    assert (inside["level"], inside["logger"]) == ("INFO", "test.logs")
    assert (inside["service"], inside["instance"]) == ("intent", "abc123")
    assert inside["time"].endswith("Z")
    assert "trace_id" not in outside
    assert "span_id" not in outside


def _fail(message: str) -> None:
    raise ValueError(message)


def test_an_exception_is_one_json_line(captured: tuple[logging.Logger, io.StringIO, Any]) -> None:
    logger, stream, _ = captured
    try:
        _fail('bad "quoted"\nvalue')
    except ValueError:
        logger.exception("handler failed")
    assert len(stream.getvalue().splitlines()) == 1
    (line,) = lines(stream)
    assert line["level"] == "ERROR"
    assert line["message"] == "handler failed"
    assert line["exception"].startswith("Traceback (most recent call last)")
    assert 'ValueError: bad "quoted"\nvalue' in line["exception"]


def test_extra_fields_are_kept_and_the_message_is_searchable(
    captured: tuple[logging.Logger, io.StringIO, Any],
) -> None:
    # The tests' ServiceProcess.wait_for searches each output line with a regex: the message is a
    # JSON string inside the line, so "started successfully" still matches.
    logger, stream, _ = captured
    logger.info("FastStream app started successfully!", extra={"topic": "intent.detected"})
    raw = stream.getvalue()
    assert "started successfully" in raw
    assert json.loads(raw)["topic"] == "intent.detected"


async def test_the_access_log_has_method_path_status_and_duration(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[Any]],
) -> None:
    _, stream, handler = captured
    logs.access_log.addHandler(handler)
    logs.access_log.setLevel(logging.INFO)
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/x", "client": ("10.0.0.1", 5000)}
    try:
        await logs.AccessLogMiddleware(app)(scope, receive, send)
        await logs.AccessLogMiddleware(app)({**scope, "path": "/healthz"}, receive, send)
    finally:
        logs.access_log.removeHandler(handler)
    (line,) = lines(stream)  # a successful probe is logged at DEBUG only
    assert (line["method"], line["path"], line["status"]) == ("POST", "/api/x", 201)
    assert line["duration_ms"] >= 0
    assert line["client"] == "10.0.0.1:5000"
    assert line["message"].startswith("POST /api/x 201 ")
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"] * 2


def test_configure_logging_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    faststream = {name: list(logging.getLogger(name).handlers) for name in FASTSTREAM_LOGGERS}
    try:
        logs.configure_logging(Settings(log_format="json"))
        logs.configure_logging(Settings(log_format="json"))  # again: still one handler of ours
        ours = [h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter)]
        assert len(ours) == 1
        logging.getLogger("test.configured").warning("as json")
        logs.configure_logging(Settings(log_format="text"))
        logging.getLogger("test.configured").warning("as text")
    finally:
        for handler in list(root.handlers):
            if handler not in before[0]:
                root.removeHandler(handler)
        root.setLevel(before[1])
        for name, handlers in faststream.items():
            logging.getLogger(name).handlers[:] = handlers
    err = [line for line in capsys.readouterr().err.splitlines() if "as " in line]
    assert json.loads(err[0])["message"] == "as json"
    assert err[1].endswith("WARNING test.configured: as text")
    assert not err[1].startswith("{")
