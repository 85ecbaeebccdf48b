"""The assistant's chat endpoint, through the gateway, with the real intent, inference (on a fake
OpenAI-compatible model), workflow and campaign services: each kind of answer (the model's,
streamed or not, with the conversation as context; a search; a campaign status; a started run; a
question back and its answer), the follow-ups ("same but in Munich", "only those with 5+ years",
"email them about ... role"), a search and the campaign it turns into selecting the same people,
and conversations that belong to their user.

The database is shared: every test makes its own candidates and jobs, marked with a fresh tag.
Its candidates have more experience than anyone else's, so they rank first.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import MakeKey, sse_events, wait_for_run, wait_for_state
from tests.support.campaign_rows import add_candidate, add_job, letters
from tests.support.fake_llm import FakeLLM
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration

MODEL = "chat-test-model"
USER = "chat-recruiter"


@pytest.fixture(scope="module")
def stack(fake_llm: FakeLLM) -> Stack:
    llm = fake_llm.env(MODEL)
    services = {"intent": {}, "inference": llm, "workflow": {}, "campaign": {}}
    return Stack(services, gateway_env=llm, user=USER, scopes=("assistant", "workflows"))


async def say(
    api: httpx.AsyncClient, message: str, conversation_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    response = await api.post("/api/ai-assistant/chat", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def pythonistas(db: asyncpg.Pool, tag: str, city: str, count: int) -> list[uuid.UUID]:
    """`count` Python developers in `city`, best first: more years than anyone else has."""
    return [
        await add_candidate(
            db,
            f"Py{n} {tag}",
            email=f"py{n}-{city.lower()}-{tag}@example.com",
            city=city,
            seniority="senior",
            years=55 - n,
            skills=["python"],
        )
        for n in range(count)
    ]


async def test_a_search_its_follow_ups_and_the_campaign_it_becomes(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    berliners = await pythonistas(db, tag, "Berlin", 5)
    munich = await pythonistas(db, tag, "Munich", 3)
    title = f"Chat Backend Engineer {letters(tag)}"  # a title as people write them: no digits
    await add_job(db, title, skills=["python"], external_ref=tag)

    found = await say(api, "show me the 5 best python developers in Berlin")
    conversation = found["conversation_id"]
    assert (found["kind"], found["turn"], found["intent"]["mode"]) == ("search", 1, "simple")
    assert found["intent"]["workflow_id"] is None  # a search never starts outreach
    search = found["search"]
    assert [uuid.UUID(m["candidate_id"]) for m in search["matches"]] == berliners
    assert search["total"] >= 5
    assert all(m["suppressed"] is None and m["contacted_at"] is None for m in search["matches"])
    assert found["text"] == search["summary"]

    elsewhere = await say(api, "same but in Munich", conversation)
    assert elsewhere["kind"] == "search"
    slots = elsewhere["intent"]["slots"]
    assert (slots["skills"], slots["location"], slots["limit"]) == (["python"], "munich", 5)
    assert [uuid.UUID(m["candidate_id"]) for m in elsewhere["search"]["matches"]][:3] == munich

    narrower = await say(api, "only those with 5+ years", conversation)
    assert narrower["intent"]["slots"]["min_years_experience"] == 5
    assert narrower["intent"]["slots"]["location"] == "munich"
    assert all(m["years_experience"] >= 5 for m in narrower["search"]["matches"])

    back = await say(api, "same but in Berlin", conversation)
    assert [uuid.UUID(m["candidate_id"]) for m in back["search"]["matches"]] == berliners

    started = await say(api, f"email them about the {title} role", conversation)
    assert (started["kind"], started["turn"]) == ("run_started", 5)
    assert started["intent"]["intent"] == "email_campaign"
    run_id = started["run"]["run_id"]
    assert started["run"]["events_url"] == f"/api/workflows/{run_id}/events"
    run = await wait_for_state(api, run_id, "await_review")
    assert run["outputs"]["extract_candidates"]["recipients"] == 5
    recipients = await db.fetch(
        "SELECT candidate_id FROM campaign.recipients WHERE campaign_id = $1 ORDER BY rank",
        uuid.UUID(run_id),
    )
    assert [r["candidate_id"] for r in recipients] == berliners  # the search's people

    status = await say(api, "how is my last campaign doing?", conversation)
    assert status["kind"] == "campaign_status"
    assert status["campaign_status"]["campaign"]["run_id"] == run_id
    assert "Waiting for review" in status["text"]

    again = await say(api, "show me the 5 best python developers in Berlin", conversation)
    flagged = [m for m in again["search"]["matches"] if m["contacted_at"] is not None]
    assert [uuid.UUID(m["candidate_id"]) for m in flagged] == berliners  # shown, not hidden
    assert {m["contacted_about"] for m in flagged} == {title}

    history = await api.get(f"/api/ai-assistant/conversations/{conversation}")
    assert history.status_code == 200, history.text
    turns = history.json()["messages"]
    assert [t["answer"]["kind"] for t in turns] == [
        "search", "search", "search", "search", "run_started", "campaign_status", "search",
    ]  # fmt: skip
    assert [t["turn"] for t in turns] == list(range(1, 8))
    assert turns[1]["message"] == "same but in Munich"
    assert turns[4]["answer"]["run"]["run_id"] == run_id


async def test_questions_for_the_model_see_the_conversation(
    api: httpx.AsyncClient, fake_llm: FakeLLM, tag: str
) -> None:
    fake_llm.reset()
    question = f"what is a good reply rate for cold outreach in {tag}?"  # not cached
    first = await say(api, question)
    assert first["kind"] == "answer"
    assert first["text"] == f"answer to: {question}"
    assert first["model_answer"]["model"] == MODEL
    conversation = first["conversation_id"]

    second = await say(api, "and how long should the email be?", conversation)
    assert second["kind"] == "answer"
    (call,) = fake_llm.calls_for(MODEL)[-1:]
    sent = [(m["role"], m["content"]) for m in call.messages if m["role"] != "system"]
    assert sent == [
        ("user", question),
        ("assistant", f"answer to: {question}"),
        ("user", "and how long should the email be?"),
    ]


async def test_a_streamed_answer_arrives_in_pieces_and_is_kept(
    api: httpx.AsyncClient, tag: str
) -> None:
    message = f"write a subject line for a data engineer outreach email, ref {tag}"
    body = {"message": message, "stream": True}
    async with api.stream("POST", "/api/ai-assistant/chat", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [event async for event in sse_events(response)]
    names = [name for name, _ in events]
    assert names[0] == "intent"
    assert names[-1] == "done"
    assert names.count("delta") >= 2, names
    done = events[-1][1]
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert done["text"] == text == f"answer to: {body['message']}"
    assert (done["kind"], done["turn"]) == ("answer", 1)

    kept = await api.get(f"/api/ai-assistant/conversations/{done['conversation_id']}")
    assert kept.json()["messages"][0]["answer"]["text"] == text

    # Whatever else a message is, a stream is its intent, then its answer.
    async with api.stream(
        "POST", "/api/ai-assistant/chat", json={**body, "message": "any go developers in Berlin?"}
    ) as response:
        names = [name async for name, _ in sse_events(response)]
    assert names == ["intent", "done"]


async def test_a_question_back_and_the_answers_that_go_on(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    await pythonistas(db, tag, "Berlin", 2)
    title = f"Basket Chat Engineer {letters(tag)}"
    job_id = await add_job(db, title, skills=["python"], external_ref=tag)

    asked = await say(api, "email candidates about the Underwater Basket Weaver role")
    conversation = asked["conversation_id"]
    assert asked["kind"] == "question"
    assert asked["text"].startswith("Who should I contact?")

    started = await say(api, "senior python developers in Berlin, top 2", conversation)
    assert started["kind"] == "run_started"
    run_id = started["run"]["run_id"]

    waiting = await wait_for_run(api, run_id, lambda r: r.get("question") is not None)
    question = waiting["question"]  # no such job: which one?
    assert question["field"] == "slots.job_title"
    assert question["choices"][0]["value"] == str(job_id)
    answered = await say(api, "1", conversation)
    assert answered["kind"] == "run_input"
    assert answered["run"]["run_id"] == run_id
    run = await wait_for_state(api, run_id, "await_review")
    assert run["outputs"]["extract_candidates"]["job_id"] == str(job_id)
    assert run["outputs"]["extract_candidates"]["recipients"] == 2


async def test_a_conversation_belongs_to_its_user(
    api: httpx.AsyncClient, gateway: Gateway, make_key: MakeKey
) -> None:
    mine = (await say(api, "any react developers in Barcelona?"))["conversation_id"]
    listed = await api.get("/api/ai-assistant/conversations")
    assert mine in [c["conversation_id"] for c in listed.json()]

    async with gateway.client(await make_key("assistant", user="someone-else")) as other:
        assert (await other.get(f"/api/ai-assistant/conversations/{mine}")).status_code == 404
        taken = await other.post(
            "/api/ai-assistant/chat",
            json={"message": "same but in Madrid", "conversation_id": mine},
        )
        assert taken.status_code == 404
        theirs = await other.get("/api/ai-assistant/conversations")
        assert mine not in [c["conversation_id"] for c in theirs.json()]

    unknown = await api.post(
        "/api/ai-assistant/chat", json={"message": "hello", "conversation_id": "conv_nope"}
    )
    assert unknown.status_code == 404
    blank = await api.post("/api/ai-assistant/chat", json={"message": "   "})
    assert blank.status_code == 422
    async with gateway.client(await make_key("review", user=USER)) as reviewer:
        refused = await reviewer.post("/api/ai-assistant/chat", json={"message": "hi"})
        assert refused.status_code == 403


async def test_a_search_in_any_words_never_starts_outreach(api: httpx.AsyncClient) -> None:
    for message in (
        "find me junior java devs in madrid",
        "any pyhton developers in Berlin?",
        "wie viele Go-Entwickler in Amsterdam haben wir?",
    ):
        answer = await say(api, message)
        assert (answer["kind"], answer["intent"]["intent"]) == ("search", "candidate_search")
        assert answer["run"] is None
