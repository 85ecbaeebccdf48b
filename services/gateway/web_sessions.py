"""Web app sign-ins: an API key pasted once becomes a server-side session in Redis, named by an
HttpOnly, SameSite=Strict cookie, with a CSRF token the pages send on every state-changing request.

Redis holds, under a hash of the session id (a dump of Redis does not hold working cookies), the
key's id and the digest of its secret: every request checks the key again (`KeyStore`), so a
revoked or expired key, or a rotated key's old secret after its grace, ends its sessions as it ends
its API use (a revocation within a second on every gateway worker). A session expires after
WEB_SESSION_SECONDS without use; signing out deletes it at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from services.gateway.api_keys import InvalidKey, KeyStore, Principal, hash_secret, parse_token

SESSION_COOKIE = "rk_session"
CSRF_HEADER = "X-CSRF-Token"
_PREFIX = "gateway:web-session:"


@dataclass(frozen=True)
class Session:
    key_id: str
    digest: bytes
    user: str
    csrf_token: str

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent, self.csrf_token)


class SessionEnded(Exception):
    """The session named by the cookie is over: expired, signed out, or its key no longer works.
    The message says so, for the person."""


class SessionStore:
    def __init__(self, redis: Redis, seconds: int) -> None:
        self._redis = redis
        self._seconds = seconds

    async def start(self, token: str, principal: Principal) -> tuple[str, Session]:
        """A session for a verified key; its id (the cookie's value) and itself."""
        key_id, secret = parse_token(token)
        session = Session(key_id, hash_secret(secret), principal.user, secrets.token_urlsafe(32))
        session_id = secrets.token_urlsafe(32)
        record = {
            "key_id": key_id,
            "digest": session.digest.hex(),
            "user": session.user,
            "csrf": session.csrf_token,
        }
        await self._redis.set(_name(session_id), json.dumps(record), ex=self._seconds)
        return session_id, session

    async def get(self, session_id: str) -> Session | None:
        """The session, its expiry pushed back; None when it ended or never was."""
        name = _name(session_id)
        raw = await self._redis.getex(name, ex=self._seconds)
        if raw is None:
            return None
        record = json.loads(raw)
        return Session(
            record["key_id"], bytes.fromhex(record["digest"]), record["user"], record["csrf"]
        )

    async def signed_in(self, session_id: str, keys: KeyStore) -> tuple[Session, Principal]:
        """The session and its key's principal, the key checked again (`KeyStore`); a key that
        no longer works ends the session. SessionEnded when there is none to use."""
        session = await self.get(session_id)
        if session is None:
            raise SessionEnded("your session has ended: sign in again")
        try:
            principal = await keys.verify_digest(session.key_id, session.digest)
        except InvalidKey as exc:
            await self.end(session_id)
            raise SessionEnded(f"your API key no longer works ({exc}): sign in again") from exc
        return session, principal

    async def end(self, session_id: str) -> None:
        await self._redis.delete(_name(session_id))


def _name(session_id: str) -> str:
    return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()
