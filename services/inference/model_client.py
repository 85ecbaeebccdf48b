"""The language-model adapter: the official `openai` SDK against any OpenAI-compatible
endpoint, with the SDK's own retries and backoff (429, 5xx, timeouts) and fallback models. The
handlers see it as `handlers.LanguageModel`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import cast

import openai
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from services.inference.domain.completions import Attempt, Completion, ModelFailure
from services.inference.domain.prompt import chat_messages
from shared.contracts.inference import ModelRequest, Usage
from shared.settings import Settings

_tracer = trace.get_tracer(__name__)
GEN_AI_SYSTEM = "openai"  # the API the calls speak (any OpenAI-compatible endpoint)


def _model_span(model: str) -> Span:
    """A client span for one model call, with the OpenTelemetry GenAI conventions; not made
    current (no instrumented call happens inside, and a stream yields across it)."""
    return _tracer.start_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": GEN_AI_SYSTEM,
            "gen_ai.request.model": model,
        },
    )


def _end_model_span(
    span: Span, response_model: str | None, usage: Usage | None, error: Exception | None = None
) -> None:
    if response_model:
        span.set_attribute("gen_ai.response.model", response_model)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    if error is not None:
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(StatusCode.ERROR, _describe(error))
    span.end()


def _usage(raw: object) -> Usage:
    if raw is None:
        return Usage()
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    completion = int(getattr(raw, "completion_tokens", 0) or 0)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


class ModelClient:
    def __init__(self, settings: Settings) -> None:
        self._fallbacks = settings.fallback_models
        self._client = openai.AsyncOpenAI(
            base_url=settings.openai_base_url,
            # Local servers (Ollama, llama.cpp, vLLM) take any key; the SDK insists on one.
            api_key=settings.openai_api_key or "not-needed",
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )

    async def close(self) -> None:
        await self._client.close()

    def _candidates(self, request: ModelRequest) -> list[str]:
        return list(dict.fromkeys([request.model, *self._fallbacks]))

    async def complete(self, request: ModelRequest) -> Completion:
        attempts: list[Attempt] = []
        for model in self._candidates(request):
            started = time.perf_counter()
            span = _model_span(model)
            try:
                response = await self._client.chat.completions.create(
                    model=model,
                    messages=_messages(request),
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                    stream=False,
                )
                text = response.choices[0].message.content or ""
            except (openai.APIError, ValueError, IndexError) as exc:
                _end_model_span(span, None, None, exc)
                attempts.append(Attempt(model, _ms(started), error=_describe(exc)))
                _raise_if_final(exc, attempts)
                continue
            except BaseException:
                span.end()
                raise
            usage = _usage(response.usage)
            _end_model_span(span, getattr(response, "model", None) or model, usage)
            attempts.append(Attempt(model, _ms(started), usage))
            return Completion(text, model, usage, attempts)
        raise _exhausted(attempts)

    async def stream(self, request: ModelRequest) -> AsyncIterator[str | Completion]:
        """Yield the answer's text pieces as they arrive, then the Completion. A fallback is
        tried only while nothing has been yielded."""
        attempts: list[Attempt] = []
        for model in self._candidates(request):
            started = time.perf_counter()
            pieces: list[str] = []
            usage = Usage()
            response_model: str | None = None
            span = _model_span(model)
            try:
                chunks = await self._client.chat.completions.create(
                    model=model,
                    messages=_messages(request),
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in chunks:
                    response_model = response_model or getattr(chunk, "model", None)
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    if chunk.choices and chunk.choices[0].delta.content:
                        pieces.append(chunk.choices[0].delta.content)
                        yield chunk.choices[0].delta.content
            except (openai.APIError, ValueError, IndexError) as exc:
                _end_model_span(span, response_model, None, exc)
                attempts.append(Attempt(model, _ms(started), error=_describe(exc)))
                if pieces:
                    raise ModelFailure(
                        "unavailable", f"{model} failed in the middle of its answer", attempts
                    ) from exc
                _raise_if_final(exc, attempts)
                continue
            except BaseException:  # cancelled, or the caller stopped reading
                span.end()
                raise
            _end_model_span(span, response_model or model, usage)
            attempts.append(Attempt(model, _ms(started), usage))
            yield Completion("".join(pieces), model, usage, attempts)
            return
        raise _exhausted(attempts)


def _messages(request: ModelRequest) -> list[ChatCompletionMessageParam]:
    return cast("list[ChatCompletionMessageParam]", chat_messages(request))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _raise_if_final(exc: Exception, attempts: list[Attempt]) -> None:
    """A request the endpoint refuses as invalid fails the same on every model: stop there."""
    if isinstance(exc, openai.BadRequestError | openai.AuthenticationError):
        code = "invalid_input" if isinstance(exc, openai.BadRequestError) else "unavailable"
        raise ModelFailure(code, _describe(exc), attempts) from exc


def _exhausted(attempts: list[Attempt]) -> ModelFailure:
    tried = "; ".join(f"{a.model}: {a.error}" for a in attempts)
    timed_out = bool(attempts) and "Timeout" in (attempts[-1].error or "")
    code = "timeout" if timed_out else "unavailable"
    return ModelFailure(code, f"no model answered ({tried})", attempts)
