"""A controllable OpenAI-compatible chat-completions server for tests.

It runs uvicorn in a daemon thread of the pytest process, so a test scripts it directly while the
service under test (another process) reaches it over real HTTP at `fake.base_url`:

    with FakeLLM() as fake:
        fake.script(Behaviour(kind="error", status=429), Behaviour(text="Hello"))
        env["OPENAI_BASE_URL"] = fake.base_url

A request gets the next behaviour scripted for its model, else the `always` one for its model, else
the next one scripted for any model, else the `always` one for any model, else the default answer:
"answer to: <last user message>". Errors that the SDK retries (408, 409, 429, >= 500) carry
`retry-after-ms: 10`, so retries take milliseconds. Waits ("slow", "hang", per-chunk delays) end
early when the client disconnects or the server stops, so `stop()` is quick.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

HANG_LIMIT = 60.0
DEFAULT_MODELS = ("fake-model", "gpt-4o", "gpt-4o-mini")
_ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass
class Behaviour:
    """What the server does for one request."""

    kind: Literal["answer", "error", "slow", "malformed", "hang"] = "answer"
    text: str | None = None  # the answer (or error message); default: echo of last user message
    status: int = 200  # HTTP status for kind="error"
    delay: float = 0.0  # seconds before answering (kind="slow"); in streams also between chunks
    prompt_tokens: int | None = None  # default: words in the request's messages
    completion_tokens: int | None = None  # default: words in the answer


@dataclass(frozen=True)
class ReceivedCall:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    params: dict[str, Any]  # everything else in the request body: temperature, max_tokens, ...
    authorization: str | None


def _words(value: Any) -> int:
    return len((value if isinstance(value, str) else json.dumps(value)).split())


def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    kind, default_code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    error = {"message": message, "type": kind, "param": None, "code": code or default_code}
    retryable = status in (408, 409, 429) or status >= 500
    return JSONResponse(
        {"error": error}, status, headers={"retry-after-ms": "10"} if retryable else None
    )


class FakeLLM:
    def __init__(self) -> None:
        self.calls: list[ReceivedCall] = []
        self.known_models: set[str] | None = None
        self.base_url = ""
        self._lock = threading.Lock()
        self._queues: dict[str | None, deque[Behaviour]] = {}
        self._always: dict[str | None, Behaviour] = {}
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.app = FastAPI()
        self.app.add_api_route("/v1/chat/completions", self._chat, methods=["POST"])
        self.app.add_api_route("/v1/models", self._models, methods=["GET"])

    # -- control, from the test's thread ---------------------------------------------------------

    def start(self) -> FakeLLM:
        self._stopping.clear()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        config.timeout_graceful_shutdown = 2
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake LLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self, model: str) -> dict[str, str]:
        """The settings that make a service (or the gateway) use this server as its only model:
        one attempt, a 5 s timeout."""
        return {
            "OPENAI_BASE_URL": self.base_url,
            "OPENAI_API_KEY": "test-key",
            "LLM_MODEL": model,
            "LLM_TIMEOUT_SECONDS": "5",
            "LLM_MAX_RETRIES": "0",
        }

    def script(self, *behaviours: Behaviour, model: str | None = None) -> None:
        with self._lock:
            self._queues.setdefault(model, deque()).extend(behaviours)

    def always(self, behaviour: Behaviour, model: str | None = None) -> None:
        with self._lock:
            self._always[model] = behaviour

    def reset(self) -> None:
        """Forget scripts, `always` behaviours, received calls and `known_models`."""
        with self._lock:
            self._queues.clear()
            self._always.clear()
            self.calls.clear()
            self.known_models = None

    def calls_for(self, model: str) -> list[ReceivedCall]:
        with self._lock:
            return [call for call in self.calls if call.model == model]

    def _next(self, model: str) -> Behaviour:
        with self._lock:
            for key in (model, None):
                if queue := self._queues.get(key):
                    return queue.popleft()
                if key in self._always:
                    return self._always[key]
        return Behaviour()

    # -- the server, in its own thread -----------------------------------------------------------

    async def _pause(self, seconds: float, request: Request) -> None:
        """Wait `seconds`, or less if the client disconnects or the server stops."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            if await request.is_disconnected():
                return
            await asyncio.sleep(min(left, 0.05))

    async def _models(self) -> JSONResponse:
        models = sorted(self.known_models if self.known_models is not None else DEFAULT_MODELS)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake-llm"} for m in models]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        try:
            body = dict(await request.json())
        except (TypeError, ValueError):
            return _error(400, "The request body is not a JSON object.")
        model, messages = str(body.pop("model", "")), list(body.pop("messages", []))
        stream = bool(body.pop("stream", False))
        call = ReceivedCall(model, messages, stream, body, request.headers.get("authorization"))
        with self._lock:
            self.calls.append(call)
        if self.known_models is not None and model not in self.known_models:
            return _error(404, f"The model `{model}` does not exist.", "model_not_found")

        behaviour = self._next(model)
        if behaviour.kind == "hang":
            await self._pause(HANG_LIMIT, request)
            return _error(504, "The fake LLM hung up.")
        if behaviour.kind == "slow":
            await self._pause(behaviour.delay, request)
        if behaviour.kind == "error":
            return _error(behaviour.status, behaviour.text or f"Fake error {behaviour.status}.")
        if behaviour.kind == "malformed":
            if stream:
                garbage = "data: {not json at all\n\ndata: [DONE]\n\n"
                return Response(garbage, media_type="text/event-stream")
            return Response('{"id": "chatcmpl-broken", "choices": [', media_type="application/json")

        dicts = [m for m in messages if isinstance(m, dict)]
        users = [m for m in dicts if m.get("role") == "user"]
        last_user: dict[str, Any] = users[-1] if users else {}
        text = behaviour.text
        text = text if text is not None else f"answer to: {last_user.get('content', '')}"
        prompt = behaviour.prompt_tokens
        prompt = prompt if prompt is not None else sum(_words(m.get("content")) for m in dicts)
        completion = behaviour.completion_tokens
        completion = completion if completion is not None else _words(text)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        usage["total_tokens"] = prompt + completion
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._chunks(head, text, usage if include_usage else None)
            return StreamingResponse(
                self._paced(events, behaviour.delay, request), media_type="text/event-stream"
            )
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return JSONResponse(
            {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    @staticmethod
    def _chunks(head: dict[str, Any], text: str, usage: dict[str, int] | None) -> list[str]:
        """The SSE events of a streamed answer: one chunk per word, then "stop", usage, [DONE]."""

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
            return f"data: {json.dumps(chunk)}\n\n"

        events = []
        for i, piece in enumerate(re.split(r"(?<=\s)(?=\S)", text)):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            events.append(event([{"index": 0, "delta": delta, "finish_reason": None}]))
        events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if usage is not None:
            events.append(event([], usage=usage))
        return [*events, "data: [DONE]\n\n"]

    async def _paced(self, events: list[str], delay: float, request: Request) -> AsyncIterator[str]:
        for i, event in enumerate(events):
            if i and delay:
                await self._pause(delay, request)
            yield event
