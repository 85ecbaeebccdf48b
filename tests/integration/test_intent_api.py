"""POST /api/ai-assistant/intent through the real gateway, broker, intent and workflow services."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.broker import partition_count
from shared.settings import Settings
from shared.topics import command_topic
from tests.support.api import MakeKey
from tests.support.stack import Gateway, Stack

pytestmark = [pytest.mark.integration, pytest.mark.tansu]
URL = "/api/ai-assistant/intent"


@pytest.fixture(scope="module")
def stack() -> Stack:
    """The intent and workflow services; the API as `ada`, with the assistant scope."""
    return Stack({"intent": {}, "workflow": {}}, user="ada", scopes=("assistant",))


async def eventually(pool: asyncpg.Pool, sql: str, *args: object, timeout: float = 15) -> object:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await pool.fetchval(sql, *args)
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_a_simple_question(api: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    response = await api.post(URL, json={"message": "What is a good reply rate for outreach?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "simple"
    assert body["intent"] == "inference"
    assert body["needs_clarification"] is False
    assert body["workflow_id"] is None
    logged = await db.fetchrow(
        "SELECT mode, requested_by FROM intent.intent_log WHERE intent_id = $1",
        uuid.UUID(body["intent_id"]),
    )
    assert logged is not None
    assert dict(logged) == {"mode": "simple", "requested_by": "ada"}


async def test_a_campaign_request_with_slots_starts_its_workflow(
    api: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    message = (
        "Email the 30 best senior Golang developers in Berlin with 5+ years of experience "
        "about the Staff Backend Engineer role"
    )
    response = await api.post(URL, json={"message": message})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "workflow"
    assert body["intent"] == "email_campaign"
    assert body["needs_clarification"] is False
    assert body["slots"] == {
        "skills": ["go"],
        "location": "berlin",
        "seniority": "senior",
        "min_years_experience": 5,
        "job_title": "staff backend engineer",
        "limit": 30,
        "country": None,
        "remote": None,
        "exclude_skills": [],
        "follow_up_days": [],
    }
    workflow_id = uuid.UUID(body["workflow_id"])
    # The workflow starts asynchronously: intent log -> outbox -> intent.detected -> workflow.
    run = await eventually(
        db,
        "SELECT workflow_type || '/' || current_state FROM workflow.runs WHERE run_id = $1",
        workflow_id,
    )
    # No campaign service runs here, so the run waits in its first step.
    assert run == "email_campaign/extract_candidates"
    intent_id = await db.fetchval(
        "SELECT intent_id FROM workflow.runs WHERE run_id = $1", workflow_id
    )
    assert str(intent_id) == body["intent_id"]


async def test_a_request_without_an_audience_asks_then_continues(
    api: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    conversation = f"c-{uuid.uuid4().hex}"
    first = await api.post(
        URL,
        json={
            "message": "Send an outreach email about the Staff Backend Engineer role",
            "conversation_id": conversation,
        },
    )
    assert first.status_code == 200, first.text
    asked = first.json()
    assert asked["mode"] == "workflow"
    assert asked["needs_clarification"] is True
    assert "Who should I contact?" in asked["clarification_question"]
    assert asked["workflow_id"] is None

    second = await api.post(
        URL,
        json={"message": "senior Python developers in Munich", "conversation_id": conversation},
    )
    assert second.status_code == 200, second.text
    answered = second.json()
    assert answered["mode"] == "workflow"
    assert answered["needs_clarification"] is False
    assert answered["slots"]["skills"] == ["python"]
    assert answered["slots"]["location"] == "munich"
    assert answered["slots"]["job_title"] == "staff backend engineer"  # kept from the first turn
    assert await eventually(
        db,
        "SELECT count(*) FROM workflow.runs WHERE run_id = $1",
        uuid.UUID(answered["workflow_id"]),
    )
    # The unclear first turn started nothing.
    assert (
        await db.fetchval(
            "SELECT count(*) FROM workflow.runs WHERE intent_id = $1", uuid.UUID(asked["intent_id"])
        )
        == 0
    )


async def test_german_and_spanish_messages(api: httpx.AsyncClient) -> None:
    german = await api.post(
        URL, json={"message": "Schreibe allen Senior Java-Entwicklern in Hamburg eine E-Mail"}
    )
    spanish = await api.post(
        URL, json={"message": "Envía un correo a los desarrolladores Python en Madrid"}
    )
    assert german.status_code == spanish.status_code == 200
    assert german.json()["language"] == "de"
    assert german.json()["mode"] == "workflow"
    assert german.json()["slots"]["skills"] == ["java"]
    assert german.json()["slots"]["location"] == "hamburg"
    assert spanish.json()["language"] == "es"
    assert spanish.json()["mode"] == "workflow"
    assert spanish.json()["slots"]["location"] == "madrid"


async def command_offsets(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_servers)
    await consumer.start()
    try:
        topic = command_topic("intent")
        partitions = [
            TopicPartition(topic.name, p) for p in range(partition_count(settings, topic))
        ]
        offsets = await consumer.end_offsets(partitions)
        return sum(offsets.values())
    finally:
        await consumer.stop()


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"message": ""}, 422, "message: must not be empty"),
        ({"message": "   \n\t "}, 422, "message: must not be empty"),
        ({"message": 42}, 422, "message: Input should be a valid string"),
        ({"message": ["hi"]}, 422, "message: Input should be a valid string"),
        ({}, 422, "message: Field required"),
        ({"message": "hi", "extra": 1}, 422, "extra: Extra inputs are not permitted"),
        ({"message": "x" * 4_001}, 422, "message: String should have at most 4000 characters"),
        ({"message": "x" * 100_000}, 413, "request body too large"),
        ({"message": "hi", "conversation_id": "has spaces"}, 422, "conversation_id"),
        ("{not json", 400, "request body is not valid JSON"),
        ({"message": "email python devs\u0000"}, 422, "NUL character"),
        ('{"message": "a \\\\u0000 is fine, but not \\u0000"}', 422, "NUL character"),
    ],
)
async def test_bad_input_is_refused_before_kafka(
    api: httpx.AsyncClient,
    prepared: Settings,
    body: object,
    status: int,
    detail: str,
) -> None:
    before = await command_offsets(prepared)
    if isinstance(body, str):
        response = await api.post(URL, content=body, headers={"Content-Type": "application/json"})
    else:
        response = await api.post(URL, json=body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert await command_offsets(prepared) == before


async def test_a_nul_character_is_refused_at_the_door_but_its_spelling_is_not(
    api: httpx.AsyncClient,
) -> None:
    spelled = await api.post(URL, json={"message": "what does \\u0000 mean in a CSV file?"})
    assert spelled.status_code == 200, spelled.text
    in_query = await api.get("/api/workflows", params={"type": "a\x00"})
    assert (in_query.status_code, in_query.json()["detail"]) == (
        422,
        "text must not contain the NUL character (U+0000)",
    )


async def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(
    api: httpx.AsyncClient, prepared: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        yield b'{"message": "'
        for _ in range(5 * 1024):  # 5 MB, in 1 KB chunks
            yield b"x" * 1024
        yield b'"}'

    before = await command_offsets(prepared)
    response = await api.post(URL, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert "request body too large" in response.json()["detail"]
    assert await command_offsets(prepared) == before


@pytest.mark.parametrize(
    ("message", "question"),
    [
        (
            "Email the top 20000 python developers in Berlin about the Staff Backend Engineer role",
            "You asked for 20,000 candidates",
        ),
        (
            "Email python developers in Berlin with 70 years of experience about the Staff "
            "Backend Engineer role",
            "70 years of experience is more than the 60",
        ),
    ],
)
async def test_a_number_beyond_a_slots_maximum_is_a_question_not_an_error(
    api: httpx.AsyncClient, message: str, question: str
) -> None:
    response = await api.post(URL, json={"message": message})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["needs_clarification"] is True
    assert question in body["clarification_question"]
    assert body["workflow_id"] is None


async def test_intent_needs_the_assistant_scope(gateway: Gateway, make_key: MakeKey) -> None:
    async with gateway.client(await make_key("review")) as http:
        response = await http.post(URL, json={"message": "hello"})
    assert response.status_code == 403
    assert "'assistant' scope" in response.json()["detail"]
