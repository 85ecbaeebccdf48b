"""Helpers for tests that drive the gateway's API: a client with an API key of its own, and waiting
for a run (or anything else) to get somewhere."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx

from services.gateway import api_keys
from shared.settings import Settings

if TYPE_CHECKING:
    from tests.conftest import Gateway


@contextlib.asynccontextmanager
async def client_for(
    gateway: Gateway, settings: Settings, user: str, scopes: Iterable[str]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `gateway` with a new API key for `user` with `scopes`."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        key = await api_keys.create_key(conn, user, frozenset(scopes))
    finally:
        await conn.close()
    async with gateway.client(key.token) as client:
        yield client


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
