"""Answer one request: from the cache, by joining an identical call already in flight (in this
process, or in another through a Redis lock), or by calling the model and caching its answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from services.inference import repository
from services.inference.models import Completion, ModelClient, ModelFailure
from shared.answer_cache import AnswerCache
from shared.inference import CachedAnswer, InferCommand, cost_of, replay_pieces
from shared.settings import Settings

SendDelta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    answer: CachedAnswer
    cached: bool
    cost: float


async def replay(answer: CachedAnswer, send: SendDelta | None) -> None:
    if send is not None:
        for piece in replay_pieces(answer.answer):
            await send(piece)


class Answerer:
    def __init__(
        self, models: ModelClient, cache: AnswerCache, pool: asyncpg.Pool, settings: Settings
    ) -> None:
        self._models = models
        self._cache = cache
        self._pool = pool
        self._prices = settings.llm_prices
        self._flight_seconds = settings.inference_timeout_seconds
        self._inflight: dict[str, asyncio.Future[CachedAnswer]] = {}

    async def answer(self, command: InferCommand, send: SendDelta | None = None) -> Outcome:
        key = command.request.cache_key()
        if command.cache != "default":
            outcome = await self._call(command, send)
            if command.cache == "refresh":
                await self._cache.put(key, outcome.answer)
            return outcome

        hit = await self._cache.get(key)
        if hit is None and key in self._inflight:
            hit = await asyncio.shield(self._inflight[key])
        if hit is not None:
            await replay(hit, send)
            return Outcome(hit, cached=True, cost=0.0)

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
                return Outcome(answer, cached=True, cost=0.0)
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
            await repository.record_attempts(self._pool, command, failure.attempts, self._prices)
            raise
        await repository.record_attempts(self._pool, command, completion.attempts, self._prices)
        answer = CachedAnswer(
            answer=completion.text, model=completion.model, usage=completion.usage
        )
        cost = sum(cost_of(a.model, a.usage, self._prices) for a in completion.attempts)
        return Outcome(answer, cached=False, cost=round(cost, 8))

    async def _completion(self, command: InferCommand, send: SendDelta | None) -> Completion:
        if send is None:
            return await self._models.complete(command.request)
        async for piece in self._models.stream(command.request):
            if isinstance(piece, Completion):
                return piece
            await send(piece)
        raise AssertionError("a model stream ends with its Completion")
