"""Teams own their campaigns, runs, drafts and conversations: through the gateway, with the real
intent, workflow and campaign services, a key of another team gets a 404 on every route that
takes an id (the routes are read from the OpenAPI document, so a new one is covered at once) and
changes nothing; lists show only the team's own; an admin sees every team's. An intent published
by another system starts a run of the team it names.

The two teams' users have the same name: the team, not the user, decides.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts.intent import IntentDetected, Slots
from shared.settings import Settings
from shared.topics import INTENT_DETECTED
from tests.support.api import MakeKey, start_campaign, wait_for, wait_for_state
from tests.support.campaign_rows import QUICK_SENDING, add_audience
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration

SCOPES = ("workflows", "review", "assistant")
# Routes with an id that no team owns: keys (admin only), the shared talent pool (candidates),
# the signed links of emails (their token is the authority) and a service's ping.
NOT_TEAM_OWNED = re.compile(r"^/api/keys/|^/api/candidates/|^/t/|^/u/|^/api/services/")
BODIES = {  # what a route with a body is sent (a valid one: the 404 must come from the team)
    "/api/workflows/{run_id}/input": {"answer": "1"},
    "/api/campaigns/{campaign_id}/emails/{email_id}/edit": {"subject": "Changed by blue"},
}


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(
        {"intent": {}, "workflow": QUICK_SENDING, "campaign": QUICK_SENDING},
        user="rita",
        scopes=SCOPES,
    )


@dataclass(frozen=True)
class Teams:
    red: httpx.AsyncClient
    blue: httpx.AsyncClient
    admin: httpx.AsyncClient


@pytest.fixture(scope="module")
async def teams(gateway: Gateway, make_key: MakeKey) -> AsyncIterator[Teams]:
    red_key = await make_key(*SCOPES, user="rita", team="red")
    blue_key = await make_key(*SCOPES, user="rita", team="blue")
    admin_key = await make_key("admin", user="ada", team="ops")
    async with (
        gateway.client(red_key) as red,
        gateway.client(blue_key) as blue,
        gateway.client(admin_key) as admin,
    ):
        yield Teams(red, blue, admin)


@dataclass(frozen=True)
class RedObjects:
    run_id: str  # also the campaign's id
    email_id: str
    conversation_id: str


@pytest.fixture(scope="module")
async def red_objects(teams: Teams, prepared: Settings) -> RedObjects:
    """A campaign of team red waiting for review, and a conversation of red's."""
    db = await asyncpg.connect(prepared.database_url)
    try:
        audience = await add_audience(db, f"team{uuid.uuid4().hex[:6]}", 3)
    finally:
        await db.close()
    run_id = await start_campaign(teams.red, {**audience.slots, "limit": 3})
    await wait_for_state(teams.red, run_id, "await_review")
    emails = await teams.red.get(f"/api/campaigns/{run_id}/emails")
    assert emails.status_code == 200, emails.text
    chat = await teams.red.post(
        "/api/ai-assistant/chat", json={"message": "how many python developers in Berlin?"}
    )
    assert chat.status_code == 200, chat.text
    return RedObjects(run_id, emails.json()["items"][0]["email_id"], chat.json()["conversation_id"])


