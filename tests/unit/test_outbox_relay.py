"""The outbox relay on an in-memory table and producer: rows go to the producer in order and are
marked published once the broker has them; a producer error leaves them to be sent again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from shared.outbox import Relay
from tests.support.api import wait_for
from tests.support.fake_outbox import FakeOutboxTable, FakeProducer, Sent, row


async def until(condition: Callable[[], bool]) -> None:
    async def check() -> bool:
        return condition()

    await wait_for(check, timeout=5, what="the relay")


async def turns(n: int = 20) -> None:
    """Let the relay's tasks run as far as they can without anything else happening."""
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.fixture
def table() -> FakeOutboxTable:
    return FakeOutboxTable()


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


MakeRelay = Callable[..., Relay]


@pytest.fixture
def make_relay(table: FakeOutboxTable, producer: FakeProducer) -> MakeRelay:
    def make(
        *, batch_size: int = 200, poll_seconds: float = 1.0, settle_seconds: float = 0.01
    ) -> Relay:
        # a schema of its own: a started relay registers itself by schema in this process
        return Relay(
            table, producer, f"s{uuid.uuid4().hex[:8]}",
            batch_size=batch_size, poll_seconds=poll_seconds, settle_seconds=settle_seconds,
        )  # fmt: skip

    return make


@pytest.fixture
async def running(make_relay: MakeRelay) -> AsyncIterator[Relay]:
    """A started relay that sends committed rows at once and polls the table rarely."""
    relay = make_relay(settle_seconds=0, poll_seconds=60)
    await relay.start()
    yield relay
    await relay.stop()


async def test_rows_handed_over_on_commit_are_sent_in_order_and_marked(
    running: Relay, table: FakeOutboxTable, producer: FakeProducer
) -> None:
    running.publish_committed([row(1, "a", "k1"), row(2, "b", "k2")])
    running.publish_committed([row(3, "a", "k1")])

    await until(lambda: sorted(table.marked) == [1, 2, 3])

    assert producer.payloads() == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
    assert producer.sent[0] == Sent("a", b"k1", b'{"n": 1}', [("correlation_id", b"c1")])


async def test_a_row_is_marked_only_once_the_broker_has_acknowledged_it(
    running: Relay, table: FakeOutboxTable, producer: FakeProducer
) -> None:
    producer.holding = True
    running.publish_committed([row(1)])
    await until(lambda: len(producer.sent) == 1)
    await turns()
    assert table.marked == []

    producer.acknowledge()

    await until(lambda: table.marked == [1])


@pytest.mark.parametrize("trouble", ["failures", "refusals"])
async def test_a_row_the_producer_did_not_take_is_left_for_the_relay(
    running: Relay, table: FakeOutboxTable, producer: FakeProducer, trouble: str
) -> None:
    setattr(producer, trouble, 1)
    running.publish_committed([row(1)])
    await until(lambda: producer.failures == 0 and producer.refusals == 0)

    running.publish_committed([row(2)])  # the next rows still go out

    await until(lambda: table.marked == [2])
    await running.stop()
    assert table.marked == [2]


async def test_stop_sends_and_marks_what_was_handed_over(
    make_relay: MakeRelay, table: FakeOutboxTable, producer: FakeProducer
) -> None:
    relay = make_relay(settle_seconds=60, poll_seconds=60)  # nothing is sent before stop
    await relay.start()
    relay.publish_committed([row(1), row(2)])

    await relay.stop()

    assert producer.payloads() == ['{"n": 1}', '{"n": 2}']
    assert table.marked == [1, 2]
    assert not producer.running


async def test_a_batch_sends_pending_rows_in_order_then_marks_them(
    make_relay: MakeRelay, table: FakeOutboxTable, producer: FakeProducer
) -> None:
    relay = make_relay(batch_size=2)
    table.add(row(3), row(1), row(2))

    assert await relay.publish_batch() == 2
    assert producer.payloads() == ['{"n": 1}', '{"n": 2}']
    assert table.marked == [1, 2]

    assert await relay.publish_batch() == 1
    assert await relay.publish_batch() == 0
    assert table.marked == [1, 2, 3]


async def test_a_batch_is_not_marked_when_the_broker_did_not_take_it(
    make_relay: MakeRelay, table: FakeOutboxTable, producer: FakeProducer
) -> None:
    relay = make_relay()
    table.add(row(1), row(2))
    producer.refusals = 1

    with pytest.raises(ConnectionError):
        await relay.publish_batch()

    assert table.marked == []


async def test_after_a_producer_error_the_relay_sends_the_rows_again(
    make_relay: MakeRelay, table: FakeOutboxTable, producer: FakeProducer
) -> None:
    table.add(row(1), row(2))
    producer.failures = 2  # the first round fails on row 1, the second on row 1 again
    relay = make_relay(settle_seconds=0, poll_seconds=0.01)
    await relay.start()
    try:
        await until(lambda: table.marked == [1, 2])
    finally:
        await relay.stop()

    assert producer.payloads() == ['{"n": 1}', '{"n": 2}']
    assert table.claims >= 3


async def test_a_notify_wakes_the_relay_before_its_next_poll(
    running: Relay, table: FakeOutboxTable, producer: FakeProducer
) -> None:
    await until(lambda: table.claims == 1)  # the look at start found nothing
    table.add(row(1))

    table.notify()

    await until(lambda: table.marked == [1])
