"""Simple mode: POST /api/ai-assistant/inference. Cache hits are served here from Redis, without
a Kafka round trip; misses go to the inference service, which calls the model."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from services.gateway.api_keys import Principal
from services.gateway.auth import require
from services.gateway.errors import API_ERRORS, http_error
from services.gateway.services import Client, ask
from services.gateway.sse import Events, reserved, sse_response
from shared.answer_cache import AnswerCache
from shared.contracts.common import Reply
from shared.contracts.inference import (
    NOT_CONFIGURED,
    CachedAnswer,
    CacheMode,
    ChatMessage,
    InferCommand,
    InferenceResult,
    ModelRequest,
    estimate_tokens,
    replay_pieces,
)
from shared.rpc import ServiceClient, ServiceTimeout
from shared.settings import Settings

router = APIRouter(prefix="/api/ai-assistant", tags=["assistant"], responses=API_ERRORS)


class InferenceRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"message": "What is a good reply rate for outreach?"}]},
    )

    message: StrictStr | None = Field(None, max_length=100_000, description="One user message.")
    messages: list[ChatMessage] | None = Field(
        None, min_length=1, max_length=100, description="A conversation, oldest first."
    )
    conversation_id: StrictStr | None = Field(None, min_length=1, max_length=128)
    model: StrictStr | None = Field(
        None, description="One of LLM_ALLOWED_MODELS; default LLM_MODEL."
    )
    temperature: StrictFloat | StrictInt | None = Field(None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(None, ge=1, description="At most LLM_MAX_TOKENS.")
    stream: StrictBool = Field(False, description="Server-Sent Events: `delta`, then `done`.")
    cache: CacheMode = Field(
        "default", description="`bypass`: no read, no write; `refresh`: no read, overwrite."
    )

    @model_validator(mode="after")
    def _one_conversation(self) -> InferenceRequest:
        if (self.message is None) == (self.messages is None):
            raise ValueError("send either `message` or `messages`, not both and not neither")
        if self.message is not None and not self.message.strip():
            raise ValueError("`message` must not be empty or only whitespace")
        if self.messages is not None:
            if any(not m.content.strip() for m in self.messages):
                raise ValueError("no message in `messages` may be empty or only whitespace")
            if not any(m.role == "user" for m in self.messages):
                raise ValueError("`messages` needs at least one message with role `user`")
        return self

    def conversation(self) -> list[ChatMessage]:
        if self.messages is not None:
            return self.messages
        return [ChatMessage(role="user", content=self.message or "")]


def model_request(body: InferenceRequest, settings: Settings) -> ModelRequest:
    """Resolve defaults and check limits; every refusal here happens before any model call."""
    if not settings.llm_configured:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=NOT_CONFIGURED)
    model = body.model or settings.llm_model or ""
    if model not in settings.allowed_models:
        allowed = ", ".join(settings.allowed_models)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"model: unknown model {model!r}; allowed: {allowed} (LLM_ALLOWED_MODELS)",
        )
    max_tokens = body.max_tokens or settings.llm_max_tokens
    if max_tokens > settings.llm_max_tokens:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"max_tokens: at most {settings.llm_max_tokens} (LLM_MAX_TOKENS)",
        )
    conversation = body.conversation()
    tokens = estimate_tokens(conversation)
    if tokens > settings.llm_max_input_tokens:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"messages: about {tokens} tokens, more than the limit of "
            f"{settings.llm_max_input_tokens} (LLM_MAX_INPUT_TOKENS)",
        )
    temperature = settings.llm_temperature if body.temperature is None else body.temperature
    return ModelRequest.build(conversation, model, float(temperature), max_tokens)


def _result(data: dict[str, Any], started: float) -> InferenceResult:
    latency = round((time.perf_counter() - started) * 1000, 3)
    return InferenceResult.model_validate({**data, "latency_ms": latency})


def _from_cache(hit: CachedAnswer) -> dict[str, Any]:
    return {**hit.model_dump(mode="json"), "cost": 0.0, "cached": True}


@router.post(
    "/inference",
    summary="Answer a question from a language model (simple mode), cached in Redis",
    responses={
        200: {"description": "The answer; with `stream: true`, Server-Sent Events"},
        422: {"description": "Bad input: empty, too long, unknown model, wrong types"},
        502: {"description": "No model answered (after retries and fallbacks)"},
        503: {"description": "No model is configured"},
        504: {"description": "The model did not answer in time"},
    },
)
async def infer(
    body: InferenceRequest,
    request: Request,
    client: Client,
    principal: Annotated[Principal, Depends(require("assistant"))],
) -> Any:
    async with reserved(request, principal, wanted=body.stream) as slot:  # a stream's place
        answered = await answer(body, request, client, principal.user)
    if isinstance(answered, InferenceResult):
        return answered
    return sse_response(answered, slot)


async def answer(
    body: InferenceRequest, request: Request, client: ServiceClient, user: str
) -> InferenceResult | Events:
    """The model's answer (from the cache when it can be), or with `body.stream` its events:
    `delta`s, then `done` with the result or `error`. Refusals (no model, bad limits) and an
    error before the first token raise the HTTP error instead."""
    started = time.perf_counter()
    settings: Settings = request.app.state.settings
    cache: AnswerCache = request.app.state.answer_cache
    model_req = model_request(body, settings)

    if body.cache == "default" and settings.gateway_serves_cache_hits:
        hit = await cache.get(model_req.cache_key())
        if hit is not None:
            if body.stream:
                return _replayed(hit, started)
            return _result(_from_cache(hit), started)

    command = InferCommand(
        request=model_req,
        cache=body.cache,
        stream=body.stream,
        conversation_id=body.conversation_id,
        requested_by=user,
    )
    timeout = settings.inference_timeout_seconds
    if not body.stream:
        return _result(await ask(client, "inference", command, timeout=timeout), started)

    replies = client.stream("inference", command, timeout=timeout)
    first = await anext(replies)  # an error before the first token is a plain HTTP error
    if not first.ok:
        await replies.aclose()
        raise http_error(first, "inference")
    return _relayed(first, replies, started)


async def _replayed(hit: CachedAnswer, started: float) -> Events:
    for piece in replay_pieces(hit.answer):
        yield "delta", {"text": piece}
    yield "done", _result(_from_cache(hit), started).model_dump(mode="json")


async def _relayed(first: Reply, rest: AsyncGenerator[Reply, None], started: float) -> Events:
    """The service's replies as events: `delta`s, then `done` or `error`. Closing this stops
    waiting for the service's replies (the client went away mid-stream)."""
    async with contextlib.aclosing(rest):
        reply = first
        while True:
            if not reply.ok:
                error = http_error(reply, "inference")
                yield "error", {"status": error.status_code, "detail": error.detail}
                return
            if not reply.partial:
                yield "done", _result(reply.data, started).model_dump(mode="json")
                return
            yield "delta", {"text": reply.data.get("delta", "")}
            try:
                reply = await anext(rest)
            except ServiceTimeout as exc:
                yield "error", {"status": 504, "detail": str(exc)}
                return
