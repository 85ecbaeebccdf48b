"""The public endpoints recipients and mail providers reach without an API key: the open-tracking
pixel, the click redirect, the unsubscribe page and RFC 8058 one-click POST, and the inbound
delivery-events webhook (authenticated by an HMAC signature with a timestamp, or a shared secret).
The campaign service checks the signed tokens and records what happened; the gateway only speaks
HTTP."""

from __future__ import annotations

import base64
import hmac
import html
import logging
import time
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from services.gateway import signatures
from services.gateway.errors import error_responses, http_error
from services.gateway.rate_limits import public_limit
from services.gateway.services import Client
from shared.contracts.campaign import (
    MAX_INBOUND_EVENTS,
    ClickTarget,
    InboundEvent,
    InboundResult,
    PreviewUnsubscribeCommand,
    RecordEmailEventsCommand,
    TrackClickCommand,
    TrackOpenCommand,
    UnsubscribeCommand,
    UnsubscribeView,
)
from shared.contracts.common import Reply
from shared.settings import Settings

log = logging.getLogger(__name__)
# Each public route costs a Kafka round trip: limited per client address (RATE_LIMIT_PUBLIC_...).
router = APIRouter(
    tags=["tracking"],
    responses=error_responses(400, 413, 422, 429, 504),
    dependencies=[Depends(public_limit)],
)

# A 1x1 transparent GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, private", "Pragma": "no-cache"}
MAX_TOKEN_CHARS = 200
ONE_CLICK = ("List-Unsubscribe", "One-Click")


@router.get(
    "/t/o/{token}.gif",
    summary="Open-tracking pixel: always a 1x1 GIF; records the email's first open",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}}},
)
async def open_pixel(token: str, client: Client) -> Response:
    # The same image whatever happens, so the pixel tells nobody whether a token is valid.
    if 0 < len(token) <= MAX_TOKEN_CHARS:
        try:
            await client.request("campaign", TrackOpenCommand(token=token))
        except Exception:  # a reader's image must never fail over tracking (logged)
            log.warning("could not record an open", exc_info=True)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get(
    "/t/c/{token}",
    summary="Click redirect: 302 to `url` only if the email contains that exact link",
    response_class=RedirectResponse,
    status_code=status.HTTP_302_FOUND,
    responses={400: {"description": "The link is not valid, or the email has no such link"}},
)
async def follow_click(
    token: str,
    client: Client,
    url: Annotated[str | None, Query(description="The link, as the email has it.")] = None,
) -> RedirectResponse:
    if not url:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the link has no url to go to")
    if len(token) > MAX_TOKEN_CHARS or len(url) > 2_000:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="this link is not valid")
    reply = await client.request("campaign", TrackClickCommand(token=token, url=url))
    target = ClickTarget.model_validate(_data(reply))
    # No Referer: the target site must not learn the tracking token.
    headers = {**NO_STORE, "Referrer-Policy": "no-referrer"}
    return RedirectResponse(target.url, status_code=status.HTTP_302_FOUND, headers=headers)


