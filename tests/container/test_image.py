"""The container image under podman-compose (`make image-test`, marked `container`; not in the
default run): `make image` has built the image (deploy/Containerfile); this runs compose.yaml's
`setup` job and five processes from it (deploy/compose.hostinfra.yaml: host networking, against
the test's own Kafka, PostgreSQL and Redis), creates an admin key with the image's
`services.gateway keys create`, checks the containers' health checks, and passes the README's
smoke checks against the containerised gateway: every service answers a ping, an intent, and a
template-mode campaign whose approved emails reach the test's SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from deploy.servers import free_port
from shared.db import database_of, with_database
from shared.settings import Settings
from tests.support.api import wait_for, wait_for_state
from tests.support.campaign_rows import add_candidate, add_job, delete_tagged
from tests.support.smtp import SmtpTestServer
from tests.support.stack import stack_env

pytestmark = [pytest.mark.container, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ["-f", "deploy/compose.yaml", "-f", "deploy/compose.hostinfra.yaml"]
SERVICES = ("intent", "inference", "workflow", "campaign")
IMAGE = os.environ.get("APP_IMAGE", "localhost/recruiter-assistant:dev")
INTENT_MESSAGE = (  # README.md's example
    "Email the 20 best senior Python developers in Berlin about the Staff Backend Engineer role"
)
MESSAGE = "Email all senior Python developers in Reykjavik about the Staff Platform Engineer role"
JOB_TITLE = "Staff Platform Engineer"
FIRST_NAMES = ["Sigrun", "Gunnar", "Katla"]


def podman_compose() -> str:
    found = Path(sys.executable).parent / "podman-compose"
    return str(found) if found.exists() else "podman-compose"


@dataclass
class Containers:
    """The running compose project: the gateway's address, the admin key, the SMTP server."""

    project: str
    env: dict[str, str]
    base_url: str
    key: str
    smtp: SmtpTestServer
    settings: Settings

    def compose(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        argv = [podman_compose(), "-p", self.project, *COMPOSE_FILES, *args]
        return subprocess.run(
            argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)

    def container_ids(self) -> dict[str, str]:
        """service name -> container id, for this project's running containers."""
        listed = subprocess.run(
            ["podman", "ps", "--filter", f"label=io.podman.compose.project={self.project}",
             "--format", "json"],
            capture_output=True, text=True, timeout=30, check=True, env=self.env,
        )  # fmt: skip
        return {
            c["Labels"]["com.docker.compose.service"]: c["Id"] for c in json.loads(listed.stdout)
        }

    def logs(self) -> str:
        done = self.compose("logs", timeout=60)
        return done.stdout[-20_000:] + done.stderr[-5_000:]


def check(done: subprocess.CompletedProcess[str], what: str) -> str:
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


class UnixSocketForwarder:
    """127.0.0.1:<port> -> a unix socket, in a thread of its own: the embedded PostgreSQL of the
    test's infrastructure listens on a unix socket only, in a folder the containers' user (UID
    10001) may not enter; with host networking they reach it through this port instead."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-forwarder", daemon=True)

    def __enter__(self) -> UnixSocketForwarder:
        self._thread.start()
        assert self._ready.wait(10), "the forwarder did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.contextmanager
def tcp_database_url(url: str) -> Iterator[str]:
    """`url` as the containers reach it: as is over TCP, through a forwarder for a unix socket."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    socket_dir = query.pop("host", [""])[0]
    if not socket_dir.startswith("/"):
        yield url
        return
    port = query.pop("port", ["5432"])[0]
    with UnixSocketForwarder(f"{socket_dir}/.s.PGSQL.{port}") as forwarder:
        login = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        netloc = f"{login}127.0.0.1:{forwarder.port}"
        yield urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, doseq=True)))


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="module")
async def containers(settings: Settings, smtp_server: SmtpTestServer) -> AsyncIterator[Containers]:
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run `make image-test`, which installs it")
    started = time.monotonic()
    port = free_port()
    env = stack_env(
        settings,
        APP_IMAGE=IMAGE,
        GATEWAY_PORT=str(port),
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SEND_RATE_PER_SECOND="0",
        CAMPAIGN_SEND_RATE_PER_SECOND="0",
        **{f"{name.upper()}_METRICS_PORT": str(free_port()) for name in SERVICES},
    )
    project = f"ra-test-{uuid.uuid4().hex[:8]}"
    stack = Containers(project, env, f"http://127.0.0.1:{port}", "", smtp_server, settings)
    forwarding = contextlib.ExitStack()
    try:
        env["DATABASE_URL"] = forwarding.enter_context(tcp_database_url(settings.database_url))
        # compose.yaml's one-shot job: topics and every service's migrations, in the image.
        out = check(stack.compose("run", "--rm", "--no-deps", "setup"), "the setup job")
        print(f"setup job done at {time.monotonic() - started:.1f} s:\n{out[-2_000:]}")
        created = check(
            stack.compose(
                "run", "--rm", "--no-deps", "gateway",
                "services.gateway", "keys", "create", "--user", "container-test",
                "--scopes", "admin",
            ),
            "keys create",
        )  # fmt: skip
        token = re.search(r"\brk_\S+", created)
        assert token is not None, created
        stack.key = token.group(0)
        check(stack.compose("up", "-d", "--no-deps", "gateway", *SERVICES), "compose up")

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    return (await client.get(f"{stack.base_url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(ready, timeout=120, what="the containerised gateway's /readyz")
        print(f"five containers up and the gateway ready at {time.monotonic() - started:.1f} s")
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.compose("down", "-t", "10", timeout=120)
        forwarding.close()
        await drop_database(settings)


async def drop_database(settings: Settings) -> None:
    """The test database (the `prepared` fixture's job in other tests; the containers' setup job
    made the schema here)."""
    database = database_of(settings.database_url)
    if not database.startswith("test_"):
        return
    conn = await asyncpg.connect(with_database(settings.database_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


def test_the_image_runs_as_a_non_root_user_without_compilers(containers: Containers) -> None:
    probe = "id -u; id -g; command -v gcc cc || true; python --version"
    done = subprocess.run(
        ["podman", "run", "--rm", "--entrypoint", "sh", IMAGE, "-c", probe],
        capture_output=True, text=True, timeout=60, check=False, env=containers.env,
    )  # fmt: skip
    lines = check(done, "podman run").split()
    assert lines[:2] == ["10001", "10001"]
    assert "gcc" not in done.stdout
    assert "Python 3.11" in done.stdout


async def test_every_service_answers_a_ping_through_the_gateway(containers: Containers) -> None:
    async with containers.client() as api:
        for name in SERVICES:
            response = await api.get(f"/api/services/{name}/ping")
            assert response.status_code == 200, f"{name}: {response.text}"
            assert response.json()["pong"]["service"] == name


def test_the_containers_health_checks_pass(containers: Containers) -> None:
    ids = containers.container_ids()
    assert set(ids) >= {"gateway", *SERVICES}, ids
    for name in ("gateway", *SERVICES):
        done = subprocess.run(
            ["podman", "healthcheck", "run", ids[name]],
            capture_output=True, text=True, timeout=60, check=False, env=containers.env,
        )  # fmt: skip
        assert done.returncode == 0, f"{name}'s health check: {done.stdout}{done.stderr}"


async def test_an_intent(containers: Containers) -> None:
    async with containers.client() as api:
        response = await api.post(
            "/api/ai-assistant/intent",
            json={"message": INTENT_MESSAGE},
        )
    assert response.status_code == 200, response.text
    assert response.json()["intent"] == "email_campaign", response.json()
    assert response.json()["slots"]["location"] == "berlin", response.json()


async def test_a_template_mode_campaign_reaches_the_smtp_server(containers: Containers) -> None:
    tag = uuid.uuid4().hex[:12]
    pool = await asyncpg.create_pool(containers.settings.database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        await add_job(
            pool, JOB_TITLE, city="Reykjavik", country="IS", seniority="staff",
            skills=["python"], description="Platform work.", external_ref=f"container-{tag}",
        )  # fmt: skip
        people = {}
        for index, first in enumerate(FIRST_NAMES):
            address = f"{first.lower()}-{tag}@example.com"
            await add_candidate(
                pool, f"{first} Jonsdottir", email=address, first_name=first, city="Reykjavik",
                country="IS", seniority="senior", years=10 - index, skills=["python"],
            )  # fmt: skip
            people[first] = address

        async with containers.client() as api:
            detected = await api.post("/api/ai-assistant/intent", json={"message": MESSAGE})
            assert detected.status_code == 200, detected.text
            assert detected.json()["intent"] == "email_campaign", detected.json()
            run_id = detected.json()["workflow_id"]
            await wait_for_state(api, run_id, "await_review", timeout=90)
            listed = await api.get(f"/api/campaigns/{run_id}/emails", params={"status": "drafted"})
            assert listed.status_code == 200, listed.text
            drafts = {email["to_address"]: email for email in listed.json()["items"]}
            assert set(drafts) == set(people.values())
            for address, email in drafts.items():
                response = await api.post(
                    f"/api/campaigns/{run_id}/emails/{email['email_id']}/approve"
                )
                assert response.status_code == 200, f"{address}: {response.text}"
            await containers.smtp.wait_for_messages(len(people), timeout=60)
            await wait_for_state(api, run_id, "monitoring", timeout=60)

        mode = await pool.fetchval(
            "SELECT generation_mode FROM campaign.campaigns WHERE campaign_id = $1",
            uuid.UUID(run_id),
        )
        assert mode == "template"
        mine = [m for m in containers.smtp.messages if m.rcpt_tos[0] in drafts]
        assert sorted(m.rcpt_tos[0] for m in mine) == sorted(people.values())
        for message in mine:
            assert message.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            first = next(f for f in FIRST_NAMES if people[f] == message.rcpt_tos[0])
            assert first in message.body
    finally:
        await delete_tagged(pool, tag)
        await pool.close()
