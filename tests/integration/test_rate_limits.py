"""Rate and stream limits through real gateways on the test stack's Redis (tests/support/stack.py
turns them off for every other test; these turn them back on): a key over its limit gets 429s
with Retry-After while another key is unaffected; two uvicorn workers share one window; an
anonymous client over the public limit on the open pixel gets 429; a wrong key counts against
the client's address; a key holds at most MAX_STREAMS_PER_KEY event streams, a closed one frees
its place and so does a dead worker's when its lease ends; a slow request is a 504; without Redis
requests go through with one warning.

Every address-counted test sends its own client address in X-Forwarded-For through a gateway
that trusts 127.0.0.1 as its proxy, so no two tests (or two runs) share an address's window."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter
from contextlib import AsyncExitStack

import httpx
import pytest
from redis.asyncio import Redis

from deploy.servers import free_port
from services.gateway.rate_limits import REDIS_DOWN, Limit, RateLimiter
from services.gateway.sse import NO_SLOT, StreamSlots
from shared.settings import Settings
from tests.support.action_owner import ActionOwner
from tests.support.api import MakeKey, wait_for
from tests.support.processes import ServiceProcess, python_module
from tests.support.stack import Gateway, Launcher, StartGateway, StartService, stack_env
from tests.support.workflows import ENGINE_ENV

pytestmark = pytest.mark.integration

LIMITED = "/api/ai-assistant/conversations"  # behind a key, answered from PostgreSQL alone
PROXY = {"TRUSTED_PROXIES": "127.0.0.1"}


def new_address() -> str:
    """A client address of this test's own (IPv6 documentation range)."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


def assert_refused(response: httpx.Response, setting: str) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.headers["RateLimit-Remaining"] == "0"
    detail = response.json()["detail"]
    assert setting in detail
    assert f"retry in {retry_after} s" in detail


async def test_a_key_over_its_limit_gets_429s_while_another_key_is_unaffected(
    start_gateway: StartGateway, make_key: MakeKey
) -> None:
    gateway = start_gateway(RATE_LIMIT_PER_KEY_PER_MINUTE="20")
    busy, quiet = await make_key("assistant", user="busy"), await make_key("assistant")
    async with gateway.client(busy) as hammer, gateway.client(quiet) as other:
        load = [hammer.get(LIMITED) for _ in range(60)]
        calm = [other.get(LIMITED) for _ in range(15)]
        answers = await asyncio.gather(*load, *calm)
    hammered, unaffected = answers[:60], answers[60:]

    assert Counter(r.status_code for r in hammered) == {200: 20, 429: 40}
    for response in hammered:
        assert response.headers["RateLimit-Limit"] == "20"
        if response.status_code == 429:
            assert_refused(response, "RATE_LIMIT_PER_KEY_PER_MINUTE")
    assert [r.status_code for r in unaffected] == [200] * 15
    remaining = sorted(int(r.headers["RateLimit-Remaining"]) for r in unaffected)
    assert remaining == list(range(5, 20))  # 20 a minute, 15 used: each answer said what was left


async def test_two_workers_together_allow_exactly_the_limit(
    launcher: Launcher, make_key: MakeKey
) -> None:
    port = free_port()
    argv = python_module("services.gateway", "serve", "--port", str(port), "--workers", "2")
    env = stack_env(launcher.settings, RATE_LIMIT_PER_KEY_PER_MINUTE="30")
    process = ServiceProcess("gateway", argv, env).start()
    launcher.started.append(process)
    gateway = Gateway(process, f"http://127.0.0.1:{port}")
    await wait_for(lambda: instances_up(gateway), timeout=60, what="two gateway workers")
    key = await make_key("assistant", user="two-workers")

    # A new connection per request, so the two workers' accept loops share the requests.
    fresh = httpx.Limits(max_keepalive_connections=0)
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(
        base_url=gateway.base_url,
        headers={"Authorization": f"Bearer {key}"},
        limits=fresh,
        timeout=30,
    ) as client:
        for _ in range(3):
            answers += await asyncio.gather(*(client.get(LIMITED) for _ in range(40)))

    assert Counter(r.status_code for r in answers) == {200: 30, 429: 90}
    served = await wait_for(lambda: served_by(process), what="both workers in the access log")
    assert len(served) == 2, served  # each worker answered some of them


