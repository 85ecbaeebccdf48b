"""The gateway's FastAPI app: health, readiness, auth, and request/reply to the services."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from faststream.kafka import KafkaBroker
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import BaseModel, Field

from services.gateway import (
    errors,
    routes_assistant,
    routes_audit,
    routes_campaigns,
    routes_candidates,
    routes_inference,
    routes_keys,
    routes_review,
    routes_tracking,
    routes_workflows,
)
from services.gateway.api_keys import KeyStore, Principal
from services.gateway.audit import AuditConsumer
from services.gateway.auth import authenticate, require
from services.gateway.key_changes import KeyChanges
from services.gateway.rate_limits import RateLimiter, RateLimitMiddleware, RequestDeadline
from services.gateway.readiness import Readiness, check_all
from services.gateway.run_events import RunEventHub
from services.gateway.services import Client
from services.gateway.sse import StreamSlots
from services.gateway.web import pages
from services.gateway.web_sessions import SessionStore
from shared.answer_cache import AnswerCache
from shared.broker import check_kafka, create_broker, delete_topic, ensure_topics
from shared.cache import create_redis
from shared.contracts.common import PingCommand, Pong
from shared.db import create_pool
from shared.heap import freeze_startup_objects
from shared.metrics import CONTENT_TYPE, HttpMetricsMiddleware, exposition
from shared.rpc import attach_client
from shared.service import VERSION
from shared.settings import Settings, get_settings
from shared.telemetry import setup_tracing, shutdown_tracing
from shared.topics import SERVICES


class Health(BaseModel):
    status: str = Field("ok", examples=["ok"])
    instance_id: str
    version: str


class WhoAmI(BaseModel):
    user: str
    team: str
    key_id: str
    scopes: list[str]


class PingResult(BaseModel):
    pong: Pong
    round_trip_ms: float


def create_app(settings: Settings) -> FastAPI:
    instance_id = uuid.uuid4().hex[:12]
    tracer_provider = setup_tracing("gateway", instance_id, settings)
    broker: KafkaBroker = create_broker(
        settings, client_id="gateway", tracer_provider=tracer_provider
    )
    client, replies = attach_client(
        broker, settings, "gateway", instance_id, settings.request_timeout_seconds
    )
    run_events = RunEventHub()
    run_events.attach(broker, settings)
    audit_log = AuditConsumer(settings, tracer_provider)  # each entry stored by one worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await check_kafka(settings)
        pool = await create_pool(settings)
        redis = await create_redis(settings)
        await ensure_topics(settings, [replies])
        await broker.start()
        audit_log.start(pool)  # joins its group in the background: startup does not wait
        app.state.pool, app.state.redis, app.state.broker = pool, redis, broker
        app.state.key_store = KeyStore(pool, settings.api_key_cache_seconds)
        key_changes = KeyChanges(redis, app.state.key_store)  # revocations reach us at once
        await key_changes.start(settings.startup_timeout_seconds)
        app.state.answer_cache = AnswerCache(redis, settings.llm_cache_ttl_seconds)
        app.state.web_sessions = SessionStore(redis, settings.web_session_seconds)
        app.state.rate_limiter = RateLimiter(redis)
        app.state.stream_slots = StreamSlots(redis, settings.max_streams_per_key)
        app.state.client = client
        app.state.run_events = run_events
        freeze_startup_objects()
        try:
            yield
        finally:
            await key_changes.stop()
            await app.state.key_store.close()
            await audit_log.stop()
            await broker.stop()
            await delete_topic(settings, replies.name)
            await redis.aclose()
            await pool.close()
            shutdown_tracing(tracer_provider)

    app = FastAPI(
        title="Recruiter assistant gateway",
        version=VERSION,
        description="The HTTP API of the dual-mode recruiting assistant. Every `/api` route needs "
        "`Authorization: Bearer <API key>`.",
        lifespan=lifespan,
    )
    app.state.instance_id = instance_id
    app.state.settings = settings
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=tracer_provider, excluded_urls="healthz,readyz,metrics"
    )
    app.add_middleware(RateLimitMiddleware)  # inside the metrics: they count its 429s
    app.add_middleware(RequestDeadline)
    app.add_middleware(HttpMetricsMiddleware)

    errors.install(app)
    app.include_router(routes_assistant.router)
    app.include_router(routes_inference.router)
    app.include_router(routes_workflows.router)
    app.include_router(routes_review.router)
    app.include_router(routes_campaigns.router)
    app.include_router(routes_campaigns.sending)
    app.include_router(routes_candidates.router)
    app.include_router(routes_tracking.router)
    app.include_router(routes_keys.router)
    app.include_router(routes_audit.router)
    app.include_router(pages.router)
    pages.mount_static(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app", status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics (text exposition format), unauthenticated like /healthz: keep
        the gateway's port off the internet or block /metrics at the edge."""
        return Response(exposition(), media_type=CONTENT_TYPE)

    @app.get("/healthz", tags=["ops"], summary="The process is up")
    async def healthz() -> Health:
        return Health(instance_id=instance_id, version=VERSION)

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Kafka, PostgreSQL and Redis are reachable",
        responses={503: {"model": Readiness, "description": "A dependency is not reachable"}},
    )
    async def readyz(request: Request, response: Response) -> Readiness:
        state = request.app.state
        result = await check_all(
            {
                "kafka": lambda: state.broker.ping(timeout=2.0),
                "postgres": lambda: state.pool.fetchval("SELECT 1"),
                "redis": lambda: state.redis.ping(),
            }
        )
        if not result.ready:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return result

    @app.get(
        "/api/whoami",
        tags=["auth"],
        summary="The user, team and scopes of the calling API key",
        responses=errors.error_responses(401),
    )
    async def whoami(principal: Annotated[Principal, Depends(authenticate)]) -> WhoAmI:
        return WhoAmI(
            user=principal.user,
            team=principal.team,
            key_id=principal.key_id,
            scopes=sorted(principal.scopes),
        )

    @app.get(
        "/api/services/{service}/ping",
        tags=["ops"],
        summary="Round trip to a service over Kafka",
        responses={
            **errors.error_responses(401, 403, 422),
            404: {"description": "Unknown service"},
            504: {"description": "No reply in time"},
        },
    )
    async def ping_service(
        service: str, client: Client, _: Annotated[Principal, Depends(require("admin"))]
    ) -> PingResult:
        if service not in SERVICES:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                detail=f"unknown service {service!r}; expected one of {', '.join(SERVICES)}",
            )
        started = time.perf_counter()
        reply = await client.request(service, PingCommand())
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        return PingResult(pong=Pong.model_validate(reply.data), round_trip_ms=elapsed)

    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory services.gateway.app:create_app_from_env`."""
    return create_app(get_settings())
