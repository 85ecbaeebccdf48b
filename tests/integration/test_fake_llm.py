"""The fake OpenAI-compatible server, driven by the real `openai` SDK over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.fake_llm import Behaviour, FakeLLM

pytestmark = pytest.mark.integration

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def fake(fake_llm: FakeLLM) -> Iterator[FakeLLM]:
    """The module's server, reset before and after each test."""
    fake_llm.reset()
    yield fake_llm
    fake_llm.reset()


def client(fake: FakeLLM, max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=max_retries)


async def test_plain_answer_with_usage(fake: FakeLLM) -> None:
    answer = await client(fake).chat.completions.create(
        model="fake-model", messages=HELLO, temperature=0.1, max_tokens=50
    )

    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == "answer to: hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2, 4)
    assert answer.usage.total_tokens == 6
    [call] = fake.calls
    assert (call.model, call.messages, call.stream) == ("fake-model", HELLO, False)
    assert call.params == {"temperature": 0.1, "max_tokens": 50}
    assert call.authorization == "Bearer test"


async def test_scripted_text_and_token_counts(fake: FakeLLM) -> None:
    fake.script(Behaviour(text="Senior Python, Berlin", prompt_tokens=120, completion_tokens=7))

    answer = await client(fake).chat.completions.create(model="fake-model", messages=HELLO)

    assert answer.choices[0].message.content == "Senior Python, Berlin"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (120, 127)


async def test_stream_with_usage_collects_the_same_text(fake: FakeLLM) -> None:
    fake.always(Behaviour(text="three  spaced words", delay=0.01))
    stream = await client(fake).chat.completions.create(
        model="fake-model", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "three  spaced words"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)
    assert fake.calls[0].stream
    assert fake.calls[0].params == {"stream_options": {"include_usage": True}}


async def test_stream_without_include_usage_has_no_usage_chunk(fake: FakeLLM) -> None:
    stream = await client(fake).chat.completions.create(
        model="fake-model", messages=HELLO, stream=True
    )
    chunks = [chunk async for chunk in stream]

    assert all(c.choices and c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "answer to: hello there"


async def test_rate_limit_then_answer_is_retried_quickly(fake: FakeLLM) -> None:
    fake.script(Behaviour(kind="error", status=429), Behaviour(text="after the retry"))
    started = time.monotonic()

    answer = await client(fake, max_retries=2).chat.completions.create(
        model="fake-model", messages=HELLO
    )

    assert answer.choices[0].message.content == "after the retry"
    assert len(fake.calls) == 2
    assert time.monotonic() - started < 1.0  # `retry-after-ms: 10` instead of ~0.5 s backoff


async def test_server_error_without_retries_raises(fake: FakeLLM) -> None:
    fake.script(Behaviour(kind="error", status=500, text="boom"))

    with pytest.raises(openai.InternalServerError) as caught:
        await client(fake).chat.completions.create(model="fake-model", messages=HELLO)

    assert caught.value.status_code == 500
    assert caught.value.body == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert len(fake.calls) == 1


async def test_malformed_body_raises_a_plain_json_error(fake: FakeLLM) -> None:
    # What really happens: the SDK calls `response.json()` on a 200 `application/json` body
    # without wrapping the failure, so callers see json.JSONDecodeError (a ValueError), NOT an
    # openai.APIError. Code that calls the model must therefore catch ValueError as well.
    fake.script(Behaviour(kind="malformed"))

    with pytest.raises(json.JSONDecodeError):
        await client(fake).chat.completions.create(model="fake-model", messages=HELLO)


async def test_malformed_stream_raises_a_plain_json_error(fake: FakeLLM) -> None:
    # The same for streams: the garbage `data:` line fails in `sse.json()` while iterating.
    fake.script(Behaviour(kind="malformed"))
    stream = await client(fake).chat.completions.create(
        model="fake-model", messages=HELLO, stream=True
    )

    with pytest.raises(json.JSONDecodeError):
        _ = [chunk async for chunk in stream]


async def test_slow_answer_times_out(fake: FakeLLM) -> None:
    fake.script(Behaviour(kind="slow", delay=5.0))
    started = time.monotonic()

    with pytest.raises(openai.APITimeoutError):
        await client(fake).chat.completions.create(model="fake-model", messages=HELLO, timeout=0.2)

    assert time.monotonic() - started < 2.0
    answer = await client(fake).chat.completions.create(model="fake-model", messages=HELLO)
    assert answer.choices[0].message.content == "answer to: hello there"


async def test_hang_times_out_on_the_client(fake: FakeLLM) -> None:
    fake.always(Behaviour(kind="hang"))

    with pytest.raises(openai.APITimeoutError):
        await client(fake).chat.completions.create(model="fake-model", messages=HELLO, timeout=0.2)


async def test_stop_ends_a_hanging_request_quickly() -> None:
    fake = FakeLLM().start()
    fake.always(Behaviour(kind="hang"))
    request = asyncio.create_task(
        client(fake).chat.completions.create(model="fake-model", messages=HELLO)
    )
    for _ in range(200):  # until the server holds the request
        if fake.calls:
            break
        await asyncio.sleep(0.01)

    started = time.monotonic()
    await asyncio.to_thread(fake.stop)

    assert time.monotonic() - started < 2.0
    with pytest.raises(openai.APIError):  # the hang ends with a 504 (or a dropped connection)
        await request


async def test_unknown_model_is_not_found(fake: FakeLLM) -> None:
    fake.known_models = {"gpt-4o-mini"}

    with pytest.raises(openai.NotFoundError) as caught:
        await client(fake).chat.completions.create(model="gpt-5-imaginary", messages=HELLO)

    assert caught.value.code == "model_not_found"
    models = await client(fake).models.list()
    assert [m.id for m in models.data] == ["gpt-4o-mini"]


async def test_default_model_list(fake: FakeLLM) -> None:
    models = await client(fake).models.list()

    assert [m.id for m in models.data] == ["fake-model", "gpt-4o", "gpt-4o-mini"]


async def test_per_model_scripting(fake: FakeLLM) -> None:
    fake.always(Behaviour(kind="error", status=503), model="a")
    fake.script(Behaviour(text="from b"), model="b")
    llm = client(fake)

    with pytest.raises(openai.InternalServerError) as caught:
        await llm.chat.completions.create(model="a", messages=HELLO)
    answer = await llm.chat.completions.create(model="b", messages=HELLO)
    default = await llm.chat.completions.create(model="b", messages=HELLO)

    assert caught.value.status_code == 503
    assert answer.choices[0].message.content == "from b"
    assert default.choices[0].message.content == "answer to: hello there"
    assert len(fake.calls_for("a")) == 1
    assert len(fake.calls_for("b")) == 2


async def test_model_script_wins_over_any_model_script(fake: FakeLLM) -> None:
    fake.script(Behaviour(text="any 1"), Behaviour(text="any 2"))
    fake.script(Behaviour(text="only a"), model="a")
    llm = client(fake)

    texts = [
        (await llm.chat.completions.create(model=m, messages=HELLO)).choices[0].message.content
        for m in ("a", "a", "b", "b")
    ]

    assert texts == ["only a", "any 1", "any 2", "answer to: hello there"]
