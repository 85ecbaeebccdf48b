"""The liveness heartbeat: touched while the event loop runs, no longer once it stops."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from shared.heartbeat import Heartbeat


async def test_the_file_is_touched_while_the_loop_runs_and_not_after(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    heartbeat = Heartbeat(path, interval=0.05)
    heartbeat.start()
    await asyncio.sleep(0.01)
    assert path.exists()
    os.utime(path, (0, 0))  # as if it were old
    await asyncio.sleep(0.12)
    assert path.stat().st_mtime > 1_000_000  # touched again by the running loop
    await heartbeat.stop()
    os.utime(path, (0, 0))
    await asyncio.sleep(0.12)
    assert path.stat().st_mtime == 0  # stopped: nothing touches it
