"""The inference service's FastStream app: answers `infer` commands (plain or streamed)."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis
from faststream import FastStream

from services.inference.answering import Answerer
from services.inference.models import ModelClient, ModelFailure
from shared.answer_cache import AnswerCache
from shared.cache import create_redis
from shared.events import Reply, ReplyError
from shared.inference import NOT_CONFIGURED, InferCommand
from shared.service import CommandContext, Runtime, build_app
from shared.settings import Settings

# ModelFailure codes as the gateway maps them to HTTP (502, 504, 422).
_ERROR_CODES = {"unavailable": "model_unavailable", "timeout": "model_timeout"}


@dataclass
class _Dependencies:
    redis: redis.Redis | None = None
    models: ModelClient | None = None
    answerer: Answerer | None = None


def create_app(settings: Settings) -> tuple[FastStream, Runtime]:
    deps = _Dependencies()

    async def startup(runtime: Runtime) -> None:
        deps.redis = await create_redis(settings)
        deps.models = ModelClient(settings)
        cache = AnswerCache(deps.redis, settings.llm_cache_ttl_seconds)
        deps.answerer = Answerer(deps.models, cache, runtime.db, settings)

    async def shutdown(runtime: Runtime) -> None:
        if deps.models is not None:
            await deps.models.close()
        if deps.redis is not None:
            await deps.redis.aclose()

    async def infer(command: InferCommand, context: CommandContext) -> Reply:
        if not settings.llm_configured:
            return Reply(ok=False, error=ReplyError(code="not_configured", message=NOT_CONFIGURED))
        assert deps.answerer is not None, "built at startup"

        async def send(piece: str) -> None:
            await context.send(Reply(ok=True, data={"delta": piece}))

        try:
            outcome = await deps.answerer.answer(command, send if command.stream else None)
        except ModelFailure as failure:
            code = _ERROR_CODES.get(failure.code, failure.code)
            return Reply(ok=False, error=ReplyError(code=code, message=str(failure)))
        return Reply(
            ok=True,
            data={
                **outcome.answer.model_dump(mode="json"),
                "cost": outcome.cost,
                "cached": outcome.cached,
            },
        )

    return build_app(
        "inference",
        settings,
        commands={InferCommand: infer},
        startup=startup,
        shutdown=shutdown,
    )
