"""POST /api/ai-assistant/inference through the real gateway, broker, inference service and Redis,
against a local OpenAI-compatible model server driven through the real `openai` SDK."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis

from shared.contracts.inference import ChatMessage, ModelRequest
from shared.settings import Settings
from tests.conftest import Gateway, Launcher, MakeKey
from tests.support.fake_llm import Behaviour, FakeLLM

pytestmark = pytest.mark.integration
URL = "/api/ai-assistant/inference"
TTL = 3


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def llm_env(fake: FakeLLM) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "test-key",
        "LLM_MODEL": "model-a",
        "LLM_FALLBACK_MODELS": "model-b",
        "LLM_ALLOWED_MODELS": "model-c",
        "LLM_TIMEOUT_SECONDS": "1",
        "LLM_MAX_RETRIES": "2",
        "LLM_MAX_INPUT_TOKENS": "2000",
        "LLM_CACHE_TTL_SECONDS": str(TTL),
        "LLM_PRICES": json.dumps({"model-a": [1.0, 2.0], "model-b": [3.0, 4.0]}),
    }


@pytest.fixture(scope="module")
def running(module_launcher: Launcher, fake_llm: FakeLLM) -> Gateway:
    module_launcher.service("inference", **llm_env(fake_llm))
    return module_launcher.gateway(**llm_env(fake_llm))


@pytest.fixture
async def api(
    running: Gateway, make_key: MakeKey, fake_llm: FakeLLM
) -> AsyncIterator[httpx.AsyncClient]:
    fake_llm.reset()
    async with running.client(await make_key("assistant", user="ada")) as http:
        yield http
    fake_llm.reset()


@pytest.fixture
async def cache(prepared: Settings) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(prepared.redis_url)
    yield client
    await client.aclose()


def question() -> str:
    return f"What is a good reply rate for outreach? ({uuid.uuid4().hex})"


def calls_about(fake: FakeLLM, text: str) -> int:
    return sum(1 for c in fake.calls if text in json.dumps(c.messages))


def cache_key(text: str, model: str = "model-a") -> str:
    request = ModelRequest.build([ChatMessage(role="user", content=text)], model, 0.2, 512)
    return request.cache_key()


async def test_a_miss_then_a_hit(
    api: httpx.AsyncClient, fake_llm: FakeLLM, db: asyncpg.Pool
) -> None:
    text = question()
    fake_llm.script(Behaviour(text="About 5 to 10 percent.", prompt_tokens=30, completion_tokens=6))
    first = await api.post(URL, json={"message": text})
    second = await api.post(URL, json={"message": f"  {text}\n"})  # whitespace is normalised
    assert first.status_code == second.status_code == 200, first.text
    miss, hit = first.json(), second.json()
    assert miss["answer"] == hit["answer"] == "About 5 to 10 percent."
    assert (miss["cached"], hit["cached"]) == (False, True)
    assert miss["usage"] == {"prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36}
    assert miss["cost"] == pytest.approx((30 * 1.0 + 6 * 2.0) / 1_000_000)
    assert hit["cost"] == 0.0
    assert miss["model"] == "model-a"
    assert calls_about(fake_llm, text) == 1
    row = await db.fetchrow(
        "SELECT model, prompt_tokens, completion_tokens, cost, status, requested_by"
        " FROM inference.model_calls WHERE prompt_tokens = 30 AND requested_by = 'ada'"
        " ORDER BY id DESC LIMIT 1"
    )
    assert row is not None
    assert (row["model"], row["completion_tokens"], row["status"]) == ("model-a", 6, "ok")
    assert float(row["cost"]) == pytest.approx(42 / 1_000_000)


async def test_bypass_and_refresh(api: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    text = question()
    fake_llm.script(Behaviour(text="first"), Behaviour(text="second"), Behaviour(text="third"))
    bypassed = await api.post(URL, json={"message": text, "cache": "bypass"})
    assert bypassed.json()["answer"] == "first"
    cached = await api.post(URL, json={"message": text})  # bypass wrote nothing: a miss
    assert (cached.json()["answer"], cached.json()["cached"]) == ("second", False)
    refreshed = await api.post(URL, json={"message": text, "cache": "refresh"})
    assert (refreshed.json()["answer"], refreshed.json()["cached"]) == ("third", False)
    after = await api.post(URL, json={"message": text})
    assert (after.json()["answer"], after.json()["cached"]) == ("third", True)
    assert calls_about(fake_llm, text) == 3


async def test_answers_expire_after_the_ttl(
    api: httpx.AsyncClient, fake_llm: FakeLLM, cache: redis.Redis
) -> None:
    text = question()
    first = await api.post(URL, json={"message": text})
    assert first.json()["cached"] is False
    key = cache_key(text)
    assert 0 < await cache.ttl(key) <= TTL

    async def expired() -> None:
        while await cache.exists(key):  # noqa: ASYNC110 - Redis has no event to wait on here
            await asyncio.sleep(0.1)

    await asyncio.wait_for(expired(), TTL + 5)
    again = await api.post(URL, json={"message": text})
    assert again.json()["cached"] is False
    assert calls_about(fake_llm, text) == 2


async def test_concurrent_identical_misses_make_one_model_call(
    api: httpx.AsyncClient, fake_llm: FakeLLM
) -> None:
    text = question()
    fake_llm.always(Behaviour(kind="slow", delay=0.5, text="one answer"))
    responses = await asyncio.gather(*(api.post(URL, json={"message": text}) for _ in range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    assert {r.json()["answer"] for r in responses} == {"one answer"}
    assert sum(not r.json()["cached"] for r in responses) == 1
    assert calls_about(fake_llm, text) == 1


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_streaming_a_miss_and_then_a_hit(api: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    text = question()
    words = "Aim for a reply rate between five and ten percent in cold outreach"
    fake_llm.script(Behaviour(text=words, delay=0.01))
    for expect_cached in (False, True):
        async with api.stream("POST", URL, json={"message": text, "stream": True}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            body = "".join([chunk async for chunk in response.aiter_text()])
        events = parse_sse(body)
        deltas = [data["text"] for kind, data in events if kind == "delta"]
        kind, done = events[-1]
        assert kind == "done"
        assert "".join(deltas) == words
        assert done["answer"] == words
        assert done["cached"] is expect_cached
        if not expect_cached:
            assert len(deltas) > 5  # token by token, not one block
    assert calls_about(fake_llm, text) == 1


async def test_a_429_is_retried(api: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    text = question()
    fake_llm.script(Behaviour(kind="error", status=429), Behaviour(text="after a retry"))
    response = await api.post(URL, json={"message": text})
    assert response.status_code == 200, response.text
    assert response.json()["answer"] == "after a retry"
    assert calls_about(fake_llm, text) == 2


async def test_a_model_that_stays_down(
    api: httpx.AsyncClient, fake_llm: FakeLLM, cache: redis.Redis
) -> None:
    text = question()
    fake_llm.always(Behaviour(kind="error", status=500))
    response = await api.post(URL, json={"message": text})
    assert response.status_code == 502
    assert "no model answered" in response.json()["detail"]
    assert "model-a" in response.json()["detail"]
    assert "model-b" in response.json()["detail"]
    assert not await cache.exists(cache_key(text))
    assert calls_about(fake_llm, text) == 6  # 3 attempts on each of 2 models


async def test_a_model_that_never_answers_is_a_504(
    api: httpx.AsyncClient, fake_llm: FakeLLM, cache: redis.Redis
) -> None:
    text = question()
    fake_llm.always(Behaviour(kind="hang"))
    response = await api.post(URL, json={"message": text, "max_tokens": 64})
    assert response.status_code == 504
    assert "Timeout" in response.json()["detail"]
    assert not await cache.exists(cache_key(text))


async def test_fallback_to_the_second_model(api: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    text = question()
    fake_llm.always(Behaviour(kind="error", status=503), model="model-a")
    response = await api.post(URL, json={"message": text})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "model-b"
    assert calls_about(fake_llm, text) == 4  # model-a three times, then model-b


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"message": ""}, "must not be empty"),
        ({"message": "  \n"}, "must not be empty"),
        ({}, "either `message` or `messages`"),
        ({"message": "hi", "messages": [{"role": "user", "content": "hi"}]}, "not both"),
        ({"messages": []}, "messages: List should have at least 1 item"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "role `user`"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"message": "hi", "model": "gpt-9000"}, "unknown model 'gpt-9000'"),
        ({"message": "x " * 5_000}, "LLM_MAX_INPUT_TOKENS"),
        ({"message": "hi", "max_tokens": 100_000}, "LLM_MAX_TOKENS"),
        ({"message": "hi", "temperature": "hot"}, "temperature"),
        ({"message": "hi", "temperature": 3}, "temperature"),
        ({"message": "hi", "stream": "yes"}, "stream"),
        ({"message": "hi", "cache": "sometimes"}, "cache"),
        ({"message": 7}, "message"),
    ],
)
async def test_bad_input_makes_no_model_call(
    api: httpx.AsyncClient, fake_llm: FakeLLM, body: dict[str, Any], detail: str
) -> None:
    before = len(fake_llm.calls)
    response = await api.post(URL, json=body)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
    assert len(fake_llm.calls) == before


async def test_a_chosen_model_from_the_allow_list(
    api: httpx.AsyncClient, fake_llm: FakeLLM
) -> None:
    text = question()
    response = await api.post(URL, json={"message": text, "model": "model-c"})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "model-c"
    assert [c.model for c in fake_llm.calls if text in json.dumps(c.messages)] == ["model-c"]


async def test_without_a_model_the_answer_says_what_to_set(
    launcher: Launcher, make_key: MakeKey
) -> None:
    gateway = launcher.gateway(LLM_MODEL="", OPENAI_BASE_URL="", OPENAI_API_KEY="")
    async with gateway.client(await make_key("assistant")) as http:
        response = await http.post(URL, json={"message": "hello"})
        intent = await http.get("/healthz")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "LLM_MODEL" in detail
    assert "OPENAI_BASE_URL" in detail
    assert intent.status_code == 200  # nothing else breaks
