"""The inference service's FastStream app: builds the handler's dependencies at startup and
answers `infer` commands (plain, or streamed as partial replies)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from faststream import FastStream

from services.inference import handlers
from services.inference.handlers import Answerer, Dependencies
from services.inference.model_client import ModelClient
from services.inference.repository import ModelCallLog
from shared.answer_cache import AnswerCache
from shared.cache import create_redis
from shared.contracts.common import Reply
from shared.contracts.inference import InferCommand
from shared.service import CommandContext, Runtime, Started, build_app
from shared.settings import Settings

Build = Callable[[Settings, Runtime], Awaitable[Dependencies]]


async def build_dependencies(settings: Settings, runtime: Runtime) -> Dependencies:
    """The Redis answer cache, the model client and token accounting, closed at shutdown."""
    async with AsyncExitStack() as resources:
        client = await create_redis(settings)
        resources.push_async_callback(client.aclose)
        models = ModelClient(settings)
        resources.push_async_callback(models.close)
        answerer = Answerer(
            models,
            AnswerCache(client, settings.llm_cache_ttl_seconds),
            ModelCallLog(runtime.db, settings.llm_prices),
            settings.llm_prices,
            flight_seconds=settings.inference_timeout_seconds,
        )
        return Dependencies(answerer, settings.llm_configured, resources.pop_all())


def create_app(settings: Settings, build: Build = build_dependencies) -> tuple[FastStream, Runtime]:
    started: Started[Dependencies] = Started()

    async def startup(runtime: Runtime) -> None:
        started.set(await build(settings, runtime))

    async def shutdown(runtime: Runtime) -> None:
        if started.ready:  # not when stopped before startup built anything
            await started.get().resources.aclose()

    async def on_infer(command: InferCommand, context: CommandContext) -> Reply:
        async def send(piece: str) -> None:
            await context.send(Reply(ok=True, data={"delta": piece}))

        outcome = await handlers.infer(command, started.get(), send if command.stream else None)
        return Reply(ok=True, data=outcome.reply_data())

    return build_app(
        "inference",
        settings,
        commands={InferCommand: on_infer},
        startup=startup,
        shutdown=shutdown,
    )
