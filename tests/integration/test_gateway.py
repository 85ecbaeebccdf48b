"""The gateway through HTTP: health, readiness, auth, and request/reply over the real broker."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.gateway import api_keys
from tests.support.api import MakeKey
from tests.support.stack import StartGateway, StartService

pytestmark = [pytest.mark.integration, pytest.mark.tansu]


async def test_health_and_readiness(start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    async with gateway.client() as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
        docs = await http.get("/docs")
        spec = (await http.get("/openapi.json")).json()
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert set(checks) == {"kafka", "postgres", "redis"}
    assert all(check["ok"] for check in checks.values())
    assert docs.status_code == 200
    assert {"/healthz", "/readyz", "/api/whoami", "/api/services/{service}/ping"} <= set(
        spec["paths"]
    )


async def test_request_reply_round_trip(
    start_gateway: StartGateway, start_service: StartService, make_key: MakeKey
) -> None:
    start_service("intent")
    gateway = start_gateway()
    key = await make_key("admin")
    async with gateway.client(key) as http:
        response = await http.get("/api/services/intent/ping")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pong"]["service"] == "intent"
    assert body["round_trip_ms"] > 0


async def test_two_gateways_each_get_their_own_replies(
    start_gateway: StartGateway, start_service: StartService, make_key: MakeKey
) -> None:
    service = start_service("inference")
    first, second = start_gateway(), start_gateway()
    key = await make_key("admin")
    async with first.client(key) as a, second.client(key) as b:
        responses = await asyncio.gather(
            *(client.get("/api/services/inference/ping") for client in (a, b) for _ in range(25))
        )
    assert [r.status_code for r in responses] == [200] * 50
    instance = service.wait_for("started successfully")
    assert instance
    assert {r.json()["pong"]["service"] for r in responses} == {"inference"}


async def test_no_reply_in_time_is_a_504(start_gateway: StartGateway, make_key: MakeKey) -> None:
    # No campaign service runs in this test, so nobody answers.
    gateway = start_gateway(REQUEST_TIMEOUT_SECONDS="0.5")
    key = await make_key("admin")
    async with gateway.client(key) as http:
        response = await http.get("/api/services/campaign/ping")
    assert response.status_code == 504
    assert "campaign service did not answer within 0.5 s" in response.json()["detail"]


async def test_unknown_service_is_a_404(start_gateway: StartGateway, make_key: MakeKey) -> None:
    gateway = start_gateway()
    async with gateway.client(await make_key("admin")) as http:
        response = await http.get("/api/services/billing/ping")
    assert response.status_code == 404
    assert "unknown service 'billing'" in response.json()["detail"]


async def test_api_keys_missing_wrong_scoped_and_revoked(
    start_gateway: StartGateway, make_key: MakeKey, db: asyncpg.Pool
) -> None:
    gateway = start_gateway(API_KEY_CACHE_SECONDS="0")
    reviewer = await make_key("review", user="rita")
    async with gateway.client() as anonymous:
        missing = await anonymous.get("/api/whoami")
        malformed = await anonymous.get("/api/whoami", headers={"Authorization": "Bearer nope"})
        wrong = await anonymous.get(
            "/api/whoami", headers={"Authorization": f"Bearer {reviewer[:-4]}AAAA"}
        )
    async with gateway.client(reviewer) as http:
        me = await http.get("/api/whoami")
        forbidden = await http.get("/api/services/intent/ping")
        async with db.acquire() as conn:
            assert await api_keys.revoke_key(conn, reviewer)
        revoked = await http.get("/api/whoami")

    assert missing.status_code == 401
    assert "missing API key" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert malformed.status_code == 401
    assert wrong.status_code == 401
    assert "unknown or revoked" in wrong.json()["detail"]
    assert me.status_code == 200
    assert me.json()["user"] == "rita"
    assert me.json()["scopes"] == ["review"]
    assert forbidden.status_code == 403
    assert "lacks the 'admin' scope" in forbidden.json()["detail"]
    assert revoked.status_code == 401
