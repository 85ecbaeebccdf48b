"""/readyz reports each dependency, and turns 503 when one goes away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from deploy.infra import LocalInfra
from deploy.servers import free_port
from shared.broker import ensure_topics
from shared.settings import Settings
from shared.topics import ALL_TOPICS
from tests.support.stack import Launcher

pytestmark = pytest.mark.integration


async def test_readyz_turns_503_when_the_broker_goes_away(
    prepared: Settings, launcher: Launcher, tmp_path: Path
) -> None:
    # A broker of this test's own, so stopping it disturbs no other test.
    env = {"DATABASE_URL": prepared.database_url, "REDIS_URL": prepared.redis_url}
    broker = LocalInfra(tmp_path, env=env, kafka_port=free_port())
    endpoints = broker.start()
    try:
        own = prepared.model_copy(
            update={"kafka_bootstrap_servers": endpoints.kafka_bootstrap_servers}
        )
        await ensure_topics(own, ALL_TOPICS)
        gateway = launcher.gateway(KAFKA_BOOTSTRAP_SERVERS=endpoints.kafka_bootstrap_servers)
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            assert (await http.get("/readyz")).status_code == 200
            broker.stop()

            async def not_ready() -> httpx.Response:
                while True:
                    response = await http.get("/readyz")
                    if response.status_code == 503:
                        return response
                    await asyncio.sleep(0.2)

            response = await asyncio.wait_for(not_ready(), 30)
            health = await http.get("/healthz")
    finally:
        broker.stop()
    checks = response.json()["checks"]
    assert response.json()["ready"] is False
    assert checks["kafka"]["ok"] is False
    assert checks["kafka"]["error"]
    assert checks["postgres"]["ok"] is True
    assert checks["redis"]["ok"] is True
    assert health.status_code == 200  # the process is still up
