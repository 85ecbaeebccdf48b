"""Server-Sent Events framing, shared by the streaming endpoints."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

KEEP_ALIVE = ": keep-alive\n\n"  # a comment line: keeps proxies from closing an idle stream
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# Named events, as a producer yields them: (event name, its data).
Events = AsyncGenerator[tuple[str, dict[str, Any]], None]


def sse_response(events: Events) -> StreamingResponse:
    """`events` as a Server-Sent Events response; the producer is closed when the client goes
    away mid-stream (so it stops waiting on a service)."""

    async def body() -> AsyncIterator[str]:
        async with contextlib.aclosing(events):
            async for name, data in events:
                yield sse_event(name, data)

    return StreamingResponse(body(), media_type="text/event-stream", headers=HEADERS)
