"""The FastStream Kafka broker factory: tuned for low latency, traced, with a dead-letter topic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
    for_code,
)
from faststream import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.security import parse_security
from faststream.message import StreamMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from shared.errors import DependencyUnavailable
from shared.events import DeadLetter
from shared.settings import Settings
from shared.topics import DEAD_LETTER, TopicSpec

log = logging.getLogger(__name__)
LOGIN_PROBE_SECONDS = 5.0


def kafka_security(settings: Settings) -> BaseSecurity | None:
    """The connection's security for FastStream, from the KAFKA_SECURITY_PROTOCOL settings."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    use_ssl = protocol in ("SSL", "SASL_SSL")
    context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_file) if use_ssl else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    assert settings.kafka_sasl_username is not None  # Settings refuses SASL_* without them
    assert settings.kafka_sasl_password is not None
    login = (settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value())
    mechanisms: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    return mechanisms[settings.kafka_sasl_mechanism](*login, ssl_context=context, use_ssl=use_ssl)


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


class KafkaLoginRefused(DependencyUnavailable):
    """The brokers answer but refuse this process's connection: a wrong SASL login or mechanism,
    a protocol that does not match the listener, or a certificate the CA file does not trust.
    The message names the settings to fix rather than saying the brokers cannot be reached."""

    def __init__(self, settings: Settings, message: str) -> None:
        super().__init__("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers, message)
        self.args = (message,)


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
            refusal = await _connection_refusal(settings)
            if refusal is not None:
                raise KafkaLoginRefused(settings, refusal) from exc
        raise DependencyUnavailable(
            "KAFKA_BOOTSTRAP_SERVERS",
            settings.kafka_bootstrap_servers,
            f"{type(exc).__name__}: {exc}",
        ) from exc
    finally:
        await admin.close()


async def _connection_refusal(settings: Settings) -> str | None:
    """Why a broker that answers refuses this connection (SASL or TLS), as a message naming the
    settings; None when no broker answers at all (that is the caller's 'cannot reach')."""
    options = {
        key: value for key, value in client_options(settings).items() if key != "bootstrap_servers"
    }
    for host, port, _ in collect_hosts(settings.kafka_servers, randomize=False):
        try:
            async with asyncio.timeout(LOGIN_PROBE_SECONDS):
                conn = await create_conn(
                    host, port, request_timeout_ms=int(LOGIN_PROBE_SECONDS * 1000), **options
                )
        except (
            SaslAuthenticationFailed,
            UnsupportedSaslMechanismError,
            IllegalSaslStateError,
            ssl.SSLCertVerificationError,
        ) as exc:
            return _refusal_message(settings, exc)
        except (KafkaError, OSError, TimeoutError):
            continue
        conn.close()
    return None


def _refusal_message(settings: Settings, exc: Exception) -> str:
    where = f"Kafka at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}"
    protocol = f"KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}"
    mechanism = f"KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism}"
    if isinstance(exc, SaslAuthenticationFailed):
        return (
            f"{where} refused the SASL login: authentication failed for "
            f"KAFKA_SASL_USERNAME={settings.kafka_sasl_username} with {mechanism} ({exc}); "
            "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM (the user "
            "must exist on the brokers for that mechanism)"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (
            f"{where} does not accept {mechanism}; set KAFKA_SASL_MECHANISM to a mechanism the "
            "brokers enable (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
        )
    if isinstance(exc, IllegalSaslStateError):
        return (
            f"{where} does not expect a SASL login ({protocol}); check KAFKA_SECURITY_PROTOCOL "
            "and the port: it may be a PLAINTEXT or SSL listener"
        )
    return (
        f"{where}: TLS certificate verification failed ({exc}); set KAFKA_SSL_CA_FILE to the "
        f"CA certificates that signed the brokers' certificates ({protocol})"
    )


def partition_count(settings: Settings, spec: TopicSpec) -> int:
    """How many partitions `spec` gets when it is created."""
    return spec.partitions or settings.kafka_topic_partitions


async def ensure_topics(
    settings: Settings, topics: tuple[TopicSpec, ...] | list[TopicSpec]
) -> list[str]:
    """Create the topics that do not exist yet; return the names created. A topic the broker
    refuses to create (no Create ACL, an invalid partition count) raises its KafkaError."""
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
            with contextlib.suppress(TopicAlreadyExistsError):
                _raise_topic_errors(settings, "create", response.topic_errors)
        return [t.name for t in missing]
    finally:
        await admin.close()


def _raise_topic_errors(settings: Settings, action: str, results: list[tuple[Any, ...]]) -> None:
    """Raise the first error in a CreateTopics or DeleteTopics response's (topic, error_code,
    [message]) results, with a message naming the topic and this process's SASL user."""
    for topic, code, *message in results:
        if code == 0:
            continue
        error = for_code(code)
        detail = f": {message[0]}" if message and message[0] else ""
        user = (
            settings.kafka_sasl_username
            if settings.kafka_security_protocol.startswith("SASL_")
            else None
        )
        who = f" for KAFKA_SASL_USERNAME={user}" if user else ""
        raise error(f"Kafka refused to {action} topic {topic}{who} ({error.__name__}{detail})")


async def delete_topic(settings: Settings, name: str) -> None:
    """Best effort: a process's own reply topic is deleted when it stops, so they do not pile up;
    a failure is logged, never raised (the process is stopping anyway)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        response = await admin.delete_topics([name])
        _raise_topic_errors(settings, "delete", response.topic_error_codes)
    except (KafkaError, OSError) as exc:
        log.warning("could not delete topic %s: %s", name, exc)
    finally:
        await admin.close()
