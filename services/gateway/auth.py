"""FastAPI dependencies that turn a bearer API key, or the web app's session cookie, into a
Principal, with clear 401 and 403s. A request with the cookie and without a key changes nothing
unless it carries the session's CSRF token (`X-CSRF-Token`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway import rate_limits
from services.gateway.api_keys import InvalidKey, KeyStore, Principal, Scope
from services.gateway.web_sessions import CSRF_HEADER, SESSION_COOKIE, SessionEnded, SessionStore

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rk_...`")


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    store: KeyStore = request.app.state.key_store
    if credentials is None:
        principal = await _from_session(request, store)
    else:
        try:
            principal = await store.verify(credentials.credentials)
        except InvalidKey as exc:
            raise _unauthorized(f"invalid API key: {exc}") from exc
    request.state.principal = principal
    return principal


async def _from_session(request: Request, store: KeyStore) -> Principal:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        raise _unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' "
            "(create one with: python -m services.gateway keys create --user NAME --team TEAM "
            "--scopes ...)"
        )
    sessions: SessionStore = request.app.state.web_sessions
    try:
        session, principal = await sessions.signed_in(session_id, store)
    except SessionEnded as ended:
        raise _unauthorized(str(ended)) from ended
    if request.method not in SAFE_METHODS and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"missing or wrong CSRF token: send the page's token in {CSRF_HEADER}",
        )
    return principal


def require(scope: Scope, *others: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits keys carrying any of the scopes given (or `admin`)."""
    scopes = (scope, *others)
    named = " or ".join(repr(s) for s in scopes)

    async def check(
        request: Request, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Principal:
        await rate_limits.charge_key(request, principal)  # 429 when the key is over its limit
        if not any(principal.allows(s) for s in scopes):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"this API key (user {principal.user!r}) lacks the {named} scope; "
                f"it has: {', '.join(sorted(principal.scopes))}",
            )
        return principal

    return check
