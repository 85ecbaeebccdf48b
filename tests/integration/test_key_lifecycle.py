"""API keys' lifecycle through a real gateway with two worker processes (`serve --workers 2`),
each caching keys for ten minutes: teams, expiry (401 saying when), rotation with a grace period,
revocation that every worker applies within a second (Redis pub/sub, also after the channel's
connection is cut), the last use recorded, the CLI, and the admin-only key routes.

A connection stays with one worker, so each check opens connections until it has been answered by
both workers (`by_worker`): `/healthz` on the same connection names the worker."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from services.gateway.api_keys import parse_token
from services.gateway.key_changes import CHANGES_CHANNEL
from shared.settings import Settings
from tests.support.api import MakeKey, wait_for
from tests.support.stack import Gateway, Launcher, stack_env

pytestmark = pytest.mark.integration

WORKERS = 2
FORM_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def gateway(module_launcher: Launcher) -> Gateway:
    # A cache far longer than any test: a change seen at once is the channel's doing.
    return module_launcher.gateway_workers(WORKERS, API_KEY_CACHE_SECONDS="600")


@pytest.fixture(scope="module")
async def admin(gateway: Gateway, make_key: MakeKey) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client(await make_key("admin", user="root", team="ops")) as client:
        yield client


async def by_worker(
    gateway: Gateway, key: str | None, path: str = "/api/whoami", each: int = 2
) -> dict[str, list[httpx.Response]]:
    """`GET path` with `key` over fresh connections until each worker answered `each` times:
    the answers by worker."""
    seen: dict[str, list[httpx.Response]] = {}
    for _ in range(400):
        async with gateway.client(key) as http:  # one connection, so one worker
            instance = (await http.get("/healthz")).json()["instance_id"]
            seen.setdefault(instance, []).append(await http.get(path))
        if len(seen) == WORKERS and all(len(answers) >= each for answers in seen.values()):
            return seen
    raise AssertionError(f"not answered by {WORKERS} workers: {sorted(seen)}")


def statuses(answers: dict[str, list[httpx.Response]]) -> set[int]:
    return {response.status_code for responses in answers.values() for response in responses}


def details(answers: dict[str, list[httpx.Response]]) -> set[str]:
    return {r.json()["detail"] for responses in answers.values() for r in responses}


async def key_view(admin: httpx.AsyncClient, key_id: str) -> dict[str, Any]:
    response = await admin.get("/api/keys")
    assert response.status_code == 200, response.text
    [view] = [k for k in response.json() if k["key_id"] == key_id]
    return dict(view)


async def test_admin_creates_a_team_key_and_only_the_admin_manages_keys(
    gateway: Gateway, admin: httpx.AsyncClient, make_key: MakeKey
) -> None:
    body = {"user": "ada", "team": "berlin", "scopes": ["review"], "description": "ATS"}
    created = await admin.post("/api/keys", json=body)
    assert created.status_code == 201, created.text
    token, view = created.json()["token"], created.json()["key"]
    assert (view["user"], view["team"], view["scopes"], view["state"]) == (
        "ada", "berlin", ["review"], "active"
    )  # fmt: skip
    assert view["expires_at"] is None
    assert view["last_used_at"] is None
    assert "token" not in str(await key_view(admin, view["key_id"]))
    listed = await admin.get("/api/keys", params={"team": "berlin"})
    assert view["key_id"] in {k["key_id"] for k in listed.json()}
    assert {k["team"] for k in listed.json()} == {"berlin"}

    async with gateway.client(token) as ada:
        me = await ada.get("/api/whoami")
        assert me.json() == {
            "user": "ada", "team": "berlin", "key_id": view["key_id"], "scopes": ["review"]
        }  # fmt: skip
        key_id = view["key_id"]
        for method, path, payload in [
            ("GET", "/api/keys", None),
            ("POST", "/api/keys", body),
            ("POST", f"/api/keys/{key_id}/rotate", {"grace_hours": 1}),
            ("DELETE", f"/api/keys/{key_id}", None),
        ]:
            refused = await ada.request(method, path, json=payload)
            assert refused.status_code == 403, (method, path, refused.text)
            assert "lacks the 'admin' scope" in refused.json()["detail"]
            async with gateway.client() as anonymous:
                assert (await anonymous.request(method, path, json=payload)).status_code == 401
        assert (await ada.get("/api/whoami")).status_code == 200  # nothing changed

    bad = await admin.post("/api/keys", json={**body, "team": "no spaces"})
    assert bad.status_code == 422
    bad = await admin.post("/api/keys", json={**body, "scopes": ["root"]})
    assert bad.status_code == 422
    missing = await admin.post("/api/keys/000000000000/rotate")
    assert missing.status_code == 404
    assert (await admin.delete("/api/keys/000000000000")).status_code == 404
    assert (await admin.delete("/api/keys/rk_not-an-id")).status_code == 422


async def test_an_expired_key_is_refused_saying_when_even_from_the_cache(
    gateway: Gateway, admin: httpx.AsyncClient
) -> None:
    created = await admin.post(
        "/api/keys", json={"user": "temp", "scopes": ["assistant"], "expires_in_days": 5 / 86_400}
    )
    assert created.status_code == 201, created.text
    token, view = created.json()["token"], created.json()["key"]
    assert view["expires_at"] is not None
    async with gateway.client(token) as temp:
        assert (await temp.get("/api/whoami")).status_code == 200  # now cached for ten minutes

        async def refused() -> httpx.Response | None:
            response = await temp.get("/api/whoami")
            return response if response.status_code == 401 else None

        expired = await wait_for(refused, timeout=30, what="the key to expire")
    assert "expired at" in expired.json()["detail"]
    assert expired.json()["detail"].endswith("UTC")
    assert statuses(await by_worker(gateway, token)) == {401}
    assert (await key_view(admin, view["key_id"]))["state"] == "expired"
    rotate = await admin.post(f"/api/keys/{view['key_id']}/rotate")
    assert rotate.status_code == 404  # an expired key stays expired


async def test_rotation_keeps_the_old_secret_for_its_grace_then_only_the_new(
    gateway: Gateway, admin: httpx.AsyncClient, make_key: MakeKey
) -> None:
    old = await make_key("review", user="rot", team="berlin")
    key_id = parse_token(old)[0]
    assert statuses(await by_worker(gateway, old)) == {200}  # both workers cache the old secret
    rotated = await admin.post(f"/api/keys/{key_id}/rotate", json={"grace_hours": 10 / 3600})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["token"]
    assert parse_token(new)[0] == key_id
    assert new != old
    assert rotated.json()["old_secret_valid_until"] is not None
    # During the grace both work on every worker: the new secret too, so the workers did not
    # answer from the old cached row.
    assert statuses(await by_worker(gateway, new)) == {200}
    assert statuses(await by_worker(gateway, old)) == {200}

    async with gateway.client(old) as client:

        async def refused() -> httpx.Response | None:
            response = await client.get("/api/whoami")
            return response if response.status_code == 401 else None

        ended = await wait_for(refused, timeout=40, what="the grace period to end")
    assert "rotated; it stopped working at" in ended.json()["detail"]
    assert statuses(await by_worker(gateway, old)) == {401}
    after = await by_worker(gateway, new)
    assert statuses(after) == {200}
    assert {r.json()["team"] for rs in after.values() for r in rs} == {"berlin"}


async def sign_in(web: httpx.AsyncClient, key: str) -> None:
    """Sign a browser in with `key` (its session cookie works on any worker)."""
    form = await web.get("/app/sign-in")
    match = FORM_TOKEN.search(form.text)
    assert match is not None
    signed = await web.post("/app/sign-in", data={"csrf": match.group(1), "api_key": key})
    assert signed.status_code == 303, signed.text


async def test_a_revoked_key_and_its_web_session_end_on_every_worker_within_a_second(
    gateway: Gateway, admin: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key("assistant", user="leaver")
    key_id = parse_token(key)[0]
    async with gateway.client() as web:
        await sign_in(web, key)
        cookies = dict(web.cookies)
        assert statuses(await by_worker(gateway, key)) == {200}  # cached by both workers
        assert (await web.get("/api/whoami")).status_code == 200

        revoked = await admin.delete(f"/api/keys/{key_id}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["state"] == "revoked"
        await asyncio.sleep(1)  # the claim under test: refused everywhere a second later

        answers = await by_worker(gateway, key)
        assert statuses(answers) == {401}
        assert details(answers) == {"invalid API key: unknown or revoked API key"}
        session = await web.get("/api/whoami")
        assert session.status_code == 401
        assert "no longer works" in session.json()["detail"]
    async with httpx.AsyncClient(base_url=gateway.base_url, cookies=cookies) as replay:
        assert (await replay.get("/api/whoami")).status_code == 401
    assert (await admin.delete(f"/api/keys/{key_id}")).status_code == 200  # again: no change


async def test_revocation_still_reaches_every_worker_after_the_channel_is_cut(
    gateway: Gateway, admin: httpx.AsyncClient, make_key: MakeKey, prepared: Settings
) -> None:
    redis = aioredis.Redis.from_url(prepared.redis_url)
    try:

        async def subscribers() -> int:
            [(_, count)] = await redis.pubsub_numsub(CHANGES_CHANNEL)
            return int(count)

        await wait_for(lambda: _at_least(subscribers, WORKERS), what="both workers subscribed")
        killed = await redis.client_kill_filter(_type="pubsub")
        assert killed >= WORKERS
        key = await make_key("assistant", user="cut")
        assert statuses(await by_worker(gateway, key)) == {200}
        await wait_for(lambda: _at_least(subscribers, WORKERS), what="both workers resubscribed")
        assert statuses(await by_worker(gateway, key)) == {200}  # cached again
    finally:
        await redis.aclose()
    assert (await admin.delete(f"/api/keys/{parse_token(key)[0]}")).status_code == 200
    await asyncio.sleep(1)
    assert statuses(await by_worker(gateway, key)) == {401}


async def _at_least(count: Any, n: int) -> bool:
    return bool(await count() >= n)


async def test_the_last_use_is_recorded_at_most_once_a_minute(
    gateway: Gateway, admin: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key("assistant", user="user")
    key_id = parse_token(key)[0]
    assert (await key_view(admin, key_id))["last_used_at"] is None
    async with gateway.client(key) as client:
        assert (await client.get("/api/whoami")).status_code == 200

        async def recorded() -> str | None:
            used: str | None = (await key_view(admin, key_id))["last_used_at"]
            return used

        first = await wait_for(recorded, what="the key's last use")
        assert statuses(await by_worker(gateway, key, each=5)) == {200}
    assert (await key_view(admin, key_id))["last_used_at"] == first  # not once per request


async def cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.gateway", "keys", *args,
        env=stack_env(settings), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_creates_lists_rotates_and_revokes(
    gateway: Gateway, prepared: Settings
) -> None:
    code, out, err = await cli(
        prepared, "create", "--user", "cli-user", "--team", "munich", "--scopes", "review",
        "--expires-in-days", "30",
    )  # fmt: skip
    assert code == 0, err
    token = out.strip()
    key_id = parse_token(token)[0]
    code, out, err = await cli(prepared, "list")
    assert code == 0, err
    [line] = [line for line in out.splitlines() if line.startswith(key_id)]
    assert line.split()[1:4] == ["cli-user", "munich", "review"]
    assert line.split()[-1] == "active"
    assert "never" in line  # not used yet; it expires in 30 days
    assert statuses(await by_worker(gateway, token)) == {200}

    code, out, err = await cli(prepared, "rotate", key_id, "--grace-hours", "1")
    assert code == 0, err
    new = out.strip()
    assert parse_token(new)[0] == key_id
    assert "the old secret works until" in err
    assert statuses(await by_worker(gateway, new)) == {200}
    assert statuses(await by_worker(gateway, token)) == {200}

    code, out, err = await cli(prepared, "revoke", key_id)
    assert (code, out.strip()) == (0, f"revoked {key_id}"), err
    await asyncio.sleep(1)
    assert statuses(await by_worker(gateway, new)) == {401}
    assert statuses(await by_worker(gateway, token)) == {401}
    assert (await cli(prepared, "revoke", key_id))[0] == 1
    assert (await cli(prepared, "create", "--user", "x", "--team", "a b", "--scopes", "review"))[
        0
    ] == 2
