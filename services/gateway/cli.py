"""`python -m services.gateway [serve|migrate|keys ...]`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from datetime import UTC, datetime, timedelta

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.gateway import api_keys, key_changes
from shared.broker import check_kafka
from shared.cache import create_redis
from shared.contracts.common import DEFAULT_TEAM
from shared.db import Connection, create_pool
from shared.errors import DependencyUnavailable
from shared.logs import AccessLogMiddleware
from shared.service import configure_logging, migrate_service
from shared.settings import Settings, get_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.gateway")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the HTTP API (the default)")
    serve.add_argument("--host", help="bind address (default: GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="port (default: GATEWAY_PORT, 8000)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    sub.add_parser("migrate", help="apply the gateway schema migrations")
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--user", required=True, help="the user the key acts as")
    create.add_argument(
        "--team", default=DEFAULT_TEAM, help="the team the key acts for (default: default)"
    )
    create.add_argument(
        "--scopes", required=True, help=f"comma-separated: {', '.join(api_keys.SCOPES)}"
    )
    create.add_argument("--description", help="what the key is for")
    create.add_argument(
        "--expires-in-days", type=float, help="the key stops working after this (default: never)"
    )
    rotate = keys.add_parser(
        "rotate", help="a new secret for a key (printed once); the old one works for a grace period"
    )
    rotate.add_argument("key_id")
    rotate.add_argument(
        "--grace-hours", type=float, default=24.0, help="how long the old secret works (24)"
    )
    revoke = keys.add_parser("revoke", help="revoke a key by its id (or the whole key)")
    revoke.add_argument("key_id")
    keys.add_parser(
        "list", help="list keys (team, scopes, created, expires, last used; no secrets)"
    )
    return parser


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    pool = await create_pool(settings, max_size=1)
    try:
        async with pool.acquire() as conn:
            if args.keys_command == "create":
                return await _create(conn, args)
            if args.keys_command == "rotate":
                return await _rotate(settings, conn, args.key_id, args.grace_hours)
            if args.keys_command == "revoke":
                return await _revoke(settings, conn, args.key_id)
            _list(await api_keys.list_keys(conn))
    finally:
        await pool.close()
    return 0


async def _create(conn: Connection, args: argparse.Namespace) -> int:
    scopes = api_keys.parse_scopes(args.scopes)
    days = args.expires_in_days
    if days is not None and days <= 0:
        raise ValueError("--expires-in-days must be positive")
    expires_in = None if days is None else timedelta(days=days)
    key = await api_keys.create_key(
        conn, args.user, scopes, args.description, team=args.team, expires_in=expires_in,
        by=_operator(),
    )  # fmt: skip
    print(key.token)
    return 0


def _operator() -> str:
    """Who made a change from the command line, for the audit log: `cli:<the OS user>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:  # no user name for this uid (a container's)
        return f"cli:uid-{os.getuid()}"


async def _rotate(settings: Settings, conn: Connection, key_id: str, grace_hours: float) -> int:
    rotated = await api_keys.rotate_key(conn, key_id, timedelta(hours=grace_hours), by=_operator())
    if rotated is None:
        print(f"no active, unexpired key with id {key_id!r}", file=sys.stderr)
        return 1
    key, until = rotated
    await _announce(settings, key.key_id)
    print(key.token)
    print(f"the old secret works until {api_keys.when(until)}", file=sys.stderr)
    return 0


async def _revoke(settings: Settings, conn: Connection, key_id: str) -> int:
    if not await api_keys.revoke_key(conn, key_id, by=_operator()):
        print(f"no active key with id {key_id!r}", file=sys.stderr)
        return 1
    await _announce(settings, key_id)
    print(f"revoked {key_id}")
    return 0


async def _announce(settings: Settings, key_id: str) -> None:
    """Tell the running gateways, so that the change applies within a second, not after their
    cache's API_KEY_CACHE_SECONDS."""
    try:
        redis = await create_redis(settings)
        try:
            await key_changes.announce_change(redis, key_id)
        finally:
            await redis.aclose()
    except (DependencyUnavailable, RedisError, OSError) as exc:
        print(
            f"warning: could not tell the gateways through Redis ({exc}); they may accept the "
            f"old secret for up to API_KEY_CACHE_SECONDS ({settings.api_key_cache_seconds:g} s)",
            file=sys.stderr,
        )


def _list(keys: list[api_keys.KeyInfo]) -> None:
    now = api_keys.utcnow()
    print(
        f"{'KEY ID':<12}  {'USER':<16} {'TEAM':<16} {'SCOPES':<28} {'CREATED':<10} "
        f"{'EXPIRES':<16} {'LAST USED':<16} STATE"
    )
    for k in keys:
        print(
            f"{k.key_id:<12}  {k.user:<16} {k.team:<16} {','.join(k.scopes):<28} "
            f"{k.created_at:%Y-%m-%d} {_moment(k.expires_at, 'never'):<16} "
            f"{_moment(k.last_used_at, 'never'):<16} {k.state(now)}"
            + (f" {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
        )


def _moment(moment: datetime | None, none: str) -> str:
    return none if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


async def preflight(settings: Settings) -> None:
    """Check every dependency before uvicorn starts, so a bad setting is one clear line."""
    await check_kafka(settings)
    pool = await create_pool(settings, max_size=1)
    await pool.close()
    redis = await create_redis(settings)
    await redis.aclose()


def create_served_app() -> FastAPI:
    """The app uvicorn serves: the gateway with an access log (a line per request, in its span).
    Logging is configured here too, for uvicorn's worker processes (`--workers`)."""
    from services.gateway.app import create_app

    settings = get_settings()
    configure_logging(settings)
    app = create_app(settings)
    app.add_middleware(AccessLogMiddleware)
    return app


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = get_settings()
        configure_logging(settings)
        if args.command == "migrate":
            return asyncio.run(migrate_service(settings, "gateway"))
        if args.command == "keys":
            return asyncio.run(_keys(settings, args))
        host = getattr(args, "host", None) or settings.gateway_host
        port = getattr(args, "port", None) or settings.gateway_port
        workers = getattr(args, "workers", 1)
        asyncio.run(preflight(settings))
        uvicorn.run(
            "services.gateway.cli:create_served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            log_config=None,  # uvicorn's loggers go to ours (LOG_FORMAT)
            access_log=False,  # AccessLogMiddleware logs each request, with duration and trace id
        )
    except ValidationError as exc:
        print(f"gateway: error: invalid settings: {exc}", file=sys.stderr)
        return 2
    except (DependencyUnavailable, ValueError) as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 2
    return 0
