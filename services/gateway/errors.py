"""How the gateway turns bad requests and service errors into clear HTTP answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.contracts.common import Reply
from shared.rpc import ServiceTimeout

MAX_BODY_BYTES = 64 * 1024

_STATUS_BY_CODE = {
    "invalid_input": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "unknown_workflow_type": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "not_found": status.HTTP_404_NOT_FOUND,
    "conflict": status.HTTP_409_CONFLICT,
    "unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    "not_configured": status.HTTP_503_SERVICE_UNAVAILABLE,
    "model_unavailable": status.HTTP_502_BAD_GATEWAY,
    "model_timeout": status.HTTP_504_GATEWAY_TIMEOUT,
}


class FieldProblem(BaseModel):
    field: str = Field(..., examples=["message"])
    message: str = Field(..., examples=["must not be empty"])


class ErrorBody(BaseModel):
    """Every error the gateway answers with: what went wrong, said for a person; a request that
    does not fit its schema also lists each field's problem."""

    detail: str = Field(..., examples=["message: must not be empty"])
    errors: list[FieldProblem] | None = None


_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "No API key, or one that is not valid (see `WWW-Authenticate`)",
    403: "The API key lacks the route's scope",
    413: f"The body is over {MAX_BODY_BYTES} bytes",
    422: "A field is missing or not valid, or text holds a NUL character",
    429: "Over a rate limit or the open-stream limit (see `Retry-After` and `RateLimit-*`)",
    504: "A service (or the gateway, HTTP_REQUEST_TIMEOUT_SECONDS) did not answer in time",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the gateway's error body."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


# What every route behind an API key may answer besides its own errors.
API_ERRORS = error_responses(400, 401, 403, 413, 422, 429, 504)


def http_error(reply: Reply, service: str) -> HTTPException:
    """The HTTP error a failed reply's code stands for."""
    error = reply.error
    code = error.code if error else "error"
    message = error.message if error else f"the {service} service failed"
    return HTTPException(_STATUS_BY_CODE.get(code, status.HTTP_502_BAD_GATEWAY), detail=message)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


TOO_LARGE = f"request body too large: at most {MAX_BODY_BYTES} bytes"


NUL_TEXT = "text must not contain the NUL character (U+0000)"


def has_nul(data: bytes) -> bool:
    """Whether a JSON text holds a NUL: raw, or as the escape \\u0000 (not an escaped backslash
    followed by "u0000"). PostgreSQL cannot store it in text, so it is refused at the door."""
    if b"\x00" in data:
        return True
    start = data.find(b"u0000")
    while start > 0:
        backslashes = len(data[:start]) - len(data[:start].rstrip(b"\\"))
        if backslashes % 2 == 1:
            return True
        start = data.find(b"u0000", start + 1)
    return False


class BodySizeLimit:
    """Refuse bodies over MAX_BODY_BYTES with 413 (pure ASGI): at once when Content-Length says
    so, and while reading otherwise (a chunked body is counted as it arrives, never read whole).
    A body or query string with a NUL character is a 422, checked the same way."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            response = JSONResponse(
                status_code=status.HTTP_413_CONTENT_TOO_LARGE, content={"detail": TOO_LARGE}
            )
            await response(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b""):
            response = JSONResponse(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": NUL_TEXT}
            )
            await response(scope, receive, send)
            return
        received = 0
        tail = b""  # the end of the last chunk: an escape may straddle two chunks

        async def counted() -> Message:
            nonlocal received, tail
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                # FastAPI passes an HTTPException from reading the body on as it is.
                if received > MAX_BODY_BYTES:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=TOO_LARGE)
                if has_nul(tail + body):
                    raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=NUL_TEXT)
                tail = (tail + body)[-64:]
            return message

        await self.app(scope, counted, send)


def install(app: FastAPI) -> None:
    app.add_middleware(BodySizeLimit)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(
                status_code=status.HTTP_400_BAD_REQUEST,
                content={"detail": "request body is not valid JSON"},
            )
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={
                "detail": "; ".join(_describe(e) for e in errors),
                "errors": [
                    {"field": _describe(e).split(":")[0], "message": e["msg"]} for e in errors
                ],
            },
        )

    @app.exception_handler(ServiceTimeout)
    async def on_timeout(request: Request, exc: ServiceTimeout) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_504_GATEWAY_TIMEOUT, content={"detail": str(exc)}
        )