async def instances_up(gateway: Gateway) -> bool:
    """Whether both workers answer: their /healthz instance ids, over new connections."""
    seen = set()
    for _ in range(20):
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=5) as client:
            try:
                response = await client.get("/healthz")
            except httpx.TransportError:
                return False
        seen.add(response.json()["instance_id"])
    return len(seen) == 2


async def served_by(process: ServiceProcess) -> dict[str, Counter[int]]:
    """The statuses each worker (by instance) answered LIMITED with, from the JSON access log;
    empty until both have."""
    found: dict[str, Counter[int]] = {}
    for line in list(process.lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("path") == LIMITED and "status" in entry:
            found.setdefault(entry.get("instance", "?"), Counter())[entry["status"]] += 1
    return found if len(found) == 2 else {}


async def test_an_anonymous_client_over_the_public_limit_on_the_open_pixel_gets_429(
    start_gateway: StartGateway,
) -> None:
    # No campaign service: the pixel waits 0.5 s for it, then answers its image anyway.
    gateway = start_gateway(
        RATE_LIMIT_PUBLIC_PER_MINUTE="4", REQUEST_TIMEOUT_SECONDS="0.5", **PROXY
    )
    reader, neighbour = new_address(), new_address()
    async with gateway.client() as browser:
        pixel = f"/t/o/{uuid.uuid4().hex}.gif"
        answers = [await browser.get(pixel, headers={"X-Forwarded-For": reader}) for _ in range(6)]
        other_route = await browser.get(
            f"/t/c/{uuid.uuid4().hex}",
            params={"url": "https://example.com"},
            headers={"X-Forwarded-For": reader},
        )
        other_reader = await browser.get(pixel, headers={"X-Forwarded-For": neighbour})

    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429, 429]
    assert answers[0].headers["content-type"] == "image/gif"
    assert [r.headers["RateLimit-Remaining"] for r in answers[:4]] == ["3", "2", "1", "0"]
    assert_refused(answers[4], "RATE_LIMIT_PUBLIC_PER_MINUTE")
    assert other_route.status_code != 429  # each public route has its own window
    assert other_reader.status_code == 200  # and each address


async def test_wrong_keys_count_against_the_address_and_a_real_key_against_itself(
    start_gateway: StartGateway, make_key: MakeKey
) -> None:
    gateway = start_gateway(
        RATE_LIMIT_ANONYMOUS_PER_MINUTE="3", RATE_LIMIT_PER_KEY_PER_MINUTE="100", **PROXY
    )
    address = {"X-Forwarded-For": new_address()}
    # A made-up key id in the header: never the window it is counted in.
    forged = f"rk_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"
    async with gateway.client(forged) as attacker, gateway.client() as nobody:
        wrong = [await attacker.get(LIMITED, headers=address) for _ in range(2)]
        missing = await nobody.get(LIMITED, headers=address)
        refused = await attacker.get(LIMITED, headers=address)
        also_refused = await nobody.get("/app/sign-in", headers=address)
    async with gateway.client(await make_key("assistant")) as user:
        valid = await user.get(LIMITED, headers=address)

    assert [r.status_code for r in [*wrong, missing]] == [401, 401, 401]
    assert [r.headers["RateLimit-Remaining"] for r in [*wrong, missing]] == ["2", "1", "0"]
    assert_refused(refused, "RATE_LIMIT_ANONYMOUS_PER_MINUTE")
    assert_refused(also_refused, "RATE_LIMIT_ANONYMOUS_PER_MINUTE")
    assert valid.status_code == 200, valid.text
    assert valid.headers["RateLimit-Limit"] == "100"


async def test_probes_are_never_limited(start_gateway: StartGateway) -> None:
    gateway = start_gateway(RATE_LIMIT_ANONYMOUS_PER_MINUTE="1", **PROXY)
    address = {"X-Forwarded-For": new_address()}
    async with gateway.client() as probe:
        answers = [await probe.get("/healthz", headers=address) for _ in range(5)]
        answers += [await probe.get("/readyz", headers=address) for _ in range(3)]
    assert [r.status_code for r in answers] == [200] * 8
    assert "RateLimit-Limit" not in answers[0].headers


MAX_STREAMS = 3


async def open_stream(
    stack: AsyncExitStack, client: httpx.AsyncClient, path: str
) -> httpx.Response:
    """Open an event stream; an accepted one is read up to its first event (it is open)."""
    response = await stack.enter_async_context(client.stream("GET", path))
    if response.status_code == 200:
        # The line iterator is kept (and closed with the stack): closing it closes the stream.
        lines = response.aiter_lines()
        stack.push_async_callback(lines.aclose)  # type: ignore[attr-defined]
        async for line in lines:
            if line.startswith("event: "):
                assert line == "event: snapshot"
                break
    else:
        await response.aread()
    return response


