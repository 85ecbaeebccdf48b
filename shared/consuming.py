"""Consuming an event topic in batches, with each event still handled, traced and dead-lettered on
its own.

A batch is what one fetch returned. Its events are split into lanes by key (a run, a campaign):
lanes run concurrently, and each lane handles its events in order, so events about one thing never
overtake each other. The batch is committed when every lane is done. Handlers must be idempotent:
after a crash or a failed batch, events come again.

- An event that cannot be decoded into the model goes to the dead-letter topic at once.
- A handler error that looks transient (the database or network is away) fails the batch after a
  pause; it is fetched again, so nothing is lost while a dependency is down.
- Any other handler error is retried a few times, then the event is dead-lettered with the reason
  and the lane goes on: one poison event does not stop its partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from itertools import chain
from types import MethodType
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Tracer
from pydantic import BaseModel, ValidationError

from shared.broker import consumer_options, dead_letter, raw_body
from shared.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENT_HANDLER_DURATION,
    EVENTS_CONSUMED,
    Children,
)
from shared.settings import Settings
from shared.telemetry import ORIGINS, causes

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseModel)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)
BATCH_POLL_MS = 500  # how long an idle batch consumer waits for records before it asks again
HANDLER_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.2
TRANSIENT_PAUSE_SECONDS = 1.0


def batch_subscriber(broker: KafkaBroker, *topics: str, **options: Any) -> BatchSubscriber:
    """`broker.subscriber(*topics, batch=True, **options)` whose poll waits in aiokafka's getmany
    for up to BATCH_POLL_MS: getmany returns the moment records arrive. FastStream's own poll,
    after an empty getmany, sleeps as long again while an arriving event waits, so a consumer
    that must react at once needed a timeout of a few ms: hundreds of wake-ups a second for every
    idle consumer (3 % of a core for each service with nothing to do)."""
    subscriber = broker.subscriber(*topics, batch=True, batch_timeout_ms=BATCH_POLL_MS, **options)
    assert isinstance(subscriber, BatchSubscriber)
    lags = Children(CONSUMER_LAG)
    group = str(options.get("group_id") or "")

    async def poll(self: BatchSubscriber, consumer: Any) -> tuple[Any, ...]:
        records = await _poll_batch(self, consumer)
        if records:
            _record_lag(consumer, records, group, lags)
        return records

    subscriber.get_msg = MethodType(poll, subscriber)  # type: ignore[method-assign]
    return subscriber


async def _poll_batch(self: BatchSubscriber, consumer: Any) -> tuple[Any, ...]:
    records = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
    return tuple(chain(*records.values()))


def _record_lag(consumer: Any, records: tuple[Any, ...], group: str, lags: Children[Any]) -> None:
    """Each fetched partition's lag: its high watermark (from the fetch, no round trip) minus
    the offset after the batch's last record of it."""
    last: dict[tuple[str, int], int] = {}
    for record in records:
        last[(record.topic, record.partition)] = record.offset
    for (topic, partition), offset in last.items():
        highwater = consumer.highwater(TopicPartition(topic, partition))
        if highwater is not None:
            lags.get(group, topic, str(partition)).set(max(0, highwater - offset - 1))


def _headers(record: Any) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in (record.headers or ())}


def _span_context(context: Context) -> SpanContext:
    return trace.get_current_span(context).get_span_context()


def _remember_origin(event: BaseModel, span: SpanContext) -> None:
    """The first trace this process sees an event about a run in is the run's (the first step
    request or change of a campaign's run, for the campaign service): `ORIGINS`."""
    run_id = getattr(event, "run_id", None)
    if run_id is not None:
        ORIGINS.remember(run_id, span)


@dataclass(frozen=True)
class Route(Generic[E]):
    """How to handle one topic's events: decode into `model`, order by `key`, call `handle`.
    With `handle_many`, a batch's events of this topic go to it at once, in order (it must keep
    events with the same key in order); if it fails, they are handled one by one."""

    model: type[E]
    handle: Callable[[E], Awaitable[object]]
    key: Callable[[E], Hashable]
    handle_many: Callable[[list[E]], Awaitable[object]] | None = None


