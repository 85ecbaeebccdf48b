"""`python -m services.gateway [serve|migrate|keys ...]`."""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from services.gateway import api_keys
from shared.broker import check_kafka
from shared.cache import create_redis
from shared.db import create_pool
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
        "--scopes", required=True, help=f"comma-separated: {', '.join(api_keys.SCOPES)}"
    )
    create.add_argument("--description", help="what the key is for")
    revoke = keys.add_parser("revoke", help="revoke a key by its id (or the whole key)")
    revoke.add_argument("key_id")
    keys.add_parser("list", help="list keys (ids, users, scopes; never secrets)")
    return parser


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    pool = await create_pool(settings, max_size=1)
    try:
        async with pool.acquire() as conn:
            if args.keys_command == "create":
                scopes = api_keys.parse_scopes(args.scopes)
                key = await api_keys.create_key(conn, args.user, scopes, args.description)
                print(key.token)
            elif args.keys_command == "revoke":
                if not await api_keys.revoke_key(conn, args.key_id):
                    print(f"no active key with id {args.key_id!r}", file=sys.stderr)
                    return 1
                print(f"revoked {args.key_id}")
            else:
                rows = await conn.fetch(
                    "SELECT key_id, user_name, scopes, created_at, revoked_at"
                    " FROM gateway.api_keys ORDER BY created_at"
                )
                for r in rows:
                    state = f"revoked {r['revoked_at']:%Y-%m-%d}" if r["revoked_at"] else "active"
                    print(
                        f"{r['key_id']}  {r['user_name']:<20} {','.join(r['scopes']):<32} {state}"
                    )
    finally:
        await pool.close()
    return 0


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
