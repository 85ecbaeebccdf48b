"""Helpers for tests that drive the gateway's API: API keys, starting an email campaign, and
waiting for a run (or anything else) to get somewhere.

A client with a key is always `gateway.client(await make_key(*scopes, user=...))`: the `make_key`
fixture (or `create_key`, which it calls) makes the key, `Gateway.client` sends it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import httpx

from services.gateway import api_keys
from shared.contracts.common import DEFAULT_TEAM
from shared.settings import Settings

FINISHED = {"succeeded", "failed", "cancelled", "expired"}  # a run's final statuses

MakeKey = Callable[..., Awaitable[str]]


async def create_key(
    settings: Settings, *scopes: str, user: str = "test-user", team: str = DEFAULT_TEAM
) -> str:
    """A new API key for `user` of `team` with `scopes`, in the test stack's database: its
    token."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        key = await api_keys.create_key(conn, user, frozenset(scopes), team=team)
    finally:
        await conn.close()
    return key.token


async def start_campaign(api: httpx.AsyncClient, slots: Mapping[str, Any], **params: Any) -> str:
    """Start an email campaign for the audience `slots` describe (with `params` beside the slots,
    such as `review_hours`); its run id."""
    body = {"type": "email_campaign", "params": {"slots": dict(slots), **params}}
    response = await api.post("/api/workflows", json=body)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout: float = 20, what: str = "condition"
) -> Any:
    """Call `check` every 50 ms until it returns something true, and return that."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        await asyncio.sleep(0.05)


async def get_run(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run as `GET /api/workflows/{id}` shows it; a run not started yet (it starts
    asynchronously from an intent) shows as status "not started"."""
    response = await api.get(f"/api/workflows/{run_id}")
    if response.status_code == 404:
        return {"run_id": run_id, "state": None, "status": "not started"}
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def wait_for_run(
    api: httpx.AsyncClient,
    run_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 30,
) -> dict[str, Any]:
    """Poll the run until `done(run)`; a run not started or still pending is never done."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = await get_run(api, run_id)
        if run["status"] not in ("not started", "pending") and done(run):
            return run
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run {run_id} stayed {run['status']}: {json.dumps(run)[:2000]}")
        await asyncio.sleep(0.05)


async def wait_for_status(
    api: httpx.AsyncClient, run_id: str, statuses: set[str], timeout: float = 30
) -> dict[str, Any]:
    """Poll the run until its status is one of `statuses`."""
    return await wait_for_run(api, run_id, lambda run: run["status"] in statuses, timeout)


async def wait_for_state(
    api: httpx.AsyncClient, run_id: str, state: str, timeout: float = 60
) -> dict[str, Any]:
    """Poll the run until it is in `state`; a run that fails, is cancelled or expires on the way
    fails the test at once."""

    def reached(run: dict[str, Any]) -> bool:
        assert run["status"] not in ("failed", "cancelled", "expired"), json.dumps(run)
        return bool(run["state"] == state)

    return await wait_for_run(api, run_id, reached, timeout)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A Server-Sent Events response's events, in order: (event name, its JSON data)."""
    name = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))