def id_routes(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path) of every operation whose path takes an id a team owns."""
    return sorted(
        (method.upper(), path)
        for path, operations in openapi["paths"].items()
        if "{" in path and not NOT_TEAM_OWNED.search(path)
        for method in operations
    )


async def test_another_teams_key_gets_404_on_every_id_route_and_changes_nothing(
    teams: Teams, red_objects: RedObjects
) -> None:
    openapi = (await teams.red.get("/openapi.json")).json()
    routes = id_routes(openapi)
    ids = {
        "run_id": red_objects.run_id,
        "campaign_id": red_objects.run_id,
        "email_id": red_objects.email_id,
        "conversation_id": red_objects.conversation_id,
    }
    before = await _state(teams.red, red_objects)

    answers = {}
    for method, path in routes:
        url = path.format(**ids)
        answers[(method, path)] = (
            await teams.blue.request(method, url, json=BODIES.get(path))
        ).status_code

    assert {route: code for route, code in answers.items() if code != 404} == {}
    # Every id route a recruiter uses is among those tried (the list is read, not written out).
    tried = {path for _, path in routes}
    assert {
        "/api/workflows/{run_id}",
        "/api/workflows/{run_id}/cancel",
        "/api/workflows/{run_id}/events",
        "/api/campaigns/{campaign_id}",
        "/api/campaigns/{campaign_id}/cancel",
        "/api/campaigns/{campaign_id}/approve-all",
        "/api/campaigns/{campaign_id}/emails/{email_id}/approve",
        "/api/campaigns/{campaign_id}/emails/{email_id}/edit",
        "/api/ai-assistant/conversations/{conversation_id}",
    } <= tried
    assert len(routes) >= 20
    assert await _state(teams.red, red_objects) == before  # nothing changed


async def test_the_owning_team_and_an_admin_find_them(
    teams: Teams, red_objects: RedObjects
) -> None:
    for client in (teams.red, teams.admin):
        run = await client.get(f"/api/workflows/{red_objects.run_id}")
        assert run.status_code == 200, run.text
        assert run.json()["team"] == "red"
        campaign = await client.get(f"/api/campaigns/{red_objects.run_id}")
        assert campaign.status_code == 200, campaign.text
        assert campaign.json()["team"] == "red"
    conversation = await teams.admin.get(
        f"/api/ai-assistant/conversations/{red_objects.conversation_id}"
    )
    assert conversation.status_code == 200, conversation.text


async def test_lists_show_only_the_teams_own(teams: Teams, red_objects: RedObjects) -> None:
    async def listed(client: httpx.AsyncClient, path: str, key: str) -> set[str]:
        response = await client.get(path, params={"limit": 100})
        assert response.status_code == 200, response.text
        items = response.json()
        return {item[key] for item in (items["items"] if isinstance(items, dict) else items)}

    run_id = red_objects.run_id
    assert run_id in await listed(teams.red, "/api/workflows", "run_id")
    assert run_id in await listed(teams.admin, "/api/workflows", "run_id")
    assert run_id not in await listed(teams.blue, "/api/workflows", "run_id")
    assert run_id in await listed(teams.red, "/api/campaigns", "campaign_id")
    assert run_id in await listed(teams.admin, "/api/campaigns", "campaign_id")
    assert run_id not in await listed(teams.blue, "/api/campaigns", "campaign_id")
    conversation = red_objects.conversation_id
    assert conversation in await listed(
        teams.red, "/api/ai-assistant/conversations", "conversation_id"
    )
    assert conversation not in await listed(
        teams.blue, "/api/ai-assistant/conversations", "conversation_id"
    )


async def test_a_chat_cannot_continue_another_teams_conversation(
    teams: Teams, red_objects: RedObjects
) -> None:
    response = await teams.blue.post(
        "/api/ai-assistant/chat",
        json={"message": "same but in Munich", "conversation_id": red_objects.conversation_id},
    )
    assert response.status_code == 404, response.text


async def test_the_same_conversation_id_is_two_conversations_for_two_teams(teams: Teams) -> None:
    """A client-chosen conversation id on /intent: a follow-up reads its own team's last turn."""
    conversation = f"c-{uuid.uuid4().hex[:8]}"

    async def detect(client: httpx.AsyncClient, message: str) -> dict[str, Any]:
        response = await client.post(
            "/api/ai-assistant/intent", json={"message": message, "conversation_id": conversation}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    first = await detect(teams.red, "how many senior golang developers in Amsterdam do we have?")
    assert first["intent"] == "candidate_search"
    blue = await detect(teams.blue, "same but in Munich")
    red = await detect(teams.red, "same but in Munich")
    assert (red["slots"]["location"], red["slots"]["skills"]) == ("munich", ["go"])
    assert blue["slots"].get("skills") != ["go"]  # blue had no turn to refer to


async def test_an_intent_from_another_system_starts_a_run_of_the_team_it_names(
    teams: Teams, prepared: Settings
) -> None:
    intent = IntentDetected(
        mode="workflow", intent="email_campaign", confidence=0.9, source="ats-sync",
        slots=Slots(skills=["python"], location="Berlin", job_title="Team Test Engineer"),
        team="blue",
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            INTENT_DETECTED.name,
            intent.model_dump_json().encode(),
            key=str(intent.intent_id).encode(),
        )
    finally:
        await producer.stop()
    url = f"/api/workflows/{intent.workflow_id}"

    async def started() -> dict[str, Any] | None:
        response = await teams.blue.get(url)
        return response.json() if response.status_code == 200 else None

    run = await wait_for(started, timeout=20, what="the run of the published intent")
    assert run["team"] == "blue"
    assert (await teams.red.get(url)).status_code == 404


async def _state(client: httpx.AsyncClient, red: RedObjects) -> dict[str, Any]:
    """What another team's requests might have changed: the run, the campaign, every email."""
    run = (await client.get(f"/api/workflows/{red.run_id}")).json()
    campaign = (await client.get(f"/api/campaigns/{red.run_id}")).json()
    emails = (await client.get(f"/api/campaigns/{red.run_id}/emails")).json()
    revisions = await client.get(f"/api/campaigns/{red.run_id}/emails/{red.email_id}/revisions")
    conversation = await client.get(f"/api/ai-assistant/conversations/{red.conversation_id}")
    return {
        "run": (run["status"], run["state"], run["sequence"]),
        "campaign": (campaign["status"], campaign["paused"], campaign["counts"]),
        "emails": [(e["email_id"], e["status"], e["subject"], e["body"]) for e in emails["items"]],
        "revisions": revisions.json(),
        "turns": conversation.json()["turns"],
    }
