"""The FastStream Kafka broker factory: tuned for low latency, traced, with a dead-letter topic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.message import StreamMessage
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from shared.errors import DependencyUnavailable
from shared.events import DeadLetter
from shared.settings import Settings
from shared.topics import DEAD_LETTER, TopicSpec

log = logging.getLogger(__name__)


def consumer_options(settings: Settings, *, background: bool = False) -> dict[str, Any]:
    """Subscriber options. A new consumer group starts from the oldest message rather than
    skipping what was published before it joined. A fetch waits on the broker for at most
    KAFKA_FETCH_MAX_WAIT_MS (or KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS for events nobody waits on
    synchronously). Tansu answers a fetch only when that wait is over, even if data arrived, so
    there the wait is most of a hop's latency; Apache Kafka answers as soon as data arrives, so
    there it may be long and idle consumers cost the broker less."""
    wait = (
        settings.kafka_background_fetch_max_wait_ms
        if background
        else settings.kafka_fetch_max_wait_ms
    )
    return {"fetch_max_wait_ms": wait, "auto_offset_reset": "earliest"}


async def raw_body(msg: StreamMessage[Any]) -> Any:
    """A subscriber decoder that leaves the body as bytes, for a handler that parses it itself:
    straight into its model (no dict first), or one message at a time so that one bad message
    does not fail a whole batch."""
    return msg.body


async def dead_letter(
    broker: KafkaBroker,
    record: Any,
    *,
    consumer: str,
    reason: str,
    body: bytes,
    correlation_id: str | None = None,
) -> None:
    """Publish a message a consumer gives up on to the dead-letter topic, with the reason."""
    letter = DeadLetter(
        correlation_id=correlation_id or "",
        source_topic=getattr(record, "topic", "?"),
        partition=getattr(record, "partition", None),
        offset=getattr(record, "offset", None),
        consumer=consumer,
        reason=reason[:4_000],
        payload=body.decode("utf-8", errors="replace")[:100_000],
    )
    log.warning("dead-lettered a message from %s: %s", letter.source_topic, letter.reason)
    await broker.publish(letter, DEAD_LETTER.name, key=letter.source_topic.encode())


class DeadLetterMiddleware(BaseMiddleware):
    """Sends a message whose body cannot be decoded into the handler's model to the dead-letter
    topic with the reason, then lets the subscriber commit and go on. Other errors propagate to
    the subscriber's ack policy."""

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        try:
            return await call_next(msg)
        except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raw = msg.raw_message
            handler = self.context.get("handler_")
            await dead_letter(
                self.context.get("broker"),
                raw[0] if isinstance(raw, tuple) else raw,
                consumer=getattr(handler, "call_name", None) or "unknown",
                reason=f"{type(exc).__name__}: {exc}",
                body=msg.body if isinstance(msg.body, bytes) else b"",
                correlation_id=msg.correlation_id,
            )
            return None


class ServiceBroker(KafkaBroker):
    """FastStream's Kafka broker, starting its subscribers concurrently. Each consumer's start
    waits for its group to form, which takes Tansu about 5 s; one after another, a service with a
    command group and an event group took twice as long to start."""

    async def start(self) -> None:
        await self.connect()
        await asyncio.gather(*(subscriber.start() for subscriber in self.subscribers))
        for publisher in self.publishers:
            await publisher.start()
        self.running = True


def create_broker(
    settings: Settings, *, client_id: str, tracer_provider: TracerProvider
) -> KafkaBroker:
    return ServiceBroker(
        settings.kafka_servers,
        client_id=client_id,
        acks="all",  # idempotent producers are not supported by Tansu; consumers dedupe instead
        linger_ms=0,
        request_timeout_ms=int(settings.startup_timeout_seconds * 1000),
        graceful_timeout=15.0,
        middlewares=[
            KafkaTelemetryMiddleware(tracer_provider=tracer_provider),
            DeadLetterMiddleware,
        ],
        log_level=logging.DEBUG,  # per-message access logs at DEBUG, not INFO
    )


async def check_kafka(settings: Settings) -> None:
    """Fail fast, naming KAFKA_BOOTSTRAP_SERVERS, when no broker answers."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_servers,
        request_timeout_ms=int(settings.startup_timeout_seconds * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), settings.startup_timeout_seconds)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise DependencyUnavailable(
            "KAFKA_BOOTSTRAP_SERVERS",
            settings.kafka_bootstrap_servers,
            f"{type(exc).__name__}: {exc}",
        ) from exc
    finally:
        await admin.close()


def partition_count(settings: Settings, spec: TopicSpec) -> int:
    """How many partitions `spec` gets when it is created."""
    return spec.partitions or settings.kafka_topic_partitions


async def ensure_topics(
    settings: Settings, topics: tuple[TopicSpec, ...] | list[TopicSpec]
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        for spec in missing:  # one at a time: a concurrent creator must not fail the others
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(spec.name, partition_count(settings, spec), 1)])
        return [t.name for t in missing]
    finally:
        await admin.close()


async def delete_topic(settings: Settings, name: str) -> None:
    """Best effort: a process's own reply topic is deleted when it stops, so they do not pile up;
    a failure is logged, never raised (the process is stopping anyway)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    try:
        await admin.start()
        await admin.delete_topics([name])
    except (KafkaError, OSError) as exc:
        log.warning("could not delete topic %s: %s", name, exc)
    finally:
        await admin.close()
