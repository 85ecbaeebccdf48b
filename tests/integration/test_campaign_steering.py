"""A campaign a person steers, through the gateway, with the real intent, workflow and campaign
services and an SMTP server that takes its time: cancel during review and while sending, pause and
resume, the emergency stop, a campaign that completes when its monitoring window ends, the list of
campaigns, and the question a run waits on (which job?) answered in the conversation or through
the API.

The database is shared: every test makes its own job and candidates, marked with a fresh tag.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.campaign.handlers import steering
from shared.contracts.campaign import CampaignStatusCommand
from shared.contracts.intent import Slots
from shared.contracts.workflow import CancelWorkflowCommand
from shared.settings import Settings
from shared.topics import command_topic
from tests.support.api import (
    MakeKey,
    get_run,
    sse_events,
    start_campaign,
    wait_for,
    wait_for_run,
    wait_for_state,
)
from tests.support.campaign_rows import (
    QUICK_SENDING,
    Audience,
    add_audience,
    add_candidate,
    add_job,
)
from tests.support.smtp import SmtpTestServer
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration

SMTP_SECONDS = 0.05  # each message's DATA: a slow relay, so sends are in flight for a while


@pytest.fixture(scope="module")
def slow_smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer(data_delay_seconds=SMTP_SECONDS) as server:
        yield server


@pytest.fixture(scope="module")
def stack(slow_smtp: SmtpTestServer) -> Stack:
    return Stack(
        {"intent": {}, "workflow": QUICK_SENDING, "campaign": {**QUICK_SENDING, **slow_smtp.env}},
        user="rita-recruiter",
        scopes=("workflows", "review", "assistant"),
    )


async def campaign_in_review(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, size: int, **params: Any
) -> tuple[str, Audience]:
    audience = await add_audience(db, tag, size)
    run_id = await start_campaign(api, {**audience.slots, "limit": size}, **params)
    await wait_for_state(api, run_id, "await_review")
    return run_id, audience


async def campaign(api: httpx.AsyncClient, campaign_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/campaigns/{campaign_id}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def received(smtp: SmtpTestServer, audience: Audience) -> list[Any]:
    wanted = set(audience.addresses)
    return [m for m in smtp.messages if set(m.rcpt_tos) & wanted]


async def test_a_cancelled_campaign_refuses_decisions_and_sends_nothing(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, slow_smtp: SmtpTestServer
) -> None:
    run_id, audience = await campaign_in_review(api, db, tag, 3)

    response = await api.post(f"/api/campaigns/{run_id}/cancel")
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["action"], result["changed"], result["in_flight"]) == ("cancel", True, 0)
    assert result["campaign"]["status"] == "cancelled"
    assert result["campaign"]["ended_by"] == "rita-recruiter"
    assert result["campaign"]["counts"]["cancelled"] == 3
    run = await wait_for_run(api, run_id, lambda r: r["status"] == "cancelled", timeout=10)
    assert "rita-recruiter" in run["error"]

    refused = await api.post(f"/api/campaigns/{run_id}/approve-all")
    assert refused.status_code == 409, refused.text
    assert "cancelled" in refused.json()["detail"]
    again = await api.post(f"/api/campaigns/{run_id}/cancel")
    assert (again.status_code, again.json()["changed"]) == (200, False)
    assert (await api.post(f"/api/campaigns/{run_id}/resume")).status_code == 409
    await asyncio.sleep(1)
    assert received(slow_smtp, audience) == []


async def test_a_run_cancelled_by_another_system_cancels_its_campaign(
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    tag: str,
    slow_smtp: SmtpTestServer,
    prepared: Settings,
) -> None:
    """Another system cancels the run with a command to the workflow service (no gateway, so
    nobody steers the campaign first): the campaign hears it on workflow.run.changed."""
    run_id, audience = await campaign_in_review(api, db, tag, 3)
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_servers)
    await producer.start()
    try:
        command = CancelWorkflowCommand(run_id=uuid.UUID(run_id), requested_by="ats-sync")
        await producer.send_and_wait(
            command_topic("workflow").name, command.model_dump_json().encode(), key=run_id.encode()
        )
    finally:
        await producer.stop()

    cancelled = await wait_for(
        lambda: _status_of(api, run_id, "cancelled"), timeout=20, what="the campaign cancelled"
    )
    assert cancelled["ended_by"] == "ats-sync"
    assert cancelled["counts"]["cancelled"] == 3
    refused = await api.post(f"/api/campaigns/{run_id}/approve-all")
    assert refused.status_code == 409, refused.text
    await asyncio.sleep(1)
    assert received(slow_smtp, audience) == []


async def _status_of(
    api: httpx.AsyncClient, campaign_id: str, status: str
) -> dict[str, Any] | None:
    view = await campaign(api, campaign_id)
    return view if view["status"] == status else None


async def test_no_email_leaves_after_a_cancel_has_answered(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, slow_smtp: SmtpTestServer
) -> None:
    run_id, audience = await campaign_in_review(api, db, tag, 200)
    assert (await api.post(f"/api/campaigns/{run_id}/approve-all")).status_code == 200
    await wait_for(lambda: _at_least(slow_smtp, audience, 20), what="20 emails sent")

    response = await api.post(f"/api/campaigns/{run_id}/cancel")
    answered_at = time.monotonic()
    assert response.status_code == 200, response.text
    in_flight = response.json()["in_flight"]
    await asyncio.sleep(2)  # anything still to come would have come by now

    messages = received(slow_smtp, audience)
    late = [m for m in messages if m.accepted_at > answered_at]
    assert len(late) <= in_flight, (len(late), in_flight)
    assert 20 <= len(messages) < 200
    view = await campaign(api, run_id)
    assert view["status"] == "cancelled"
    counts = view["counts"]
    assert counts["sent"] == len(messages)
    assert counts["cancelled"] == 200 - len(messages)
    assert counts["queued"] == 0


async def test_a_paused_campaign_sends_the_rest_once_when_resumed(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, slow_smtp: SmtpTestServer
) -> None:
    run_id, audience = await campaign_in_review(api, db, tag, 40)
    assert (await api.post(f"/api/campaigns/{run_id}/approve-all")).status_code == 200
    await wait_for(lambda: _at_least(slow_smtp, audience, 5), what="5 emails sent")

    paused = await api.post(f"/api/campaigns/{run_id}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["campaign"]["paused"] is True
    assert paused.json()["campaign"]["paused_by"] == "rita-recruiter"
    await asyncio.sleep(1)
    at_pause = len(received(slow_smtp, audience))
    await asyncio.sleep(1)
    assert len(received(slow_smtp, audience)) == at_pause < 40  # nothing more while paused

    resumed = await api.post(f"/api/campaigns/{run_id}/resume")
    assert (resumed.status_code, resumed.json()["changed"]) == (200, True)
    await wait_for(lambda: _at_least(slow_smtp, audience, 40), what="all 40 emails sent")
    await asyncio.sleep(0.5)
    per_address = [len(slow_smtp.messages_to(address)) for address in audience.addresses]
    assert per_address == [1] * 40
    await wait_for_state(api, run_id, "monitoring")


async def test_the_emergency_stop_pauses_every_campaign_until_resumed(
    api: httpx.AsyncClient,
    gateway: Gateway,
    make_key: MakeKey,
    db: asyncpg.Pool,
    tag: str,
    slow_smtp: SmtpTestServer,
) -> None:
    run_id, audience = await campaign_in_review(api, db, tag, 30)
    assert (await api.post("/api/sending/stop")).status_code == 403  # an admin's button
    async with gateway.client(await make_key("admin", user="ops-admin")) as admin:
        stopped = await admin.post("/api/sending/stop")
        assert stopped.status_code == 200, stopped.text
        assert run_id in stopped.json()["campaigns"]
        assert (await api.post(f"/api/campaigns/{run_id}/approve-all")).status_code == 200
        await asyncio.sleep(1.5)
        assert received(slow_smtp, audience) == []  # approved, and held
        view = await campaign(api, run_id)
        assert (view["paused"], view["paused_by"]) == (True, "ops-admin")

        resumed = await admin.post("/api/sending/resume")
        assert resumed.status_code == 200, resumed.text
        assert run_id in resumed.json()["campaigns"]
    await wait_for(lambda: _at_least(slow_smtp, audience, 30), what="all 30 emails sent")


async def test_a_campaign_completes_when_its_window_ends_and_its_stream_closes(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, slow_smtp: SmtpTestServer
) -> None:
    run_id, audience = await campaign_in_review(api, db, tag, 2, monitor_hours=0.001)  # 3.6 s
    assert (await api.post(f"/api/campaigns/{run_id}/approve-all")).status_code == 200

    async with api.stream("GET", f"/api/campaigns/{run_id}/events", timeout=60) as stream:
        events = [event async for event in sse_events(stream)]
    assert events[-1] == ("end", {"campaign_id": run_id, "status": "completed"})
    statuses = [data["status"] for name, data in events if name == "counts"]
    assert statuses[-1] == "completed"
    assert "monitoring" in statuses

    run = await wait_for_run(api, run_id, lambda r: r["status"] == "succeeded", timeout=10)
    assert run["state"] == "completed"
    assert run["outputs"]["close_campaign"]["counts"]["sent"] == 2
    view = await campaign(api, run_id)
    assert (view["ended_by"], view["completed_at"] is not None) == ("monitoring window", True)
    assert len(received(slow_smtp, audience)) == 2


async def test_a_recruiter_closes_a_campaign_after_sending(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    run_id, _ = await campaign_in_review(api, db, tag, 1)
    early = await api.post(f"/api/campaigns/{run_id}/close")
    assert early.status_code == 409  # still in review: cancel it to stop it
    assert "cancel" in early.json()["detail"]
    assert (await api.post(f"/api/campaigns/{run_id}/approve-all")).status_code == 200
    await wait_for_state(api, run_id, "monitoring")

    closed = await api.post(f"/api/campaigns/{run_id}/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["campaign"]["status"] == "completed"
    run = await wait_for_run(api, run_id, lambda r: r["status"] == "succeeded", timeout=10)
    assert run["state"] == "completed"


async def test_campaigns_are_listed_newest_first_with_filters_and_a_cursor(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    first, _ = await campaign_in_review(api, db, tag, 1)
    second, _ = await campaign_in_review(api, db, tag, 1)
    assert (await api.post(f"/api/campaigns/{first}/cancel")).status_code == 200

    page = await api.get("/api/campaigns", params={"created_by": "rita-recruiter", "limit": 1})
    assert page.status_code == 200, page.text
    [newest] = page.json()["items"]
    assert newest["campaign_id"] == newest["run_id"] == second
    cursor = page.json()["next_cursor"]
    following = await api.get(
        "/api/campaigns", params={"created_by": "rita-recruiter", "limit": 1, "cursor": cursor}
    )
    assert [c["campaign_id"] for c in following.json()["items"]] == [first]

    cancelled = await api.get("/api/campaigns", params={"status": "cancelled", "limit": 200})
    ids = [c["campaign_id"] for c in cancelled.json()["items"]]
    assert first in ids
    assert second not in ids
    assert (await api.get("/api/campaigns", params={"cursor": "nonsense"})).status_code == 422
    assert (await api.get("/api/campaigns", params={"status": "lost"})).status_code == 422


async def test_a_question_about_the_job_is_answered_in_the_conversation(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    job_id = await add_job(db, f"Basket Platform Engineer {tag}", skills=["python"])
    for n in range(2):
        await add_candidate(
            db, f"Senior{n} {tag}", email=f"senior{n}-{tag}@example.com", seniority="senior",
            years=9, skills=["python"],
        )  # fmt: skip
    conversation = f"conv-{uuid.uuid4().hex[:8]}"
    message = "Email the senior python developers in Berlin about the Underwater Basket Weaver role"
    first = await api.post(
        "/api/ai-assistant/intent", json={"message": message, "conversation_id": conversation}
    )
    assert first.status_code == 200, first.text
    detected = first.json()
    assert (detected["intent"], detected["needs_clarification"]) == ("email_campaign", False)
    run_id = detected["workflow_id"]

    asked = await wait_for_run(api, run_id, lambda r: r.get("question") is not None)
    assert (asked["status"], asked["state"]) == ("waiting", "extract_candidates")
    question = asked["question"]
    assert question["text"].startswith('I found no open job matching "underwater basket weaver".')
    assert question["field"] == "slots.job_title"
    labels = [choice["label"] for choice in question["choices"]]
    assert labels[0] == f"Basket Platform Engineer {tag} (Berlin)"
    assert question["choices"][0]["value"] == str(job_id)

    # A question for the model meanwhile is not the answer: the run keeps waiting.
    aside = await _post_answer(api, conversation, "what is a good reply rate for outreach?")
    assert (aside["mode"], aside["intent"]) == ("simple", "inference")
    assert (await get_run(api, run_id))["question"] is not None

    answer = await _post_answer(api, conversation, "1")
    assert (answer["intent"], answer["workflow_id"]) == ("answer", run_id)
    run = await wait_for_state(api, run_id, "await_review")
    assert run["question"] is None
    assert run["outputs"]["extract_candidates"]["job_id"] == str(job_id)
    assert run["outputs"]["extract_candidates"]["recipients"] >= 2
    assert run["params"]["slots"]["job_title"] == "underwater basket weaver"  # as it started

    # Once it is answered, a message is read as usual, whatever it looks like.
    later = await _post_answer(api, conversation, "2")
    assert later["intent"] != "answer"


async def test_a_question_is_answered_through_the_api(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    audience = await add_audience(db, tag, 2)
    run_id = await start_campaign(api, {**audience.slots, "job_title": "Chief Juggler"})
    await wait_for_run(api, run_id, lambda r: r.get("question") is not None)

    url = f"/api/workflows/{run_id}/input"
    assert (await api.post(url, json={"answer": ""})).status_code == 422
    answered = await api.post(url, json={"answer": audience.title})
    assert answered.status_code == 200, answered.text
    run = await wait_for_state(api, run_id, "await_review")
    assert run["outputs"]["extract_candidates"]["recipients"] == 2
    again = await api.post(url, json={"answer": "1"})
    assert again.status_code == 409  # it waits on no question any more


async def test_nobody_in_the_city_asked_is_a_question_naming_the_cities_where_they_are(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    """The audience lives in Berlin; the request says Munich: the run asks which city (Berlin,
    with how many), and goes on to drafts with the answer, instead of failing."""
    audience = await add_audience(db, tag, 2)
    run_id = await start_campaign(api, {**audience.slots, "location": "Munich"})
    run = await wait_for_run(api, run_id, lambda r: r.get("question") is not None)

    question = run["question"]
    assert question["field"] == "slots.location"
    assert question["choices"] == [{"label": "Berlin (2)", "value": "Berlin"}]
    assert "Munich" in question["text"]
    assert "Berlin (2)" in question["text"]
    assert run["status"] == "waiting"
    answered = await api.post(f"/api/workflows/{run_id}/input", json={"answer": "1"})
    assert answered.status_code == 200, answered.text
    run = await wait_for_state(api, run_id, "await_review")
    assert run["outputs"]["extract_candidates"]["recipients"] == 2


async def _post_answer(api: httpx.AsyncClient, conversation: str, message: str) -> dict[str, Any]:
    response = await api.post(
        "/api/ai-assistant/intent", json={"message": message, "conversation_id": conversation}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _at_least(smtp: SmtpTestServer, audience: Audience, count: int) -> bool:
    return len(received(smtp, audience)) >= count


async def test_a_status_question_finds_the_callers_campaign(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    older, first = await campaign_in_review(api, db, tag, 2)
    newer, second = await campaign_in_review(api, db, tag, 1)

    def asked(slots: Slots, message: str = "") -> CampaignStatusCommand:
        return CampaignStatusCommand(requested_by="rita-recruiter", slots=slots, message=message)

    named = await steering.campaign_status(db, asked(Slots(job_title=first.title)))
    assert named.campaign is not None
    assert str(named.campaign.campaign_id) == older
    assert named.waiting_for == "Waiting for review: 2 drafts to decide, 0 to send."

    latest = await steering.campaign_status(db, asked(Slots(), "how is my last campaign doing"))
    assert latest.campaign is not None
    assert str(latest.campaign.campaign_id) == newer

    both = await steering.campaign_status(db, asked(Slots(skills=[first.skill, second.skill])))
    assert both.campaign is None
    assert both.matches == 2
    assert [str(o.campaign_id) for o in both.options] == [newer, older]
    assert both.question is not None
    assert both.question.startswith("2 of your campaigns match. Which one?")

    someone_else = CampaignStatusCommand(requested_by="another-recruiter", slots=Slots())
    assert (await steering.campaign_status(db, someone_else)).matches == 0
