"""A liveness heartbeat for processes without an HTTP port: the event loop touches a file every
few seconds (HEARTBEAT_FILE), so a probe that finds the file older than a minute knows the loop is
stuck (deploy/k8s: the services' livenessProbe). Off when HEARTBEAT_FILE is unset."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 10.0


class Heartbeat:
    def __init__(self, path: Path, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def beat(self) -> None:
        """Touch the file now (created if missing)."""
        self.path.touch()  # also sets the time of a file that exists

    async def _run(self) -> None:
        while True:
            try:
                self.beat()
            except OSError as exc:  # a full or read-only disk: the probe will say so
                log.warning("heartbeat %s not written: %s", self.path, exc)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
