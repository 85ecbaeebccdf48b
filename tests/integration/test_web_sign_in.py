"""Signing in to the web app: an API key pasted once becomes a server-side session (an HttpOnly,
SameSite=Strict cookie naming a Redis entry), which the `/api` routes accept in place of a key,
with the session's CSRF token on every state-changing request; the key's scopes still apply;
signing out, or revoking the key, ends the session.

The gateway runs with the intent service (the chat's first stop) and no model."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest

from services.gateway.api_keys import parse_token, revoke_key
from tests.support.api import MakeKey
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration

FORM_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')
PAGE_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture(scope="module")
def stack() -> Stack:
    # Keys are checked on every request here (no cache), so a revocation shows at once.
    return Stack(
        {"intent": {}, "campaign": {}},
        gateway_env={"API_KEY_CACHE_SECONDS": "0"},
        user="web-user",
        scopes=("assistant",),
    )


async def sign_in(web: httpx.AsyncClient, key: str, next_page: str = "/app") -> httpx.Response:
    form = await web.get("/app/sign-in", params={"next": next_page})
    assert form.status_code == 200
    match = FORM_TOKEN.search(form.text)
    assert match is not None
    fields = {"csrf": match.group(1), "api_key": key, "next": next_page}
    return await web.post("/app/sign-in", data=fields)


def page_token(page: httpx.Response) -> str:
    match = PAGE_TOKEN.search(page.text)
    assert match is not None, page.text[:500]
    return match.group(1)


async def test_a_key_becomes_a_session_that_the_api_takes_with_its_csrf_token(
    gateway: Gateway, make_key: MakeKey
) -> None:
    key = await make_key("assistant", "review", user="ada")
    async with gateway.client() as web:
        first = await web.get("/app/assistant")
        assert first.status_code == 303
        assert first.headers["location"] == "/app/sign-in?next=/app/assistant"

        signed_in = await sign_in(web, key, "/app/assistant")
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/app/assistant"
        cookie = signed_in.headers["set-cookie"]
        assert "rk_session=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert key not in cookie  # the cookie names a session; the key stays with the user

        page = await web.get("/app/assistant")
        assert page.status_code == 200
        assert "ada" in page.text
        token = page_token(page)

        whoami = await web.get("/api/whoami")
        assert whoami.status_code == 200
        assert whoami.json()["user"] == "ada"

        message = {"message": "how many python developers in Berlin do we have?"}
        refused = await web.post("/api/ai-assistant/chat", json=message)
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["detail"]
        wrong = await web.post(
            "/api/ai-assistant/chat", json=message, headers={"X-CSRF-Token": token + "x"}
        )
        assert wrong.status_code == 403
        answered = await web.post(
            "/api/ai-assistant/chat", json=message, headers={"X-CSRF-Token": token}
        )
        assert answered.status_code == 200, answered.text
        assert answered.json()["kind"] == "search"

        out = await web.post("/app/sign-out", data={"csrf": token})
        assert out.status_code == 303
        session = signed_in.cookies["rk_session"]
        web.cookies.set("rk_session", session)  # the old cookie, kept by a stale tab
        after = await web.get("/api/whoami")
        assert after.status_code == 401  # the old cookie names no session any more
        assert "sign in again" in after.json()["detail"]


async def test_a_sign_in_needs_a_working_key_and_the_forms_own_token(
    gateway: Gateway, make_key: MakeKey
) -> None:
    async with gateway.client() as web:
        wrong = await sign_in(web, "rk_000000000000.nope")
        assert wrong.status_code == 401
        assert "That key does not work" in wrong.text
        assert "rk_session" not in wrong.headers.get("set-cookie", "")

        key = await make_key("assistant", user="bob")
        forged = await web.post("/app/sign-in", data={"csrf": "guess", "api_key": key})
        assert forged.status_code == 403
        elsewhere = await sign_in(web, key, "https://evil.example/")
        assert elsewhere.headers["location"] == "/app"  # never an open redirect


async def test_the_keys_scopes_apply_to_pages_and_to_the_api(
    gateway: Gateway, make_key: MakeKey
) -> None:
    reviewer = await make_key("review", user="rev")
    async with gateway.client() as web:
        await sign_in(web, reviewer)
        home = await web.get("/app")
        assert home.headers["location"] == "/app/campaigns"
        campaigns = await web.get("/app/campaigns")
        assert 'href="/app/assistant"' not in campaigns.text  # not in the menu
        assistant = await web.get("/app/assistant")
        assert assistant.status_code == 403
        assert "needs the assistant scope" in assistant.text
        token = page_token(campaigns)
        chat = await web.post(
            "/api/ai-assistant/chat", json={"message": "hi"}, headers={"X-CSRF-Token": token}
        )
        assert chat.status_code == 403
        assert "lacks the 'assistant' scope" in chat.json()["detail"]


async def test_revoking_the_key_ends_its_sessions(
    gateway: Gateway, make_key: MakeKey, db: asyncpg.Pool
) -> None:
    key = await make_key("assistant", user="carol")
    async with gateway.client() as web:
        await sign_in(web, key)
        assert (await web.get("/api/whoami")).status_code == 200
        async with db.acquire() as conn:
            assert await revoke_key(conn, parse_token(key)[0])
        gone = await web.get("/api/whoami")
        assert gone.status_code == 401
        assert "no longer works" in gone.json()["detail"]
        async with gateway.client() as fresh:
            assert (await sign_in(fresh, key)).status_code == 401
