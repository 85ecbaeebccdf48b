"""The FastStream Kafka broker factory (traced, with a dead-letter topic), the options every other
Kafka client takes, and the topics: checking the brokers, creating and deleting topics."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError, for_code
from faststream import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.security import parse_security
from faststream.message import StreamMessage
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from shared.contracts.common import DeadLetter
from shared.errors import ConfigurationError, DependencyUnavailable
from shared.kafka_security import (
    AUTHORIZATION_ERRORS,
    KafkaLoginRefused,
    connection_refusal,
    kafka_security,
    sasl_user,
)
from shared.metrics import DEAD_LETTERS, Children
from shared.settings import Settings
from shared.topics import DEAD_LETTER, TopicSpec

log = logging.getLogger(__name__)


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin): the brokers and the
    same security as the FastStream brokers, so no client connects differently."""
    return {
        "bootstrap_servers": settings.kafka_servers,
        **parse_security(kafka_security(settings)),
    }


def producer_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka producer of our own (the outbox relay's): the client
    options, every write acknowledged by all in-sync replicas, idempotent where the broker can."""
    return {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": 0,
    }


def consumer_options(settings: Settings, *, background: bool = False) -> dict[str, Any]:
    """Subscriber options. A new consumer group starts from the oldest message rather than
    skipping what was published before it joined. A fetch waits on the broker for at most
    KAFKA_FETCH_MAX_WAIT_MS (or KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS for events nobody waits on
    synchronously): Apache Kafka answers as soon as data arrives, so the wait only bounds how
    often an idle consumer asks; Tansu answers only when the wait is over, so its stack sets the
    wait short. A member that stops heartbeating loses its partitions after
    KAFKA_SESSION_TIMEOUT_MS."""
    wait = (
        settings.kafka_background_fetch_max_wait_ms
        if background
        else settings.kafka_fetch_max_wait_ms
    )
    return {
        "fetch_max_wait_ms": wait,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": max(settings.kafka_session_timeout_ms // 3, 300),
    }


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


# The commands' dead letters (the event consumers count theirs in shared/consuming.py); the
# `group` label is the handler here.
_DEAD_LETTERS = Children(DEAD_LETTERS)


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
            record = raw[0] if isinstance(raw, tuple) else raw
            consumer = getattr(handler, "call_name", None) or "unknown"
            _DEAD_LETTERS.get(consumer, getattr(record, "topic", "unknown"), "invalid").inc()
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
    waits for its group to form (Tansu takes about 5 s); one after another, a service with a
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
        security=kafka_security(settings),
        acks="all",
        # Consumers dedupe anyway; idempotence also keeps a producer's retries from duplicating
        # or reordering a key's messages. Tansu has none (its stack turns it off).
        enable_idempotence=settings.kafka_enable_idempotence,
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
    """Fail fast, naming KAFKA_BOOTSTRAP_SERVERS, when no broker answers, or naming the SASL/TLS
    settings when the brokers refuse the login (KafkaLoginRefused)."""
    admin = AIOKafkaAdminClient(
        **client_options(settings),
        request_timeout_ms=int(settings.startup_timeout_seconds * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), settings.startup_timeout_seconds)
    except (KafkaError, OSError, TimeoutError, ssl.SSLError) as exc:
        # The admin client's bootstrap only logs each server's error (a failed SASL login among
        # them) and raises "Unable to bootstrap"; connect once more to tell the user which.
        if (
            isinstance(exc, KafkaConnectionError)
            and settings.kafka_security_protocol != "PLAINTEXT"
        ):
            refusal = await connection_refusal(settings)
            if refusal is not None:
                raise KafkaLoginRefused(settings, refusal) from exc
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
    """Create the topics that do not exist yet; return the names created. A topic the brokers
    refuse to create (no Create ACL, an invalid partition count) raises KafkaTopicRefused."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        for spec in missing:  # one at a time: a concurrent creator must not fail the others
            response = await admin.create_topics(
                [NewTopic(spec.name, partition_count(settings, spec), 1)]
            )
            # aiokafka returns each topic's error in the response instead of raising it.
            refused = _topic_refused(settings, "create", response.topic_errors)
            if refused is not None and refused.error is not TopicAlreadyExistsError:
                raise refused
        return [t.name for t in missing]
    finally:
        await admin.close()


class KafkaTopicRefused(ConfigurationError):
    """The brokers refused to create or delete a topic, most often for want of an ACL; `error`
    is the aiokafka error of the response's code."""

    def __init__(self, message: str, error: type[KafkaError]) -> None:
        super().__init__(message)
        self.error = error


def _topic_refused(
    settings: Settings, action: str, results: list[tuple[Any, ...]]
) -> KafkaTopicRefused | None:
    """The first error of a CreateTopics or DeleteTopics response's (topic, error_code,
    [message]) results, with a message naming the topic and this process's SASL user."""
    for topic, code, *message in results:
        if code == 0:
            continue
        error = for_code(code)
        detail = f": {message[0]}" if message and message[0] else ""
        user = sasl_user(settings)
        who = f" for {user}" if user else ""
        hint = ""
        if error in AUTHORIZATION_ERRORS:
            hint = f"; grant {action.title()} on it (deploy/README.md lists the ACLs)"
        return KafkaTopicRefused(
            f"Kafka refused to {action} topic {topic}{who} ({error.__name__}{detail}){hint}", error
        )
    return None


async def delete_topic(settings: Settings, name: str) -> None:
    """Best effort: a process's own reply topic is deleted when it stops, so they do not pile up;
    a failure is logged, never raised (the process is stopping anyway)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        response = await admin.delete_topics([name])
        refused = _topic_refused(settings, "delete", response.topic_error_codes)
        if refused is not None:
            raise refused
    except (KafkaError, OSError, KafkaTopicRefused) as exc:
        log.warning("could not delete topic %s: %s", name, exc)
    finally:
        await admin.close()
