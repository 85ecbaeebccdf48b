"""An in-memory outbox table and Kafka producer for unit tests of the outbox relay
(`shared.outbox.Relay`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from shared.outbox import Claim, OutboxRow


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class FakeProducer:
    """Records what it is given. `failures` sends raise before taking a message, `refusals`
    messages are taken but not acknowledged, and with `holding` acknowledgements wait for
    `acknowledge()`."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.failures = 0
        self.refusals = 0
        self.holding = False
        self.running = False
        self._held: list[asyncio.Future[Any]] = []

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def send(
        self, topic: str, *, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the broker is away")
        self.sent.append(Sent(topic, key, value, headers))
        acknowledged: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.refusals:
            self.refusals -= 1
            acknowledged.set_exception(ConnectionError("the broker did not take it"))
        elif self.holding:
            self._held.append(acknowledged)
        else:
            acknowledged.set_result(None)
        return acknowledged

    def acknowledge(self) -> None:
        self.holding = False
        for acknowledged in self._held:
            acknowledged.set_result(None)
        self._held.clear()

    def payloads(self) -> list[str]:
        return [sent.value.decode() for sent in self.sent]


class FakeOutboxTable:
    """Rows added with `add` are pending until marked; `marked` lists the ids in the order they
    were marked. With `held_elsewhere`, another relay holds the schema."""

    def __init__(self) -> None:
        self.pending: dict[int, OutboxRow] = {}
        self.marked: list[int] = []
        self.claims = 0
        self.held_elsewhere = False
        self._wake: Callable[[], None] | None = None

    def add(self, *rows: OutboxRow) -> None:
        for row in rows:
            self.pending[row.id] = row

    def notify(self) -> None:
        """What a transaction that wrote rows does when it commits."""
        if self._wake is not None:
            self._wake()

    async def listen(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    async def unlisten(self) -> None:
        self._wake = None

    @contextlib.asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[Claim]:
        self.claims += 1
        if self.held_elsewhere:
            yield Claim([])
            return
        rows = [self.pending[row_id] for row_id in sorted(self.pending)][:limit]

        async def mark() -> None:
            await self.mark_published([row.id for row in rows])

        yield Claim(rows, mark)

    async def mark_published(self, ids: list[int]) -> None:
        for row_id in ids:
            self.pending.pop(row_id, None)
        self.marked += ids


def row(row_id: int, topic: str = "t", key: str = "k") -> OutboxRow:
    """An outbox row whose payload names it."""
    return OutboxRow(row_id, topic, key, f'{{"n": {row_id}}}', {"correlation_id": f"c{row_id}"})
