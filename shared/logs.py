"""Log output for every process: one JSON object a line (LOG_FORMAT=json, the default) or the
plain text developers read (LOG_FORMAT=text, which `make run` sets).

A JSON line carries the time (UTC, ISO 8601), level, logger, message, this process's service and
instance, the trace_id and span_id of the OpenTelemetry span current when the record was logged
(hex, as trace backends show them), the exception's text, and any `extra=` fields (FastStream adds
topic, group_id and message_id; the gateway's access log adds method, path, status and
duration_ms). Only the standard library: `logging` and `json`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from shared.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=` (or a filter).
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's ANSI copy of the message
)
_OURS = "_recruiter_log_handler"  # marks the handlers `configure_logging` installed


class _Identity:
    service = ""
    instance = ""


def set_identity(service: str, instance: str) -> None:
    """Name this process in every JSON line (`shared.telemetry.setup_tracing` calls it)."""
    _Identity.service, _Identity.instance = service, instance


def _main_service() -> str:
    """`services.intent` for `python -m services.intent`, until `set_identity` says better."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", "") or ""
    name = name.removesuffix(".__main__")
    return name.split(".")[1] if name.startswith("services.") and "." in name else name


def trace_ids() -> tuple[str | None, str | None]:
    """The current span's trace and span ids in hex, or (None, None) outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback is a string field, not more lines)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": _Identity.service or _main_service(),
            "instance": _Identity.instance or None,
        }
        trace_id, span_id = trace_ids()
        # A record formatted away from where it was logged (a queue handler) may carry its own.
        entry["trace_id"] = getattr(record, "trace_id", None) or trace_id
        entry["span_id"] = getattr(record, "span_id", None) or span_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(
            {k: v for k, v in entry.items() if v is not None and v != ""},
            default=str,
            ensure_ascii=False,
        )


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def _handler(stream: Any, log_format: str) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format))
    setattr(handler, _OURS, True)
    return handler


def configure_logging(settings: Settings) -> None:
    """Log at LOG_LEVEL in LOG_FORMAT to stderr. Safe to call again (it replaces its handler).

    With JSON, FastStream's own loggers (which do not propagate and print colourized text) get
    the JSON formatter too: its app logger ("... started successfully") on stderr, and its broker
    logger on stdout, installed before FastStream creates it, so that it keeps ours."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
    root.addHandler(_handler(sys.stderr, settings.log_format))
    root.setLevel(settings.log_level.upper())
    if settings.log_format != "json":
        return
    for name, stream in (("faststream", sys.stderr), ("faststream.access.kafka", sys.stdout)):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler):
                logger.removeHandler(handler)
        logger.addHandler(_handler(stream, "json"))


# --- The gateway's access log ------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("services.gateway.access")
QUIET_PATHS = frozenset({"/healthz", "/readyz"})  # probes: at DEBUG unless they fail


class AccessLogMiddleware:
    """One line per HTTP request once its response is done: method, path, status, duration_ms
    and the client, inside the request's span (so the line has its trace_id). A request whose
    handler raised is logged as a 500 before the error goes on to the error handlers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self._log(scope, status, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _log(scope: Scope, status: int, duration_ms: float) -> None:
        path = scope.get("path", "")
        quiet = path in QUIET_PATHS and status < 400
        level = logging.DEBUG if quiet else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        client = scope.get("client")
        method = scope.get("method", "")
        access_log.log(
            level,
            "%s %s %d %.1f ms",
            method,
            path,
            status,
            duration_ms,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 2),
                "client": f"{client[0]}:{client[1]}" if client else None,
            },
        )
