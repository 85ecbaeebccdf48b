"""The `infer` command handler and the answering behind it: an answer comes from the cache, from an
identical call already in flight (in this process, or in another through the cache's lock), or
from the models, and is then cached. Its dependencies are small interfaces, so tests pass fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Protocol

from services.inference.domain.answers import Outcome, reads_cache, writes_cache
from services.inference.domain.completions import Attempt, Completion, ModelFailure
from services.inference.domain.cost import Prices, cost_of
from shared.contracts.inference import (
    NOT_CONFIGURED,
    CachedAnswer,
    InferCommand,
    ModelRequest,
    replay_pieces,
)
from shared.errors import Refused
from shared.metrics import MODEL_CALLS, MODEL_COST, MODEL_LATENCY, MODEL_TOKENS, Children

SendDelta = Callable[[str], Awaitable[None]]
_calls = Children(MODEL_CALLS)
_tokens = Children(MODEL_TOKENS)
_cost = Children(MODEL_COST)
_latency = Children(MODEL_LATENCY)


class LanguageModel(Protocol):
    """The models (`model_client.ModelClient`): raise `ModelFailure` when none answers."""

    async def complete(self, request: ModelRequest) -> Completion: ...

    def stream(self, request: ModelRequest) -> AsyncIterator[str | Completion]:
        """The answer's text pieces as they arrive, then its Completion."""
        ...


class AnswerStore(Protocol):
    """The shared answer cache with its single-flight lock (`shared.answer_cache.AnswerCache`)."""

    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer) -> None: ...

    async def try_lock(self, key: str, seconds: float) -> str | None: ...

    async def unlock(self, key: str, token: str) -> None: ...

    async def wait(self, key: str, timeout: float) -> CachedAnswer | None: ...


class CallLog(Protocol):
    """Token accounting (`repository.ModelCallLog`)."""

    async def record(self, command: InferCommand, attempts: list[Attempt]) -> None: ...


async def replay(answer: CachedAnswer, send: SendDelta | None) -> None:
    if send is not None:
        for piece in replay_pieces(answer.answer):
            await send(piece)


class Answerer:
    """Answers requests, calling the models at most once for concurrent identical ones."""

    def __init__(
        self,
        models: LanguageModel,
        cache: AnswerStore,
        calls: CallLog,
        prices: Prices,
        flight_seconds: float,
    ) -> None:
        self._models = models
        self._cache = cache
        self._calls = calls
        self._prices = prices
        self._flight_seconds = flight_seconds
        self._inflight: dict[str, asyncio.Future[CachedAnswer]] = {}

    async def answer(self, command: InferCommand, send: SendDelta | None = None) -> Outcome:
        key = command.request.cache_key()
        if not reads_cache(command.cache):
            outcome = await self._call(command, send)
            if writes_cache(command.cache):
                await self._cache.put(key, outcome.answer)
            return outcome

        hit = await self._cache.get(key)
        if hit is None and key in self._inflight:
            hit = await asyncio.shield(self._inflight[key])
        if hit is not None:
            await replay(hit, send)
            return Outcome.from_cache(hit)

        flight: asyncio.Future[CachedAnswer] = asyncio.get_running_loop().create_future()
        flight.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen, if unawaited
        self._inflight[key] = flight
        try:
            outcome = await self._lead(command, key, send)
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            flight.set_result(outcome.answer)
            return outcome
        finally:
            del self._inflight[key]

    async def _lead(self, command: InferCommand, key: str, send: SendDelta | None) -> Outcome:
        token = await self._cache.try_lock(key, self._flight_seconds)
        if token is None:  # another process is calling the model for the same request
            answer = await self._cache.wait(key, self._flight_seconds)
            if answer is not None:
                await replay(answer, send)
                return Outcome.from_cache(answer)
            token = await self._cache.try_lock(key, self._flight_seconds)  # it failed: our turn
        try:
            outcome = await self._call(command, send)
            await self._cache.put(key, outcome.answer)
            return outcome
        finally:
            if token is not None:
                await self._cache.unlock(key, token)

    async def _call(self, command: InferCommand, send: SendDelta | None) -> Outcome:
        try:
            completion = await self._completion(command, send)
        except ModelFailure as failure:
            observe_attempts(failure.attempts, self._prices)
            await self._calls.record(command, failure.attempts)
            raise
        observe_attempts(completion.attempts, self._prices)
        await self._calls.record(command, completion.attempts)
        return Outcome.from_model(completion, self._prices)

    async def _completion(self, command: InferCommand, send: SendDelta | None) -> Completion:
        if send is None:
            return await self._models.complete(command.request)
        async for piece in self._models.stream(command.request):
            if isinstance(piece, Completion):
                return piece
            await send(piece)
        raise AssertionError("a model stream ends with its Completion")


def observe_attempts(attempts: list[Attempt], prices: Prices) -> None:
    """The metrics of the models tried for one request: calls, latency, tokens and cost."""
    for attempt in attempts:
        model, usage = attempt.model, attempt.usage
        outcome = "ok" if attempt.error is None else "error"
        _calls.get(model, outcome).inc()
        _latency.get(model, outcome).observe(attempt.latency_ms / 1000)
        if usage.prompt_tokens:
            _tokens.get(model, "prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            _tokens.get(model, "completion").inc(usage.completion_tokens)
        cost = cost_of(model, usage, prices)
        if cost:
            _cost.get(model).inc(cost)


@dataclass(frozen=True)
class Dependencies:
    """What the handler needs, built once at startup (`app.build_dependencies`, or fakes)."""

    answerer: Answerer
    llm_configured: bool
    resources: AsyncExitStack = field(default_factory=AsyncExitStack)  # closed at shutdown


async def infer(command: InferCommand, deps: Dependencies, send: SendDelta | None) -> Outcome:
    """Answer one `infer` command; with `send`, stream the answer's pieces before returning."""
    if not deps.llm_configured:
        raise Refused(NOT_CONFIGURED, code="not_configured")
    try:
        return await deps.answerer.answer(command, send)
    except ModelFailure as failure:
        raise Refused(str(failure), code=failure.reply_code) from failure
