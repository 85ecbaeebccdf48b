"""Fan-out of `workflow.run.changed` to the event streams open in this gateway process.

Every gateway process reads the topic from its end, outside any consumer group (each one needs all
changes, and a missed change is harmless: a stream starts from a snapshot, and every change carries
the run's whole status)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict

from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from shared.broker import raw_body
from shared.consuming import batch_subscriber
from shared.contracts.workflow import WorkflowRunChanged
from shared.settings import Settings
from shared.topics import WORKFLOW_RUN_CHANGED

log = logging.getLogger(__name__)
QUEUE_LIMIT = 1_000  # changes held for one slow stream before it is cut off


class RunEventHub:
    def __init__(self) -> None:
        self._listeners: dict[uuid.UUID, set[asyncio.Queue[WorkflowRunChanged | None]]] = (
            defaultdict(set)
        )

    def listen(self, run_id: uuid.UUID) -> asyncio.Queue[WorkflowRunChanged | None]:
        queue: asyncio.Queue[WorkflowRunChanged | None] = asyncio.Queue(QUEUE_LIMIT)
        self._listeners[run_id].add(queue)
        return queue

    def stop_listening(
        self, run_id: uuid.UUID, queue: asyncio.Queue[WorkflowRunChanged | None]
    ) -> None:
        listeners = self._listeners.get(run_id)
        if listeners is not None:
            listeners.discard(queue)
            if not listeners:
                del self._listeners[run_id]

    def publish(self, change: WorkflowRunChanged) -> None:
        for queue in list(self._listeners.get(change.run_id, ())):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:  # a stream that does not read: end it rather than grow
                log.warning("an event stream for run %s fell behind; closing it", change.run_id)
                self.stop_listening(change.run_id, queue)
                queue.get_nowait()
                queue.put_nowait(None)

    def attach(self, broker: KafkaBroker, settings: Settings) -> None:
        """Every change of every run passes here, so a record is decoded only when a stream in
        this process follows its run (the record key is the run id)."""

        @batch_subscriber(
            broker,
            WORKFLOW_RUN_CHANGED.name,
            auto_offset_reset="latest",
            # People watch these streams: a tenth of a second is not noticed, and a consumer
            # that polls the broker every few ms costs it and this process CPU all day.
            fetch_max_wait_ms=settings.kafka_background_fetch_max_wait_ms,
            decoder=raw_body,
        )
        async def on_run_changes(bodies: list[bytes]) -> None:
            if not self._listeners:
                return
            for record in broker.context.get_local("message").raw_message:
                if record.key is None or _run_id(record.key) not in self._listeners:
                    continue
                try:
                    self.publish(WorkflowRunChanged.model_validate_json(record.value or b""))
                except ValidationError:
                    log.warning("an undecodable run change at offset %s skipped", record.offset)


def _run_id(key: bytes) -> uuid.UUID | None:
    try:
        return uuid.UUID(key.decode())
    except (ValueError, UnicodeDecodeError):
        return None
