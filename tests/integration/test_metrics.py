"""Prometheus metrics after real traffic: the gateway's `GET /metrics`, and the intent and workflow
services' metrics servers (`METRICS_PORT`), scraped and parsed. Intent requests through the
gateway, a campaign request that starts a run, and a test workflow whose step fails twice and then
succeeds (its actions run by the `testkit` owner in this process)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.servers import free_port
from tests.support.action_owner import ActionOwner
from tests.support.api import FINISHED, wait_for_status
from tests.support.stack import Gateway, Stack
from tests.support.workflows import ENGINE_ENV

pytestmark = pytest.mark.integration

INTENT_URL = "/api/ai-assistant/intent"
INTENT_PORT = free_port()
WORKFLOW_PORT = free_port()
QUESTIONS = 5

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def stack(testkit_owner: ActionOwner) -> Stack:
    return Stack(
        {
            "intent": {"METRICS_PORT": str(INTENT_PORT)},
            "workflow": {**ENGINE_ENV, "METRICS_PORT": str(WORKFLOW_PORT)},
        },
        user="metrics-tester",
        scopes=("assistant", "workflows"),
    )


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


async def eventually(url: str, check: Callable[[Samples], bool], timeout: float = 20) -> Samples:
    """Scrape `url` until `check` holds (a service counts events a moment after the reply)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await scrape(url)
        if check(samples) or asyncio.get_running_loop().time() > deadline:
            return samples
        await asyncio.sleep(0.2)


async def test_the_named_series_after_real_traffic(
    api: httpx.AsyncClient, gateway: Gateway
) -> None:
    for n in range(QUESTIONS):
        response = await api.post(INTENT_URL, json={"message": f"What is a good reply rate #{n}?"})
        assert response.status_code == 200, response.text
    campaign = await api.post(
        INTENT_URL,
        json={
            "message": "Email the 30 best senior Golang developers in Berlin with 5+ years of "
            "experience about the Staff Backend Engineer role"
        },
    )
    assert campaign.status_code == 200, campaign.text
    started = await api.post(
        "/api/workflows", json={"type": "testkit.flaky", "params": {"fail_attempts": 2}}
    )
    assert started.status_code == 201, started.text
    run = await wait_for_status(api, started.json()["run_id"], FINISHED)
    assert run["status"] == "succeeded"

    # The gateway: requests by route template (not the raw path) and status, and their duration.
    http = await scrape(f"{gateway.base_url}/metrics")
    route = {"method": "POST", "route": INTENT_URL}
    assert value(http, "recruiter_http_requests_total", **route, status="200") >= QUESTIONS + 1
    assert value(http, "recruiter_http_request_duration_seconds_count", **route) >= QUESTIONS + 1
    assert value(http, "recruiter_http_request_duration_seconds_sum", **route) > 0
    runs = {"method": "GET", "route": "/api/workflows/{run_id}", "status": "200"}
    assert value(http, "recruiter_http_requests_total", **runs) >= 1
    assert not any("route" in dict(labels) and dict(labels)["route"].count("-") >= 4
                   for _, labels in http)  # no run id (a raw path) as a route  # fmt: skip
    assert value(http, "process_resident_memory_bytes") > 0
    async with httpx.AsyncClient(base_url=gateway.base_url) as anonymous:
        schema = (await anonymous.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]

    # The intent service: its commands by type and outcome, their duration, its outbox.
    intent = await eventually(
        f"http://127.0.0.1:{INTENT_PORT}/metrics",
        lambda s: "recruiter_outbox_backlog" in names(s),
    )
    detect = {"service": "intent", "command": "detect_intent"}
    assert value(intent, "recruiter_commands_total", **detect, outcome="ok") >= QUESTIONS + 1
    assert value(intent, "recruiter_command_duration_seconds_count", **detect) >= QUESTIONS + 1
    assert value(intent, "recruiter_command_duration_seconds_sum", **detect) > 0
    assert value(intent, "recruiter_outbox_backlog", schema="intent") >= 0
    assert ("recruiter_outbox_oldest_age_seconds", frozenset({("schema", "intent")})) in intent
    assert value(intent, "recruiter_outbox_published_total", schema="intent") >= 1

    # The workflow service: runs by type and status, a step's durations and retries, the events
    # it consumed and how long their handlers took, its consumers' lag, its outbox.
    def workflow_done(samples: Samples) -> bool:
        finished = {"workflow_type": "testkit.flaky", "status": "succeeded"}
        campaigns = {"workflow_type": "email_campaign"}
        return (
            value(samples, "recruiter_workflow_runs_finished_total", **finished) >= 1
            and value(samples, "recruiter_workflow_runs_started_total", **campaigns) >= 1
            and "recruiter_outbox_backlog" in names(samples)
        )

    workflow = await eventually(f"http://127.0.0.1:{WORKFLOW_PORT}/metrics", workflow_done)
    assert workflow_done(workflow), sorted(names(workflow))
    flaky = {"workflow_type": "testkit.flaky"}
    assert value(workflow, "recruiter_workflow_runs_started_total", **flaky) >= 1
    steps = "recruiter_workflow_step_duration_seconds_count"
    assert value(workflow, steps, **flaky, action="testkit.flaky", outcome="failed") >= 2
    assert value(workflow, steps, **flaky, action="testkit.flaky", outcome="succeeded") >= 1
    assert value(workflow, "recruiter_workflow_step_retries_total", **flaky) >= 2
    assert value(workflow, "recruiter_events_consumed_total", outcome="ok") >= 3
    assert value(workflow, "recruiter_event_handler_duration_seconds_count") >= 3
    assert value(workflow, "recruiter_event_handler_duration_seconds_sum") > 0
    assert "recruiter_consumer_lag" in names(workflow)
    assert value(workflow, "recruiter_commands_total", service="workflow", outcome="ok") >= 1
    assert ("recruiter_outbox_backlog", frozenset({("schema", "workflow")})) in workflow
    assert value(workflow, "recruiter_outbox_published_total", schema="workflow") >= 3
    assert value(workflow, "recruiter_dead_letters_total") == 0