def subscribe_events(
    broker: KafkaBroker,
    settings: Settings,
    *,
    group_id: str,
    routes: Mapping[str, Route[Any]],
    tracer: Tracer | None = None,
    background: bool = False,
    max_records: int = 500,
) -> None:
    """Subscribe one consumer in group `group_id` to every topic in `routes` (see the module
    docstring). One consumer for several topics means one group to join and one poller."""
    tracer = tracer or trace.get_tracer(__name__)
    consumed = Children(EVENTS_CONSUMED)
    durations = Children(EVENT_HANDLER_DURATION)
    dead_letters = Children(DEAD_LETTERS)

    def attributes(record: Any) -> dict[str, Any]:
        return {
            "messaging.system": "kafka",
            "messaging.destination.name": record.topic,
            "messaging.consumer.group.name": group_id,
            "messaging.kafka.offset": record.offset,
        }

    async def handle_one(record: Any, route: Route[Any], event: BaseModel) -> None:
        parent = propagate.extract(_headers(record))
        with (
            tracer.start_as_current_span(
                f"{record.topic} process",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes=attributes(record),
            ) as span,
            causes(by_correlation={}),  # events written here carry this span, not a batch's
        ):
            _remember_origin(event, span.get_span_context())
            started = time.perf_counter()
            outcome = "transient"  # unless the attempts end otherwise: the batch is failed
            try:
                outcome = await attempts(record, route, event)
            finally:
                durations.get(group_id, record.topic).observe(time.perf_counter() - started)
                consumed.get(group_id, record.topic, outcome).inc()

    async def attempts(record: Any, route: Route[Any], event: BaseModel) -> str:
        """Handle one event, retrying; `ok`, or `dead_lettered` after the last attempt."""
        for attempt in range(1, HANDLER_ATTEMPTS + 1):
            try:
                await route.handle(event)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                if attempt == HANDLER_ATTEMPTS:
                    log.exception(
                        "handling an event from %s failed; dead-lettering it", record.topic
                    )
                    await dead_letter(
                        broker, record, consumer=group_id,
                        reason=f"handler failed {attempt} times: {type(exc).__name__}: {exc}",
                        body=record.value or b"",
                    )  # fmt: skip
                    dead_letters.get(group_id, record.topic, "handler_failed").inc()
                    return "dead_lettered"
                await asyncio.sleep(RETRY_PAUSE_SECONDS * attempt)
            else:
                return "ok"
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def run_lane(items: list[tuple[Any, Route[Any], BaseModel]]) -> None:
        for record, route, event in items:
            await handle_one(record, route, event)

    async def run_together(items: list[tuple[Any, Route[Any], BaseModel]]) -> None:
        route = items[0][1]
        assert route.handle_many is not None
        contexts = [propagate.extract(_headers(record)) for record, _, _ in items]
        single = len(items) == 1
        # One event: its batch span is simply its consumer span, in its trace. More (from as
        # many traces, perhaps): the batch span links to each, and each event gets a span of its
        # own in its trace, which the events its handling writes carry (by correlation id).
        with tracer.start_as_current_span(
            f"{items[0][0].topic} process batch",
            context=contexts[0] if single else None,
            kind=SpanKind.CONSUMER,
            links=[] if single else [Link(_span_context(c)) for c in contexts],
            attributes={"messaging.batch.message_count": len(items)},
        ) as batch:
            own: list[Span] = []
            by_correlation: dict[str, Context] = {}
            for (record, _, event), parent in zip(items, contexts, strict=True):
                span = batch
                if not single:
                    span = tracer.start_span(
                        f"{record.topic} process",
                        context=parent,
                        kind=SpanKind.CONSUMER,
                        links=[Link(batch.get_span_context())],
                        attributes=attributes(record),
                    )
                    own.append(span)
                correlation_id = getattr(event, "correlation_id", None)
                if isinstance(correlation_id, str):
                    by_correlation.setdefault(correlation_id, trace.set_span_in_context(span))
                _remember_origin(event, span.get_span_context())
            topic = items[0][0].topic
            started = time.perf_counter()
            try:
                with causes(by_correlation=by_correlation):
                    await route.handle_many([event for _, _, event in items])
            except TRANSIENT_ERRORS:
                consumed.get(group_id, topic, "transient").inc(len(items))
                raise
            except Exception:
                log.exception(
                    "a batch from %s failed; handling its events one by one", items[0][0].topic
                )
                lanes: dict[Hashable, list[tuple[Any, Route[Any], BaseModel]]] = defaultdict(list)
                for record, r, event in items:
                    lanes[r.key(event)].append((record, r, event))
                await asyncio.gather(*(run_lane(lane) for lane in lanes.values()))
            else:
                consumed.get(group_id, topic, "ok").inc(len(items))
            finally:
                durations.get(group_id, topic).observe(time.perf_counter() - started)
                for span in own:
                    span.end()

    @batch_subscriber(
        broker,
        *routes,
        group_id=group_id,
        max_records=max_records,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
        **consumer_options(settings, background=background),
    )
    async def consume(bodies: list[bytes]) -> None:
        records = broker.context.get_local("message").raw_message
        lanes: dict[Hashable, list[tuple[Any, Route[Any], BaseModel]]] = defaultdict(list)
        together: dict[str, list[tuple[Any, Route[Any], BaseModel]]] = defaultdict(list)
        for record in records:
            route = routes[record.topic]
            try:
                event = route.model.model_validate_json(record.value or b"")
            except ValidationError as exc:
                await dead_letter(
                    broker, record, consumer=group_id,
                    reason=f"not a valid {route.model.__name__}: {exc}", body=record.value or b"",
                )  # fmt: skip
                consumed.get(group_id, record.topic, "invalid").inc()
                dead_letters.get(group_id, record.topic, "invalid").inc()
                continue
            if route.handle_many is not None:
                together[record.topic].append((record, route, event))
            else:
                lanes[route.key(event)].append((record, route, event))
        results = await asyncio.gather(
            *(run_together(items) for items in together.values()),
            *(run_lane(items) for items in lanes.values()),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            log.error(
                "a batch of %s failed (%s); it will be fetched again",
                ", ".join(routes),
                failures[0],
                exc_info=failures[0],
            )
            await asyncio.sleep(TRANSIENT_PAUSE_SECONDS)
            raise failures[0]
