"""API keys over HTTP, for the admin: list them, create one (its token is answered once), rotate
one (a new secret, the old one working for a grace period) and revoke one. A rotation or a
revocation is announced on Redis, so every gateway worker drops the key from its cache at once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from services.gateway import api_keys, key_changes
from services.gateway.api_keys import KeyInfo, Principal, Scope
from services.gateway.auth import require
from services.gateway.errors import error_responses
from shared.contracts.common import DEFAULT_TEAM

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/api/keys", tags=["auth"], responses=error_responses(400, 401, 403, 413, 422)
)
Admin = Annotated[Principal, Depends(require("admin"))]
KeyId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{12}$", description="The key's id: its public part, 12 hex digits")
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such key (or, to rotate, no active unexpired one)"}
}


class KeyView(BaseModel):
    """A key as the admin sees it: never its secret."""

    key_id: str = Field(..., examples=["3f0c9a1b2d4e"])
    user: str = Field(..., examples=["ada"])
    team: str = Field(..., examples=["berlin-recruiting"])
    scopes: list[str] = Field(..., examples=[["review"]])
    description: str | None = None
    state: str = Field(..., description="active, expired or revoked", examples=["active"])
    created_at: datetime
    expires_at: datetime | None = Field(None, description="None: the key never expires")
    last_used_at: datetime | None = Field(
        None, description=f"Updated at most every {api_keys.LAST_USED_EVERY_SECONDS:.0f} s"
    )
    rotated_at: datetime | None = None
    previous_valid_until: datetime | None = Field(
        None, description="The secret before the last rotation works until then"
    )
    revoked_at: datetime | None = None

    @classmethod
    def of(cls, info: KeyInfo, now: datetime) -> KeyView:
        return cls(
            key_id=info.key_id, user=info.user, team=info.team, scopes=list(info.scopes),
            description=info.description, state=info.state(now), created_at=info.created_at,
            expires_at=info.expires_at, last_used_at=info.last_used_at,
            rotated_at=info.rotated_at, previous_valid_until=info.previous_valid_until,
            revoked_at=info.revoked_at,
        )  # fmt: skip


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(..., min_length=1, max_length=200, examples=["ada"])
    team: str = Field(
        DEFAULT_TEAM,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="The team the key acts for",
        examples=["berlin-recruiting"],
    )
    scopes: list[Scope] = Field(..., min_length=1, examples=[["review"]])
    expires_in_days: float | None = Field(
        None, gt=0, le=3_650, description="None: the key never expires", examples=[90]
    )
    description: str | None = Field(None, max_length=500, examples=["the ATS integration"])


class RotateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_hours: float = Field(
        24,
        ge=0,
        le=24 * 30,
        description="How long the old secret keeps working (0: it stops at once)",
    )


class IssuedKey(BaseModel):
    """A key with its token: shown this once, never again."""

    token: str = Field(..., examples=["rk_3f0c9a1b2d4e_..."])
    key: KeyView
    old_secret_valid_until: datetime | None = Field(
        None, description="After a rotation: the old token works until then"
    )


@router.get("", summary="Every API key (never their secrets)")
async def list_keys(
    request: Request,
    _: Admin,
    team: Annotated[str | None, Query(max_length=64, description="Only this team's keys")] = None,
) -> list[KeyView]:
    now = api_keys.utcnow()
    return [
        KeyView.of(info, now) for info in await api_keys.list_keys(request.app.state.pool, team)
    ]


@router.post(
    "",
    summary="Create an API key; the answer holds its token, shown once",
    status_code=status.HTTP_201_CREATED,
)
async def create_key(body: CreateKey, request: Request, principal: Admin) -> IssuedKey:
    expires_in = None if body.expires_in_days is None else timedelta(days=body.expires_in_days)
    async with request.app.state.pool.acquire() as conn:
        try:
            key = await api_keys.create_key(
                conn, body.user, frozenset(body.scopes), body.description,
                team=body.team, expires_in=expires_in, by=principal.user,
            )  # fmt: skip
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
        info = await api_keys.get_key(conn, key.key_id)
    assert info is not None
    return IssuedKey(token=key.token, key=KeyView.of(info, api_keys.utcnow()))


@router.post(
    "/{key_id}/rotate",
    summary="A new secret for a key; the old one keeps working for `grace_hours`",
    responses=NOT_FOUND,
)
async def rotate_key(
    key_id: KeyId, request: Request, principal: Admin, body: RotateKey | None = None
) -> IssuedKey:
    grace = timedelta(hours=(body or RotateKey()).grace_hours)
    async with request.app.state.pool.acquire() as conn:
        rotated = await api_keys.rotate_key(conn, key_id, grace, by=principal.user)
        if rotated is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"no active, unexpired key with id {key_id!r}"
            )
        info = await api_keys.get_key(conn, key_id)
    assert info is not None
    await _announce(request, key_id)
    key, until = rotated
    return IssuedKey(
        token=key.token, key=KeyView.of(info, api_keys.utcnow()), old_secret_valid_until=until
    )


@router.delete(
    "/{key_id}",
    summary="Revoke a key: every gateway refuses it within a second (again: no change)",
    responses=NOT_FOUND,
)
async def revoke_key(key_id: KeyId, request: Request, principal: Admin) -> KeyView:
    async with request.app.state.pool.acquire() as conn:
        await api_keys.revoke_key(conn, key_id, by=principal.user)
        info = await api_keys.get_key(conn, key_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no key with id {key_id!r}")
    await _announce(request, key_id)
    return KeyView.of(info, api_keys.utcnow())


async def _announce(request: Request, key_id: str) -> None:
    """Drop the key here at once and tell the other workers. Should Redis refuse the message,
    a worker still subscribed trusts its cache for up to API_KEY_CACHE_SECONDS (logged)."""
    request.app.state.key_store.forget(key_id)
    try:
        await key_changes.announce_change(request.app.state.redis, key_id)
    except (RedisError, OSError):
        log.warning("could not announce the change of key %s", key_id, exc_info=True)
