"""`make run`: start what is missing (broker, PostgreSQL, Redis), migrate, seed if empty, create a
development API key, and run all five services until Ctrl-C.

`python -m deploy.run_local [up|migrate|seed]`. Local state (embedded servers' data, the
development key, logs) lives in `.local/`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from deploy.infra import Endpoints, InfraStartError, LocalInfra
from deploy.servers import port_free, port_holder
from deploy.supervisor import REPO_ROOT, ChildSpec, Supervisor
from services.campaign.seed import seed
from services.gateway import api_keys
from shared import migrations
from shared.broker import ensure_topics
from shared.errors import DependencyUnavailable
from shared.settings import Settings
from shared.topics import ALL_TOPICS

log = logging.getLogger("deploy.run_local")
LOCAL_DIR = REPO_ROOT / ".local"
SERVICES = ("intent", "inference", "workflow", "campaign")
# A demo sends promptly, at any hour, 5 s apart (the product's defaults: working hours in the
# recipient's zone, 100 s apart; docs/email.md, "Pacing"). Exported values win.
DEMO_PACING = {
    "SEND_WINDOW_DAYS": "always",
    "SEND_SPACING_SECONDS": "5",
    "SEND_SPACING_JITTER_SECONDS": "1",
}


async def prepare(settings: Settings, known_key: str | None, *, seed_data: bool) -> str:
    """Topics, migrations, demo data if the database is empty, and the development key."""
    created = await ensure_topics(settings, ALL_TOPICS)
    if created:
        log.info("created topics: %s", ", ".join(created))
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrations.migrate(conn)
        if seed_data:
            result = await seed(conn)
            if not result.skipped:
                log.info("seeded %d candidates and %d jobs", result.candidates, result.jobs)
        return await development_key(conn, known_key)
    finally:
        await conn.close()


async def development_key(conn: asyncpg.Connection, known: str | None) -> str:
    """Reuse the known key while it is valid; otherwise create an all-scopes key."""
    if known and await api_keys.verify_token(conn, known) is not None:
        return known
    key = await api_keys.create_key(
        conn, "developer", frozenset(api_keys.SCOPES), "development key made by make run"
    )
    return key.token


def prepare_with_key_file(settings: Settings, key_file: Path, *, seed_data: bool) -> str:
    known = key_file.read_text().strip() if key_file.exists() else None
    token = asyncio.run(prepare(settings, known, seed_data=seed_data))
    if token != known:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(token + "\n")
        key_file.chmod(0o600)
    return token


def children(endpoints: Endpoints, port: int) -> list[ChildSpec]:
    # Text logs for a developer's terminal (the services default to JSON), and a demo's pacing
    # (DEMO_PACING), unless exported.
    env = {
        "LOG_FORMAT": "text",
        **DEMO_PACING,
        **os.environ,
        **endpoints.service_env(),
        "PYTHONUNBUFFERED": "1",
    }
    python = sys.executable
    specs = [ChildSpec(s, [python, "-m", f"services.{s}"], env) for s in SERVICES]
    specs.append(
        ChildSpec("gateway", [python, "-m", "services.gateway", "serve", "--port", str(port)], env)
    )
    return specs


def wait_until_ready(url: str, key: str, supervisor: Supervisor, timeout: float = 90.0) -> bool:
    """Until the gateway's dependencies are ready and every service answers a ping over Kafka."""
    deadline = time.monotonic() + timeout
    waiting = ["/readyz", *(f"/api/services/{s}/ping" for s in SERVICES)]
    headers = {"Authorization": f"Bearer {key}"}
    while waiting and time.monotonic() < deadline:
        if len(supervisor.pids) < len(SERVICES) + 1:
            return False  # a child died; the supervisor reports which
        try:
            if httpx.get(url + waiting[0], headers=headers, timeout=5.0).status_code == 200:
                waiting.pop(0)
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return not waiting


BROKER_NAMES = {
    "configured": "the configured Kafka",
    "existing": "the Kafka already running on this machine",
    "apache": "Apache Kafka, started here",
    "tansu": "Tansu, started here (for trying out only)",
}


def banner(url: str, key: str, key_file: str, endpoints: Endpoints) -> str:
    exports = " ".join(
        f"{name}={shlex.quote(value)}" for name, value in endpoints.service_env().items()
    )
    broker = f"{BROKER_NAMES[endpoints.kafka_broker]}: {endpoints.kafka_reason}"
    return f"""
  The recruiter assistant is running.

    web app      {url}/app   (sign in with the dev API key)
    API docs     {url}/docs
    readiness    {url}/readyz
    dev API key  {key}   (also in {key_file})
    Kafka        {endpoints.kafka_bootstrap_servers}, {broker}

    try: curl -s -H "Authorization: Bearer $(cat {key_file})" {url}/api/services/intent/ping

  For commands in another terminal (a service alone, `keys create`, ...):
    export {exports}

  Ctrl-C stops everything.
"""


def _shown(path: Path) -> str:
    """A path as short as it can be shown: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def up(infra: LocalInfra, state_dir: Path, port: int) -> int:
    if not port_free(port):
        # Before anything starts: a second `make run` beside a running one stops here.
        raise InfraStartError(
            f"port {port} is in use by {port_holder(port)}: is `make run` already running? "
            "Stop it first (Ctrl-C in its terminal); to run another gateway beside it, export "
            "the variables it printed and run `python -m services.gateway serve --port 8001`"
        )
    endpoints = infra.start()
    settings = endpoints.settings()
    key = prepare_with_key_file(settings, state_dir / "dev-api-key", seed_data=True)
    supervisor = Supervisor(children(endpoints, port))
    supervisor.start()
    try:
        url = f"http://127.0.0.1:{port}"
        if wait_until_ready(url, key, supervisor):
            print(banner(url, key, _shown(state_dir / "dev-api-key"), endpoints), flush=True)
        else:
            log.error("the gateway did not become ready; see the service output above")
        return supervisor.wait()
    finally:
        supervisor.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.run_local", description=__doc__)
    parser.add_argument("command", nargs="?", default="up", choices=["up", "migrate", "seed"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8000")))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=LOCAL_DIR,
        help="embedded servers' data and the development key (default: .local/)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per readiness poll
    state_dir: Path = args.state_dir.resolve()
    infra = LocalInfra(state_dir)
    try:
        if args.command == "up":
            return up(infra, state_dir, args.port)
        settings = infra.start().settings()
        key = prepare_with_key_file(
            settings, state_dir / "dev-api-key", seed_data=args.command == "seed"
        )
    except (DependencyUnavailable, InfraStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        infra.stop()
    log.info("done; development API key: %s", key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
