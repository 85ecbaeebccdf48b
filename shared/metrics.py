"""Prometheus metrics (prometheus-client): every series the processes export, in one registry per
process, and the small helpers the hot paths use.

The gateway serves the registry at `GET /metrics` on its HTTP port; a service serves it on
`METRICS_PORT` (0, the default: no metrics server) with `start_metrics_server`. Every series is
named `recruiter_*`; docs/monitoring.md ("Metrics") lists them.

Hot paths look a labelled child up once per label combination (`Children`, a dict lookup) and
then only increment or observe it: no registry lock, no allocation beyond the key tuple.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Generic, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.process_collector import ProcessCollector

from shared.errors import ConfigurationError

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes...

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Buckets (seconds): requests and commands are milliseconds to a few seconds; model calls and
# workflow steps take longer.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

# --- the gateway's HTTP API --------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "recruiter_http_requests",
    "HTTP requests the gateway answered, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "recruiter_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response body, by method and route template.",
    ["method", "route"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

# --- commands (request/reply over Kafka), every service --------------------------------------

COMMANDS = Counter(
    "recruiter_commands",
    "Commands a service handled, by command type and outcome ('ok' or the reply's error code).",
    ["service", "command", "outcome"],
    registry=REGISTRY,
)
COMMAND_DURATION = Histogram(
    "recruiter_command_duration_seconds",
    "Time a service took to handle a command (decoding to reply), by command type.",
    ["service", "command"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

# --- events (shared/consuming.py) --------------------------------------------------------------

EVENTS_CONSUMED = Counter(
    "recruiter_events_consumed",
    "Events a consumer group handled, by topic and outcome: ok, dead_lettered (the handler failed "
    "every attempt), invalid (undecodable, dead-lettered), transient (the batch is fetched again).",
    ["group", "topic", "outcome"],
    registry=REGISTRY,
)
EVENT_HANDLER_DURATION = Histogram(
    "recruiter_event_handler_duration_seconds",
    "Time one handler call took, retries included, by consumer group and topic (a topic handled "
    "a batch at a time observes one call per batch).",
    ["group", "topic"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "recruiter_consumer_lag",
    "Records behind the partition's end after the consumer's last fetch that returned records "
    "(the broker's high watermark minus the next offset), by group, topic and partition.",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "recruiter_dead_letters",
    "Events a consumer group sent to events.deadletter, by source topic and reason "
    "(invalid, handler_failed).",
    ["group", "topic", "reason"],
    registry=REGISTRY,
)

# --- the outbox (shared/outbox.py) -----------------------------------------------------------

OUTBOX_BACKLOG = Gauge(
    "recruiter_outbox_backlog",
    "Unpublished rows in a schema's outbox, sampled by the process's relay every few seconds.",
    ["schema"],
    registry=REGISTRY,
)
OUTBOX_OLDEST_AGE = Gauge(
    "recruiter_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none), sampled with the backlog.",
    ["schema"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "recruiter_outbox_published",
    "Outbox rows the broker acknowledged, by schema and path (direct: straight after commit; "
    "relay: read back by the relay).",
    ["schema", "path"],
    registry=REGISTRY,
)

# --- the workflow engine -----------------------------------------------------------------------

WORKFLOW_RUNS_STARTED = Counter(
    "recruiter_workflow_runs_started",
    "Workflow runs created, by workflow type.",
    ["workflow_type"],
    registry=REGISTRY,
)
WORKFLOW_RUNS_FINISHED = Counter(
    "recruiter_workflow_runs_finished",
    "Workflow runs that reached a final status, by workflow type and status "
    "(succeeded, failed, cancelled, expired).",
    ["workflow_type", "status"],
    registry=REGISTRY,
)
WORKFLOW_STEP_DURATION = Histogram(
    "recruiter_workflow_step_duration_seconds",
    "Time from a step's request to its completion (or timeout), by workflow type, action and "
    "outcome (succeeded, failed, timed_out).",
    ["workflow_type", "action", "outcome"],
    buckets=SLOW_BUCKETS,
    registry=REGISTRY,
)
WORKFLOW_STEP_RETRIES = Counter(
    "recruiter_workflow_step_retries",
    "Failed steps the engine scheduled to try again, by workflow type and state.",
    ["workflow_type", "state"],
    registry=REGISTRY,
)

# --- campaign email ------------------------------------------------------------------------------

EMAIL_SENDS = Counter(
    "recruiter_email_sends",
    "Claimed campaign emails by what the attempt became: sent, bounced, failed, retry (a "
    "temporary failure, tried again later), suppressed (not sent), unbuildable (not sent).",
    ["outcome"],
    registry=REGISTRY,
)
EMAIL_SEND_DURATION = Histogram(
    "recruiter_email_send_duration_seconds",
    "Time one SMTP send took (connection from the pool, exchange), whatever its outcome.",
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

# --- the answer cache and the models ---------------------------------------------------------

ANSWER_CACHE_LOOKUPS = Counter(
    "recruiter_answer_cache_lookups",
    "Answer cache lookups by result (hit, miss); the gateway's and the inference service's.",
    ["result"],
    registry=REGISTRY,
)
MODEL_CALLS = Counter(
    "recruiter_model_calls",
    "Language model calls (each model tried for a request), by model and outcome (ok, error).",
    ["model", "outcome"],
    registry=REGISTRY,
)
MODEL_TOKENS = Counter(
    "recruiter_model_tokens",
    "Tokens the models used, by model and kind (prompt, completion).",
    ["model", "kind"],
    registry=REGISTRY,
)
MODEL_COST = Counter(
    "recruiter_model_cost_usd",
    "What model calls cost in USD (from LLM_PRICES; unpriced models cost 0), by model.",
    ["model"],
    registry=REGISTRY,
)
MODEL_LATENCY = Histogram(
    "recruiter_model_latency_seconds",
    "One model call's latency (a streamed answer: until its end), by model and outcome.",
    ["model", "outcome"],
    buckets=SLOW_BUCKETS,
    registry=REGISTRY,
)


M = TypeVar("M", bound=MetricWrapperBase)


class Children(Generic[M]):
    """The labelled children of `metric`, each looked up in the registry once and then from a
    dict: `Children(COMMANDS).get("intent", "detect_intent", "ok").inc()`. Callers pass bounded
    label values only (route templates, command types, error codes), never free text."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def get(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


