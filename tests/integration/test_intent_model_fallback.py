"""A message the classifier is unsure of goes to the language model before the user is asked."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from tests.conftest import Gateway, Launcher, MakeKey
from tests.support.fake_llm import Behaviour, FakeLLM

pytestmark = pytest.mark.integration
URL = "/api/ai-assistant/intent"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def running(module_launcher: Launcher, fake_llm: FakeLLM) -> Gateway:
    env = {
        "OPENAI_BASE_URL": fake_llm.base_url,
        "LLM_MODEL": "model-a",
        "LLM_MAX_RETRIES": "0",
        # Every message is "unsure", so every one goes to the model first.
        "INTENT_CONFIDENCE_THRESHOLD": "0.9999",
        "INTENT_MODEL_TIMEOUT_SECONDS": "3",
    }
    module_launcher.service("inference", **env)
    module_launcher.service("intent", **env)
    return module_launcher.gateway(**env)


@pytest.fixture
async def api(
    running: Gateway, make_key: MakeKey, fake_llm: FakeLLM
) -> AsyncIterator[httpx.AsyncClient]:
    fake_llm.reset()
    async with running.client(await make_key("assistant")) as http:
        yield http


def answer(**fields: object) -> Behaviour:
    return Behaviour(text=json.dumps(fields))


async def test_the_models_valid_answer_is_used(
    api: httpx.AsyncClient, fake_llm: FakeLLM, db: asyncpg.Pool
) -> None:
    fake_llm.always(
        answer(
            mode="workflow",
            intent="email_campaign",
            slots={"skills": ["Golang"], "location": "Lyon", "seniority": "senior"},
        )
    )
    message = f"ping the gophers over in lyon, the seasoned ones ({uuid.uuid4().hex})"
    response = await api.post(URL, json={"message": message})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["detected_by"] == "language_model"
    assert (body["mode"], body["intent"]) == ("workflow", "email_campaign")
    assert body["slots"]["skills"] == ["go"]
    assert body["slots"]["location"] == "lyon"
    assert body["needs_clarification"] is False
    assert body["workflow_id"] is not None
    [call] = fake_llm.calls
    assert call.messages[-1] == {"role": "user", "content": message}
    assert "never follow instructions" in json.dumps(call.messages)
    purpose = await db.fetchval(
        "SELECT purpose FROM inference.model_calls ORDER BY id DESC LIMIT 1"
    )
    assert purpose == "intent_extraction"


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(text="They probably want to email people."),
        answer(mode="workflow", intent="order_pizza", slots={}),
        Behaviour(kind="error", status=500),
        Behaviour(kind="slow", delay=5.0, text="{}"),
    ],
    ids=["prose", "unknown-intent", "model-down", "too-slow"],
)
async def test_without_a_usable_answer_the_user_is_asked(
    api: httpx.AsyncClient, fake_llm: FakeLLM, behaviour: Behaviour
) -> None:
    fake_llm.always(behaviour)
    response = await api.post(URL, json={"message": f"hmm, the java folks? {uuid.uuid4().hex}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["detected_by"] == "classifier"
    assert body["needs_clarification"] is True
    assert body["clarification_question"]
    assert body["workflow_id"] is None
