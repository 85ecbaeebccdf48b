"""How the inference service answers, with a fake model and an in-memory cache: from the cache, by
joining an identical call in flight (here or in another process), or from the model; what each
cache mode reads and writes; streaming; token accounting; and refusals as the reply carries them."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator

import pytest

from services.inference.domain.completions import Attempt, Completion, ModelFailure
from services.inference.handlers import Answerer, Dependencies, infer
from shared.contracts.inference import (
    NOT_CONFIGURED,
    CachedAnswer,
    CacheMode,
    ChatMessage,
    InferCommand,
    ModelRequest,
    Usage,
    replay_pieces,
)
from shared.errors import Refused

PRICES = {"model-a": (1.0, 2.0)}
USAGE = Usage(prompt_tokens=30, completion_tokens=6, total_tokens=36)
COST = (30 * 1.0 + 6 * 2.0) / 1_000_000
STALE = CachedAnswer(answer="a stale answer", model="model-a", usage=USAGE)


class FakeModel:
    """Answers each call with the next scripted text or failure; while `release` is clear, calls
    wait in the model (a slow model)."""

    def __init__(self, *script: str | ModelFailure) -> None:
        self.script = deque(script)
        self.requests: list[ModelRequest] = []
        self.release = asyncio.Event()
        self.release.set()

    async def _next(self, request: ModelRequest) -> Completion:
        self.requests.append(request)
        await self.release.wait()
        result = self.script.popleft() if self.script else "an answer"
        if isinstance(result, ModelFailure):
            raise result
        return Completion(result, "model-a", USAGE, [Attempt("model-a", 1.0, USAGE)])

    async def complete(self, request: ModelRequest) -> Completion:
        return await self._next(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[str | Completion]:
        completion = await self._next(request)
        for piece in re.findall(r"\S+\s*", completion.text):
            yield piece
        yield completion


class MemoryCache:
    """The answer cache and its lock in memory, with what was asked of it."""

    def __init__(self) -> None:
        self.answers: dict[str, CachedAnswer] = {}
        self.locks: dict[str, str] = {}
        self.reads = 0
        self.waiting = asyncio.Event()
        self._changed = asyncio.Condition()

    async def get(self, key: str) -> CachedAnswer | None:
        self.reads += 1
        await self._notify()
        return self.answers.get(key)

    async def put(self, key: str, answer: CachedAnswer) -> None:
        self.answers[key] = answer
        await self._notify()

    async def try_lock(self, key: str, seconds: float) -> str | None:
        if key in self.locks:
            return None
        self.locks[key] = uuid.uuid4().hex
        return self.locks[key]

    async def unlock(self, key: str, token: str) -> None:
        if self.locks.get(key) == token:
            del self.locks[key]
        await self._notify()

    async def wait(self, key: str, timeout: float) -> CachedAnswer | None:
        self.waiting.set()
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: key in self.answers or key not in self.locks),
                    timeout,
                )
            except TimeoutError:
                return None
        return self.answers.get(key)

    async def read(self, times: int) -> None:
        """Return once `get` was called `times` times."""
        async with asyncio.timeout(2), self._changed:
            await self._changed.wait_for(lambda: self.reads >= times)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


class MemoryCallLog:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, list[Attempt]]] = []

    async def record(self, command: InferCommand, attempts: list[Attempt]) -> None:
        self.recorded.append((command.correlation_id, attempts))


def command(text: str = "What is a good reply rate?", cache: CacheMode = "default") -> InferCommand:
    request = ModelRequest.build([ChatMessage(role="user", content=text)], "model-a", 0.2, 64)
    return InferCommand(request=request, cache=cache)


def answerer(model: FakeModel, cache: MemoryCache, calls: MemoryCallLog | None = None) -> Answerer:
    return Answerer(model, cache, calls or MemoryCallLog(), PRICES, flight_seconds=5.0)


def failure(code: str = "unavailable") -> ModelFailure:
    attempts = [Attempt("model-a", 3.0, error="HTTP 500: down")]
    return ModelFailure(code, "no model answered (model-a: HTTP 500: down)", attempts)


async def test_a_miss_asks_the_model_and_caches_its_answer_for_the_next() -> None:
    model, cache, calls = FakeModel("About 5 to 10 percent."), MemoryCache(), MemoryCallLog()
    answering = answerer(model, cache, calls)
    first = await answering.answer(command())
    second = await answering.answer(command("  What is a good   reply rate?\n"))
    assert first.answer == second.answer == cache.answers[command().request.cache_key()]
    assert first.answer.answer == "About 5 to 10 percent."
    assert first.cached is False
    assert first.cost == pytest.approx(COST)
    assert (second.cached, second.cost) == (True, 0.0)
    assert len(model.requests) == 1
    assert [attempts for _, attempts in calls.recorded] == [[Attempt("model-a", 1.0, USAGE)]]
    assert cache.locks == {}


@pytest.mark.parametrize(
    ("mode", "cached_after"),
    [("bypass", "a stale answer"), ("refresh", "fresh")],  # neither reads; only refresh writes
)
async def test_bypass_and_refresh_ask_the_model_even_on_a_hit(
    mode: CacheMode, cached_after: str
) -> None:
    model, cache = FakeModel("fresh"), MemoryCache()
    key = command().request.cache_key()
    cache.answers[key] = STALE
    outcome = await answerer(model, cache).answer(command(cache=mode))
    assert (outcome.answer.answer, outcome.cached) == ("fresh", False)
    assert cache.answers[key].answer == cached_after


async def test_concurrent_identical_misses_in_one_process_share_one_model_call() -> None:
    model, cache = FakeModel("one answer"), MemoryCache()
    model.release.clear()
    answering = answerer(model, cache)
    tasks = [asyncio.create_task(answering.answer(command())) for _ in range(5)]
    await cache.read(5)  # every one missed the cache
    model.release.set()
    outcomes = await asyncio.gather(*tasks)
    assert {o.answer.answer for o in outcomes} == {"one answer"}
    assert sorted(o.cached for o in outcomes) == [False, True, True, True, True]
    assert sum(o.cost for o in outcomes) == pytest.approx(COST)
    assert len(model.requests) == 1
    assert not cache.waiting.is_set()  # they joined the call in this process, not the cache lock


async def test_a_failed_call_fails_everyone_who_joined_it() -> None:
    model, cache, calls = FakeModel(failure()), MemoryCache(), MemoryCallLog()
    model.release.clear()
    answering = answerer(model, cache, calls)
    tasks = [asyncio.create_task(answering.answer(command())) for _ in range(3)]
    await cache.read(3)
    model.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r) for r in results] == [ModelFailure] * 3
    assert len(model.requests) == 1
    assert (cache.answers, cache.locks) == ({}, {})
    assert [attempts for _, attempts in calls.recorded] == [failure().attempts]


async def test_a_call_in_another_process_is_waited_for() -> None:
    model, cache = FakeModel(), MemoryCache()
    key = command().request.cache_key()
    theirs = await cache.try_lock(key, 5.0)
    assert theirs is not None
    task = asyncio.create_task(answerer(model, cache).answer(command()))
    await asyncio.wait_for(cache.waiting.wait(), 2)  # it waits for their answer
    their_answer = CachedAnswer(answer="theirs", model="model-a", usage=USAGE)
    await cache.put(key, their_answer)
    await cache.unlock(key, theirs)
    outcome = await task
    assert (outcome.answer, outcome.cached, outcome.cost) == (their_answer, True, 0.0)
    assert model.requests == []


async def test_when_the_other_process_fails_this_one_asks_the_model() -> None:
    model, cache = FakeModel("ours"), MemoryCache()
    key = command().request.cache_key()
    theirs = await cache.try_lock(key, 5.0)
    assert theirs is not None
    task = asyncio.create_task(answerer(model, cache).answer(command()))
    await asyncio.wait_for(cache.waiting.wait(), 2)  # it waits for their answer
    await cache.unlock(key, theirs)  # released without an answer
    outcome = await task
    assert (outcome.answer.answer, outcome.cached) == ("ours", False)
    assert cache.answers[key].answer == "ours"
    assert cache.locks == {}


async def test_a_streamed_miss_sends_the_models_pieces() -> None:
    model, cache = FakeModel("Aim for five to ten percent"), MemoryCache()
    sent: list[str] = []

    async def send(piece: str) -> None:
        sent.append(piece)

    outcome = await answerer(model, cache).answer(command(), send)
    assert sent == ["Aim ", "for ", "five ", "to ", "ten ", "percent"]
    assert (outcome.answer.answer, outcome.cached) == ("Aim for five to ten percent", False)


async def test_a_streamed_hit_replays_the_cached_answer() -> None:
    model, cache = FakeModel(), MemoryCache()
    text = " ".join(f"word{i}" for i in range(20))
    hit = CachedAnswer(answer=text, model="model-a", usage=USAGE)
    cache.answers[command().request.cache_key()] = hit
    sent: list[str] = []

    async def send(piece: str) -> None:
        sent.append(piece)

    outcome = await answerer(model, cache).answer(command(), send)
    assert sent == replay_pieces(text)
    assert len(sent) == 3  # in chunks of up to 8 words
    assert "".join(sent) == text
    assert (outcome.cached, model.requests) == (True, [])


async def test_the_handler_answers_when_a_model_is_configured() -> None:
    model = FakeModel("an answer")
    deps = Dependencies(answerer(model, MemoryCache()), llm_configured=True)
    outcome = await infer(command(), deps, None)
    assert (outcome.answer.answer, outcome.cached) == ("an answer", False)


async def test_without_a_model_the_handler_refuses_and_asks_nothing() -> None:
    model = FakeModel()
    deps = Dependencies(answerer(model, MemoryCache()), llm_configured=False)
    with pytest.raises(Refused) as refused:
        await infer(command(), deps, None)
    assert (refused.value.code, refused.value.message) == ("not_configured", NOT_CONFIGURED)
    assert model.requests == []


@pytest.mark.parametrize(
    ("code", "reply_code"),
    [
        ("unavailable", "model_unavailable"),
        ("timeout", "model_timeout"),
        ("invalid_input", "invalid_input"),
    ],
)
async def test_a_model_failure_is_refused_with_the_code_the_gateway_maps(
    code: str, reply_code: str
) -> None:
    cache, calls = MemoryCache(), MemoryCallLog()
    deps = Dependencies(answerer(FakeModel(failure(code)), cache, calls), llm_configured=True)
    with pytest.raises(Refused) as refused:
        await infer(command(), deps, None)
    assert refused.value.code == reply_code
    assert refused.value.message == "no model answered (model-a: HTTP 500: down)"
    assert [attempts for _, attempts in calls.recorded] == [failure().attempts]
    assert (cache.answers, cache.locks) == ({}, {})