def exposition() -> bytes:
    """This process's metrics in the Prometheus text format (CONTENT_TYPE)."""
    return generate_latest(REGISTRY)


class MetricsServer:
    """A service's metrics endpoint (`GET /metrics` and `/`): prometheus-client's HTTP server in
    a daemon thread, serving REGISTRY on `port` of every interface."""

    def __init__(self, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 (containers)
        self.port = port
        self.host = host
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._server, self._thread = start_http_server(self.port, self.host, REGISTRY)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on METRICS_PORT={self.port}: {exc.strerror or exc}"
            ) from exc

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def since(started: float) -> float:
    """Seconds since `started` (a `time.perf_counter()` reading)."""
    return time.perf_counter() - started


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetricsMiddleware:
    """ASGI middleware: every HTTP request counted by method, route template (the matched
    route's `path`, e.g. `/api/campaigns/{campaign_id}`; `<mount>/*` under a mount such as the
    static files; `unmatched` for no route) and status, and timed by method and route. The route
    is read from the scope after the app ran, where the router left it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._requests = Children(HTTP_REQUESTS)
        self._durations = Children(HTTP_DURATION)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started becomes a 500 outside
        answered = False

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start" and not answered:
                status, answered = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = _route_template(scope)
            self._requests.get(method, route, str(status)).inc()
            self._durations.get(method, route).observe(time.perf_counter() - started)


def _route_template(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    mounted = scope.get("app_root_path") is not None and scope.get("root_path")
    return f"{mounted}/*" if mounted else "unmatched"
