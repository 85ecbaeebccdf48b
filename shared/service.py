"""What every Kafka-driven service process shares: startup checks, tracing, the broker, the pool,
the `ping` command, and a command line (`run`, `migrate`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
import uvloop
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel, ValidationError

from shared import logs, migrations
from shared.broker import (
    check_kafka,
    consumer_options,
    create_broker,
    delete_topic,
    ensure_topics,
    producer_options,
)
from shared.commands import CommandTable
from shared.contracts.common import PingCommand, Pong, Reply, ReplyError
from shared.db import create_pool
from shared.errors import ConfigurationError, DependencyUnavailable, Refused
from shared.heap import freeze_startup_objects
from shared.heartbeat import Heartbeat
from shared.kafka_security import AUTHORIZATION_ERRORS, authorization_refused
from shared.metrics import COMMAND_DURATION, COMMANDS, Children, MetricsServer
from shared.outbox import OutboxRelay
from shared.rpc import ServiceClient, attach_client
from shared.settings import Settings, get_settings
from shared.telemetry import setup_tracing, shutdown_tracing
from shared.topics import command_topic

log = logging.getLogger(__name__)
VERSION = "0.1.0"
COMMAND_CONCURRENCY = 32


T = TypeVar("T")


class Started(Generic[T]):
    """What a service's startup hook builds (its handlers' dependencies, one typed container),
    for the handlers registered before startup to reach once the service runs. Every service
    starts the same way:

        started: Started[Dependencies] = Started()
        async def startup(runtime): started.set(await build(settings, runtime))
        async def on_x(command, context): return await handle_x(command, started.get())

    and `create_app(settings, build=...)` lets a test pass fakes instead of the real parts."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, value: T) -> T:
        self._value = value
        return value

    @property
    def ready(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        if self._value is None:
            raise RuntimeError("the service has not started: its dependencies are built at startup")
        return self._value


@dataclass
class Runtime:
    """The live clients of one service process, filled in by its startup hook."""

    name: str
    settings: Settings
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    tracer_provider: TracerProvider | None = None
    broker: KafkaBroker | None = None
    pool: asyncpg.Pool | None = None
    client: ServiceClient | None = None
    commands: tuple[type[BaseModel], ...] = ()  # what `<name>.commands` accepts

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "the pool is created in the startup hook"
        return self.pool


@dataclass
class CommandContext:
    """Where a command came from: handlers that stream send partial replies before their last."""

    runtime: Runtime
    reply_to: str
    correlation_id: str

    async def send(self, partial: Reply) -> None:
        if not self.reply_to:
            return  # nobody waits for replies (a fire-and-forget command)
        assert self.runtime.broker is not None
        await self.runtime.broker.publish(
            partial.model_copy(update={"partial": True}),
            self.reply_to,
            key=self.correlation_id.encode(),
            correlation_id=self.correlation_id,
        )


Setup = Callable[[KafkaBroker, Runtime], None]
CliRun = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
CommandHandler = Callable[[Any, CommandContext], Awaitable[Reply]]
Hook = Callable[[Runtime], Awaitable[None]]


def build_app(
    name: str,
    settings: Settings,
    register: Setup | None = None,
    *,
    commands: dict[type[BaseModel], CommandHandler] | None = None,
    outbox_schema: str | None = None,
    outbox_settle_seconds: float = 0.01,
    startup: Hook | None = None,
    shutdown: Hook | None = None,
    asks_services: bool = False,
) -> tuple[FastStream, Runtime]:
    """A FastStream app for service `name`: it answers `ping` and the `commands` given, runs an
    outbox relay for `outbox_schema`, and whatever `register` subscribes. With `asks_services`,
    `runtime.client` sends commands to other services and receives their replies."""
    runtime = Runtime(name=name, settings=settings)
    runtime.tracer_provider = setup_tracing(name, runtime.instance_id, settings)
    broker = create_broker(settings, client_id=name, tracer_provider=runtime.tracer_provider)
    runtime.broker = broker
    table: CommandTable[CommandHandler] = CommandTable(
        name, {PingCommand: _pong, **(commands or {})}
    )
    runtime.commands = table.kinds
    relay: OutboxRelay | None = None
    metrics_server: MetricsServer | None = None
    commands_handled = Children(COMMANDS)
    command_durations = Children(COMMAND_DURATION)

    # Commands are synchronous requests whose caller waits a few seconds at most: a command lost
    # in a crash becomes the caller's 504, while one redelivered later would answer nobody. So they
    # are committed on receipt (no commit round trip per message) and handled concurrently.
    @broker.subscriber(
        command_topic(name).name,
        group_id=name,
        ack_policy=AckPolicy.ACK_FIRST,
        max_workers=COMMAND_CONCURRENCY,
        **consumer_options(settings),
    )
    async def on_command(body: dict[str, Any]) -> Reply:
        started = time.perf_counter()
        decoded = table.decode(body)
        if isinstance(decoded, Reply):  # unsupported or invalid: no free text as a label
            commands_handled.get(name, "invalid", _outcome(decoded)).inc()
            return decoded
        command, handler = decoded
        kind: str = body["type"]  # decoded, so one of the table's command types
        reply = await _answer(command, handler, body)
        commands_handled.get(name, kind, _outcome(reply)).inc()
        command_durations.get(name, kind).observe(time.perf_counter() - started)
        return reply

    async def _answer(command: BaseModel, handler: CommandHandler, body: dict[str, Any]) -> Reply:
        # Read from the context directly: an injected `KafkaMessage` parameter is resolved in a
        # worker thread on every message, which cost more than the rest of a ping.
        message = broker.context.get_local("message")
        context = CommandContext(runtime, message.reply_to, message.correlation_id or "")
        try:
            return await handler(command, context)
        except Refused as refused:
            return Reply(ok=False, error=ReplyError(code=refused.code, message=refused.message))
        except Exception as exc:  # the caller waits: answer at once rather than let it time out
            log.exception("the %s command failed", body.get("type"))
            return Reply(
                ok=False,
                error=ReplyError(
                    code="internal", message=f"the {name} service failed: {type(exc).__name__}"
                ),
            )

    if register is not None:
        register(broker, runtime)
    if asks_services:
        runtime.client, replies = attach_client(
            broker, settings, name, runtime.instance_id, settings.request_timeout_seconds
        )

    heartbeat = Heartbeat(Path(settings.heartbeat_file)) if settings.heartbeat_file else None

    async def on_startup() -> None:
        nonlocal metrics_server
        if heartbeat is not None:
            heartbeat.start()
        if settings.metrics_port and metrics_server is None:
            metrics_server = MetricsServer(settings.metrics_port)
            metrics_server.start()
        await check_kafka(settings)
        if asks_services:
            await ensure_topics(settings, [replies])
        runtime.pool = await create_pool(settings)
        if startup is not None:
            await startup(runtime)

    async def after_startup() -> None:
        nonlocal relay
        if outbox_schema is not None:
            relay = OutboxRelay(
                runtime.db,
                producer_options(settings),
                outbox_schema,
                dsn=settings.database_url,
                settle_seconds=outbox_settle_seconds,
            )
            await relay.start()
        freeze_startup_objects()

    async def on_shutdown() -> None:
        if relay is not None:
            await relay.stop()
        if shutdown is not None:
            await shutdown(runtime)
        if asks_services:
            await delete_topic(settings, replies.name)

    async def after_shutdown() -> None:
        if runtime.pool is not None:
            await runtime.pool.close()
        if runtime.tracer_provider is not None:
            shutdown_tracing(runtime.tracer_provider)
        if metrics_server is not None:
            metrics_server.stop()
        if heartbeat is not None:
            await heartbeat.stop()

    app = FastStream(
        broker,
        on_startup=[on_startup],
        after_startup=[after_startup],
        on_shutdown=[on_shutdown],
        after_shutdown=[after_shutdown],
    )
    return app, runtime


def _outcome(reply: Reply) -> str:
    """A command's outcome as a metric label: `ok`, or the reply's error code."""
    if reply.ok:
        return "ok"
    return reply.error.code if reply.error is not None else "error"


def ok(view: BaseModel) -> Reply:
    """A command's answer: `view` as the reply's data (JSON types)."""
    return Reply(ok=True, data=view.model_dump(mode="json"))


def with_pool(work: Callable[[asyncpg.Pool, Any], Awaitable[BaseModel]]) -> CommandHandler:
    """A command handler that does `work(pool, command)` and answers with the view it returns."""

    async def handle(command: Any, context: CommandContext) -> Reply:
        return ok(await work(context.runtime.db, command))

    return handle


async def _pong(command: PingCommand, context: CommandContext) -> Reply:
    runtime = context.runtime
    pong = Pong(service=runtime.name, instance_id=runtime.instance_id, version=VERSION)
    return Reply(ok=True, data=pong.model_dump())


async def migrate_service(settings: Settings, *services: str) -> int:
    pool = await create_pool(settings, max_size=1)
    try:
        async with pool.acquire() as conn:
            applied = await migrations.migrate(conn, services)
    finally:
        await pool.close()
    for m in applied:
        print(f"applied {m.service} {m.version:04d}_{m.name}")
    if not applied:
        print(f"{', '.join(services)}: schema up to date")
    return 0


def configure_logging(settings: Settings) -> None:
    """LOG_LEVEL and LOG_FORMAT (JSON lines with trace ids, or text): `shared.logs`."""
    logs.configure_logging(settings)


@dataclass(frozen=True)
class Subcommand:
    """An extra `run_cli` command that takes arguments of its own: `configure` adds them."""

    run: CliRun
    configure: Callable[[argparse.ArgumentParser], None] | None = None
    help: str | None = None


def run_cli(
    name: str,
    make_app: Callable[[Settings], tuple[FastStream, Runtime]],
    extra: Mapping[str, CliRun | Subcommand] | None = None,
    argv: list[str] | None = None,
) -> int:
    """`python -m services.<name> [run|migrate|...]`; startup failures print one clear line."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="consume and serve (the default)")
    sub.add_parser("migrate", help=f"apply the {name} schema migrations")
    commands = {
        command: spec if isinstance(spec, Subcommand) else Subcommand(spec)
        for command, spec in (extra or {}).items()
    }
    for command, spec in commands.items():
        subparser = sub.add_parser(command, help=spec.help)
        if spec.configure is not None:
            spec.configure(subparser)
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        configure_logging(settings)
        if args.command == "migrate":
            return asyncio.run(migrate_service(settings, name))
        if args.command in commands:
            return asyncio.run(commands[args.command].run(settings, args))
        app, _ = make_app(settings)
        uvloop.run(app.run())  # uvloop: less CPU per message than asyncio's default loop
    except ValidationError as exc:
        print(f"{name}: error: invalid settings: {exc}", file=sys.stderr)
        return 2
    except (DependencyUnavailable, ConfigurationError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except AUTHORIZATION_ERRORS as exc:
        print(f"{name}: error: {authorization_refused(settings, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