@router.get(
    "/u/{token}",
    summary="Unsubscribe page: asks to confirm (a GET never unsubscribes: link scanners fetch it)",
    response_class=HTMLResponse,
    responses={404: {"description": "The unsubscribe link is not valid"}},
)
async def unsubscribe_page(token: str, client: Client) -> HTMLResponse:
    if len(token) > MAX_TOKEN_CHARS:
        return _invalid_link()
    reply = await client.request("campaign", PreviewUnsubscribeCommand(token=token))
    if not reply.ok and reply.error is not None and reply.error.code == "not_found":
        return _invalid_link()
    view = UnsubscribeView.model_validate(_data(reply))
    address = html.escape(view.address_hint)
    if view.unsubscribed:
        return _page("You are unsubscribed", f"<p>{address} will not receive our emails.</p>")
    form = (
        f"<p>Stop all recruiting emails from us to {address}?</p>"
        '<form method="post"><input type="hidden" name="confirm" value="yes">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", form)


@router.post(
    "/u/{token}",
    summary="Unsubscribe: the page's button, or an RFC 8058 one-click POST "
    "(body List-Unsubscribe=One-Click)",
    response_class=HTMLResponse,
    responses={404: {"description": "The unsubscribe link is not valid; nothing changed"}},
)
async def unsubscribe(token: str, request: Request, client: Client) -> HTMLResponse:
    if len(token) > MAX_TOKEN_CHARS:
        return _invalid_link()
    # The token is the authority and the POST the confirmation, so the body is read only to
    # tell a mail client's one-click request from the page's button (both unsubscribe).
    body = (await request.body())[:1_000].decode("utf-8", "replace")
    one_click = ONE_CLICK in parse_qsl(body)
    command = UnsubscribeCommand(token=token, one_click=one_click)
    reply = await client.request("campaign", command)
    if not reply.ok and reply.error is not None and reply.error.code == "not_found":
        return _invalid_link()
    view = UnsubscribeView.model_validate(_data(reply))
    text = f"<p>{html.escape(view.address_hint)} will not receive our emails any more.</p>"
    return _page("You are unsubscribed", text)


class EmailEventsWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[InboundEvent] = Field(..., min_length=1, max_length=MAX_INBOUND_EVENTS)


async def _webhook_secret(
    request: Request,
    secret: Annotated[str | None, Header(alias="X-Webhook-Secret")] = None,
    signature: Annotated[
        str | None,
        Header(
            alias=signatures.HEADER,
            description=f"{signatures.FORMAT}, with WEBHOOK_SECRET; checked instead of "
            "X-Webhook-Secret when present",
        ),
    ] = None,
) -> None:
    """A signed request (its raw body, as received: the body-size limit applies) or, for
    providers that cannot sign, the shared secret. Checked before the body is validated, so a
    caller without either learns nothing about it."""
    settings: Settings = request.app.state.settings
    key = settings.webhook_secret.get_secret_value()
    if signature is not None:
        body = await request.body()
        try:
            signatures.verify(signature, body, key, time.time(), settings.webhook_tolerance_seconds)
        except signatures.BadSignature as exc:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(exc)) from exc
        return
    if secret is None or not hmac.compare_digest(secret.encode(), key.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong X-Webhook-Secret header"
            if secret
            else f"missing {signatures.HEADER} (or X-Webhook-Secret) header",
        )


@router.post(
    "/api/webhooks/email-events",
    summary="Inbound delivery events (replies, bounces, complaints, ...) from a mail provider",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(_webhook_secret)],
    tags=["webhooks"],
    responses={
        401: {
            "description": "Missing, wrong, stale or malformed X-Webhook-Signature (or a "
            "missing or wrong X-Webhook-Secret); nothing recorded"
        }
    },
)
async def email_events(body: EmailEventsWebhook, client: Client) -> InboundResult:
    reply = await client.request("campaign", RecordEmailEventsCommand(events=body.events))
    return InboundResult.model_validate(_data(reply))


def _data(reply: Reply) -> dict[str, object]:
    """A refused tracking or unsubscribe request is the visitor's bad link: 400 with why."""
    if reply.ok:
        return reply.data
    if reply.error is not None and reply.error.code in {"invalid_input", "not_found"}:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=reply.error.message)
    raise http_error(reply, "campaign")


def _invalid_link() -> HTMLResponse:
    return _page(
        "Link not valid",
        "<p>This unsubscribe link is not valid. Please use the link from the email itself, "
        "or reply to the email and ask us to stop.</p>",
        status_code=status.HTTP_404_NOT_FOUND,
    )


def _page(title: str, content: str, status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title></head>'
        f"<body><h1>{html.escape(title)}</h1>{content}</body></html>"
    )
    return HTMLResponse(page, status_code=status_code, headers=NO_STORE)
