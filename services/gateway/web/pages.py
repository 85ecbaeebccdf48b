"""The web app's pages and its sign-in: server-rendered shells (Jinja2) whose scripts call the same
`/api` routes as any client, with the session cookie and the CSRF token instead of a key.

A page needs a session (else: the sign-in page, then back) and the scopes of the API routes it
uses: a review-only user sees no assistant and no runs, not even in the menu.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from services.gateway.api_keys import InvalidKey, KeyStore, Principal
from services.gateway.web_sessions import SESSION_COOKIE, Session, SessionEnded, SessionStore
from shared.contracts.audit import AUDIT_ACTIONS
from shared.settings import Settings

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
SIGN_IN_COOKIE = "rk_sign_in"  # the sign-in form's CSRF token, before there is a session
MAX_FORM_BYTES = 8_192

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/app", include_in_schema=False)


@cache
def _fingerprint(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def static(name: str) -> str:
    """A static file's URL, changing with its content (so browsers never run a stale script)."""
    return f"/app/static/{name}?v={_fingerprint(name)}"


templates.env.globals["static"] = static


def mount_static(app: Any) -> None:
    app.mount("/app/static", StaticFiles(directory=STATIC), name="web-static")


@dataclass(frozen=True)
class Page:
    name: str
    label: str
    href: str
    scopes: tuple[str, ...]  # any of them (or admin) shows the page


PAGES = (
    Page("assistant", "Assistant", "/app/assistant", ("assistant",)),
    Page("campaigns", "Campaigns", "/app/campaigns", ("workflows", "review")),
    Page("runs", "Runs", "/app/runs", ("workflows",)),
    Page("audit", "Audit", "/app/audit", ("admin",)),  # GET /api/audit is the admin's only
)
_BY_NAME = {page.name: page for page in PAGES}


def _allowed(principal: Principal, page: Page) -> bool:
    return any(principal.allows(scope) for scope in page.scopes)


async def _signed_in(request: Request) -> tuple[Session, Principal] | None:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    sessions: SessionStore = request.app.state.web_sessions
    try:
        return await sessions.signed_in(session_id, request.app.state.key_store)
    except SessionEnded:
        return None


def _to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        f"/app/sign-in?next={quote(target)}", status_code=status.HTTP_303_SEE_OTHER
    )


async def render(
    request: Request, page: str, template: str, title: str, **context: Any
) -> Response:
    """A page for the signed-in user who may see it: else the sign-in, or a 403 page."""
    signed_in = await _signed_in(request)
    if signed_in is None:
        return _to_sign_in(request)
    session, principal = signed_in
    shown = _BY_NAME[page]
    nav = [
        {"href": p.href, "label": p.label, "current": p.name == page}
        for p in PAGES
        if _allowed(principal, p)
    ]
    base = {"session": session, "principal": principal, "nav": nav, "title": title}
    if not _allowed(principal, shown):
        scopes = " or ".join(shown.scopes)
        message = (
            f"Your API key (user {principal.user}) cannot use the {shown.label.lower()}: it needs "
            f"the {scopes} scope. Ask an admin for a key that has it."
        )
        return templates.TemplateResponse(
            request,
            "forbidden.html",
            {**base, "title": "Not for this key", "message": message},
            status_code=status.HTTP_403_FORBIDDEN,
        )
    return templates.TemplateResponse(request, template, {**base, **context})


@router.get("")
async def home(request: Request) -> Response:
    signed_in = await _signed_in(request)
    if signed_in is None:
        return _to_sign_in(request)
    _, principal = signed_in
    first = next((p for p in PAGES if _allowed(principal, p)), None)
    if first is None:
        return await render(request, "assistant", "assistant.html", "Assistant")
    return RedirectResponse(first.href, status_code=status.HTTP_303_SEE_OTHER)


# ---- Sign-in and sign-out ------------------------------------------------------------------