async def test_a_key_holds_at_most_max_streams_and_a_closed_one_frees_its_place(
    start_service: StartService,
    start_gateway: StartGateway,
    testkit_owner: ActionOwner,
    make_key: MakeKey,
) -> None:
    start_service("workflow", **ENGINE_ENV)
    gateway = start_gateway(MAX_STREAMS_PER_KEY=str(MAX_STREAMS))
    key, other_key = await make_key("workflows"), await make_key("workflows")
    async with gateway.client(key) as api, gateway.client(other_key) as other:
        started = await api.post("/api/workflows", json={"type": "testkit.approval", "params": {}})
        assert started.status_code == 201, started.text
        path = f"/api/workflows/{started.json()['run_id']}/events"

        async with AsyncExitStack() as first, AsyncExitStack() as rest:
            accepted = [await open_stream(first, api, path)]
            accepted += [await open_stream(rest, api, path) for _ in range(MAX_STREAMS - 1)]
            assert [r.status_code for r in accepted] == [200] * MAX_STREAMS
            over = await open_stream(rest, api, path)
            assert over.status_code == 429
            assert int(over.headers["Retry-After"]) >= 1
            assert "MAX_STREAMS_PER_KEY" in over.json()["detail"]
            async with AsyncExitStack() as elsewhere:  # another key has places of its own
                assert (await open_stream(elsewhere, other, path)).status_code == 200

            await first.aclose()  # the client goes away from one stream

            async def reopened() -> bool:
                async with AsyncExitStack() as again:
                    return (await open_stream(again, api, path)).status_code == 200

            await wait_for(reopened, timeout=20, what="a place freed by the closed stream")


async def test_a_request_over_its_deadline_is_a_504_with_the_usual_error_body(
    start_gateway: StartGateway, make_key: MakeKey
) -> None:
    # No workflow service: the route would wait REQUEST_TIMEOUT_SECONDS (30 s) for its reply;
    # the gateway's own deadline answers first.
    gateway = start_gateway(REQUEST_TIMEOUT_SECONDS="30", HTTP_REQUEST_TIMEOUT_SECONDS="0.5")
    async with gateway.client(await make_key("workflows")) as api:
        response = await api.get(f"/api/workflows/{uuid.uuid4()}")
        health = await api.get("/healthz")
    assert response.status_code == 504, response.text
    assert "HTTP_REQUEST_TIMEOUT_SECONDS" in response.json()["detail"]
    assert health.status_code == 200  # the gateway goes on serving


async def test_without_redis_requests_go_through_with_one_warning_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nothing_there = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    limiter, slots = RateLimiter(nothing_there), StreamSlots(nothing_there, most=1)
    limit = Limit("per API key", "RATE_LIMIT_PER_KEY_PER_MINUTE", 1)
    REDIS_DOWN.reset()
    with caplog.at_level(logging.WARNING, logger="services.gateway.rate_limits"):
        decisions = [await limiter.hit(f"key:{uuid.uuid4().hex}", limit) for _ in range(3)]
        places = [await slots.acquire(uuid.uuid4().hex) for _ in range(3)]
    await nothing_there.aclose()
    assert decisions == [None, None, None]  # let through, no headers
    assert places == [NO_SLOT] * 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Redis did not answer" in warnings[0].getMessage()


async def test_a_stream_whose_worker_died_frees_its_place_when_its_lease_ends(
    prepared: Settings,
) -> None:
    # A worker that took a place and died never renews it nor gives it back: the lease (3 s
    # here, 30 s in the gateway) ends and the place is free again. One that renews keeps it.
    redis = Redis.from_url(prepared.redis_url)
    slots = StreamSlots(redis, most=1, lease=3.0)
    dead, alive = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        assert await slots.acquire(dead) is not None
        assert await slots.acquire(dead) is None  # the dead worker's stream holds the place
        await wait_for(lambda: slots.acquire(dead), timeout=10, what="the lease to end")

        held = await slots.acquire(alive)
        assert held is not None
        for _ in range(5):  # renewed for longer than one lease: still held
            await held.renew()
            assert await slots.acquire(alive) is None
            await asyncio.sleep(1.0)
        await held.release()
        assert await slots.acquire(alive) is not None
    finally:
        await redis.aclose()
