"""How a route reaches a service: the request/reply client as a FastAPI dependency, and `ask()`,
which sends a command and turns a failed reply into the HTTP error its code stands for."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from services.gateway.errors import http_error
from shared.rpc import ServiceClient


async def service_client(request: Request) -> ServiceClient:
    """The client the app's startup attached to the broker (async: no thread-pool hop)."""
    client: ServiceClient = request.app.state.client
    return client


Client = Annotated[ServiceClient, Depends(service_client)]


async def ask(
    client: ServiceClient, service: str, command: BaseModel, *, timeout: float | None = None
) -> dict[str, Any]:
    """Send `command` to `service` and return its reply's data. A failed reply raises the HTTP
    error its code stands for (`errors.http_error`); no reply in time, ServiceTimeout (a 504)."""
    reply = await client.request(service, command, timeout=timeout)
    if reply.ok:
        return reply.data
    raise http_error(reply, service)
