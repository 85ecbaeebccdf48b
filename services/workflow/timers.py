"""The engine's timers: step timeouts, retry backoffs and wait deadlines, kept as each run's
`wake_at` in PostgreSQL, so they survive restarts and any engine instance can act on them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

import asyncpg

from services.workflow import repository
from services.workflow.engine import Engine
from shared.contracts.common import utcnow

log = logging.getLogger(__name__)


class TimerLoop:
    """Wakes due runs. It sleeps until the earliest `wake_at`, at most `poll_seconds` (other
    instances may have set an earlier one), and is nudged when this process sets an earlier one."""

    def __init__(
        self, engine: Engine, pool: asyncpg.Pool, *, poll_seconds: float = 1.0, batch: int = 200
    ) -> None:
        self._engine = engine
        self._pool = pool
        self._poll_seconds = poll_seconds
        self._batch = batch
        self._wake = asyncio.Event()
        self._next_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def nudge(self, at: datetime) -> None:
        if (at - utcnow()).total_seconds() >= self._poll_seconds:
            return  # the next regular look comes before it anyway
        if self._next_at is None or at < self._next_at:
            self._next_at = at
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="workflow-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                woken = await self.fire_due()
                if woken >= self._batch:
                    continue
                async with self._pool.acquire() as conn:
                    self._next_at = await repository.next_wake(conn)
            except Exception:  # keep the timers alive through a database outage
                log.exception("workflow timers failed; retrying")
                self._next_at = None
            delay = self._poll_seconds
            if self._next_at is not None:
                delay = min(delay, max(0.0, (self._next_at - utcnow()).total_seconds()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def fire_due(self) -> int:
        """Wake every run whose timer has passed; returns how many were due."""
        async with self._pool.acquire() as conn:
            due = await repository.due_runs(conn, self._batch)
        for run_id in due:
            try:
                outcome = await self._engine.wake(run_id)
                log.debug("woke run %s: %s", run_id, outcome)
            except Exception:
                log.exception("waking run %s failed", run_id)
        return len(due)
