"""Readiness: is each dependency reachable right now, and how fast."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field


class Check(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None = None


class Readiness(BaseModel):
    ready: bool = Field(..., description="True when every dependency answered.")
    checks: dict[str, Check]


async def _timed(probe: Callable[[], Awaitable[Any]], timeout: float) -> Check:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; report it, don't raise
        return Check(
            ok=False,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        )
    return Check(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))


async def check_all(
    probes: dict[str, Callable[[], Awaitable[Any]]], timeout: float = 2.0
) -> Readiness:
    names = list(probes)
    results = await asyncio.gather(*(_timed(probes[n], timeout) for n in names))
    checks = dict(zip(names, results, strict=True))
    return Readiness(ready=all(c.ok for c in results), checks=checks)