@router.get("/sign-in")
async def sign_in_page(
    request: Request, next_page: Annotated[str, Query(alias="next")] = "/app"
) -> Response:
    return _sign_in_form(request, next_page, error=None)


def _sign_in_form(
    request: Request, next_page: str, error: str | None, code: int = status.HTTP_200_OK
) -> Response:
    settings: Settings = request.app.state.settings
    token = secrets.token_urlsafe(24)
    context = {
        "title": "Sign in",
        "csrf": token,
        "next": _local(next_page),
        "error": error,
        "hours": round(settings.web_session_seconds / 3600, 1),
        "session": None,
        "principal": None,
    }
    response = templates.TemplateResponse(request, "sign_in.html", context, status_code=code)
    response.set_cookie(
        SIGN_IN_COOKIE, token, max_age=600, httponly=True, samesite="strict",
        secure=settings.web_cookie_secure, path="/app/sign-in",
    )  # fmt: skip
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await _form(request)
    next_page = _local(form.get("next", "/app"))
    expected = request.cookies.get(SIGN_IN_COOKIE)
    if not expected or not secrets.compare_digest(form.get("csrf", ""), expected):
        return _sign_in_form(
            request, next_page, "The form was too old or not ours: please try again.",
            status.HTTP_403_FORBIDDEN,
        )  # fmt: skip
    token = form.get("api_key", "").strip()
    store: KeyStore = request.app.state.key_store
    try:
        principal = await store.verify(token)
    except InvalidKey as exc:
        return _sign_in_form(
            request, next_page, f"That key does not work: {exc}.", status.HTTP_401_UNAUTHORIZED
        )
    sessions: SessionStore = request.app.state.web_sessions
    session_id, _ = await sessions.start(token, principal)
    settings: Settings = request.app.state.settings
    response = RedirectResponse(next_page, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=settings.web_session_seconds, httponly=True,
        samesite="strict", secure=settings.web_cookie_secure, path="/",
    )  # fmt: skip
    response.delete_cookie(SIGN_IN_COOKIE, path="/app/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = await _form(request)
    signed_in = await _signed_in(request)
    if signed_in is not None and not signed_in[0].csrf_ok(form.get("csrf")):
        return HTMLResponse("missing or wrong CSRF token", status_code=status.HTTP_403_FORBIDDEN)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        sessions: SessionStore = request.app.state.web_sessions
        await sessions.end(session_id)
    response = RedirectResponse("/app/sign-in", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form (the sign-in and sign-out forms post nothing else)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _local(target: str) -> str:
    """Only a path of this app: never an open redirect to another site."""
    if target.startswith("/app") and not target.startswith("//"):
        return target
    return "/app"


# ---- Pages ---------------------------------------------------------------------------------


@router.get("/assistant")
async def assistant(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    return await render(
        request,
        "assistant",
        "assistant.html",
        "Assistant",
        model_configured=settings.llm_configured,
    )


@router.get("/campaigns")
async def campaigns(request: Request) -> Response:
    return await render(request, "campaigns", "campaigns.html", "Campaigns")


@router.get("/campaigns/{campaign_id}")
async def campaign(request: Request, campaign_id: uuid.UUID) -> Response:
    return await render(
        request, "campaigns", "campaign.html", "Campaign", campaign_id=str(campaign_id)
    )


@router.get("/campaigns/{campaign_id}/review")
async def review(request: Request, campaign_id: uuid.UUID) -> Response:
    return await render(request, "campaigns", "review.html", "Review", campaign_id=str(campaign_id))


@router.get("/runs")
async def runs(request: Request) -> Response:
    return await render(request, "runs", "runs.html", "Runs")


@router.get("/runs/{run_id}")
async def run(request: Request, run_id: uuid.UUID) -> Response:
    return await render(request, "runs", "run.html", "Run", run_id=str(run_id))


@router.get("/audit")
async def audit_log(request: Request) -> Response:
    return await render(request, "audit", "audit.html", "Audit log", actions=AUDIT_ACTIONS)
