"""The product on a Kafka that authenticates (SASL_PLAINTEXT, SCRAM-SHA-512) and authorizes (ACLs).

A second Apache Kafka of this module's own has a SASL listener with one SCRAM user per process
and exactly the ACLs of deploy/README.md ("Managed Kafka: SASL, TLS and ACLs"), granted with
Kafka's own kafka-acls tool (AclCommand) through the broker's PLAINTEXT listener, which is a super
user for administration. The five processes run on those ACLs, a wrong login fails at startup
with a message naming the SASL settings, and a principal is refused what its ACLs do not grant.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError

from deploy.apache_kafka import ApacheKafka, KafkaUnavailable, ScramUser
from deploy.servers import free_port
from shared.broker import (
    KafkaTopicRefused,
    check_kafka,
    client_options,
    ensure_topics,
)
from shared.kafka_security import KafkaLoginRefused
from shared.settings import Settings
from shared.topics import ALL_TOPICS, INTENT_DETECTED, SERVICES, reply_topic
from tests.support.api import MakeKey, get_run, wait_for
from tests.support.processes import ServiceProcess, python_module
from tests.support.stack import Gateway, stack_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]  # make test-e2e

README = Path(__file__).resolve().parents[2] / "deploy" / "README.md"
README_SECTION = "## Managed Kafka: SASL, TLS and ACLs"
ACL_TOOL = "org.apache.kafka.tools.AclCommand"
ACL_TOOLS_AT_ONCE = 3  # each run is a JVM start (about a second of CPU); the machine has 2 cores
PROCESSES = ("gateway", *SERVICES)  # one SASL user each, named after the process
OUTSIDER = "outsider"  # a user with a valid login and no ACLs
WORKFLOW_MESSAGE = (
    "Email the 20 best senior Python developers in Berlin about the Staff Backend Engineer role"
)
# A model "configured" (never called here): the intent and campaign services then ask the
# inference service, so they create, read and delete reply topics of their own.
MODEL_ENV = {"LLM_MODEL": "fake-model", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}


@dataclass(frozen=True)
class Acl:
    """One row of deploy/README.md's ACL table: `operations` on each of `names`."""

    principal: str  # the SASL user; the ACL's principal is User:<principal>
    resource: Literal["Topic", "Group"]
    names: tuple[str, ...]
    pattern: Literal["literal", "prefixed"]
    operations: tuple[str, ...]

    def atoms(self) -> set[tuple[str, str, str, str, str]]:
        return {
            (f"User:{self.principal}", self.resource, name, self.pattern, operation)
            for name in self.names
            for operation in self.operations
        }


def _acl(
    principal: str,
    resource: Literal["Topic", "Group"],
    names: str,
    pattern: Literal["literal", "prefixed"],
    operations: str,
) -> Acl:
    return Acl(principal, resource, tuple(names.split()), pattern, tuple(operations.split()))


COMMANDS = " ".join(f"{service}.commands" for service in SERVICES)
# Exactly deploy/README.md's table (test_the_readme_lists_exactly_these_acls compares them).
ACLS: tuple[Acl, ...] = (
    _acl("gateway", "Topic", f"{COMMANDS} events.deadletter", "literal", "Write"),
    _acl("gateway", "Topic", "workflow.run.changed", "literal", "Read"),
    _acl("gateway", "Topic", "audit.recorded", "literal", "Read"),
    _acl("gateway", "Group", "gateway-audit", "literal", "Read"),
    _acl("gateway", "Topic", "gateway.replies.", "prefixed", "Create Delete Read"),
    _acl("intent", "Topic", "intent.commands workflow.questions", "literal", "Read"),
    _acl("intent", "Group", "intent intent.questions", "literal", "Read"),
    _acl(
        "intent", "Topic", "intent.detected workflow.signals events.deadletter", "literal", "Write"
    ),
    _acl("intent", "Topic", "gateway.replies.", "prefixed", "Write"),
    _acl("intent", "Topic", "inference.commands", "literal", "Write"),
    _acl("intent", "Topic", "intent.replies.", "prefixed", "Create Delete Read"),
    _acl("inference", "Topic", "inference.commands", "literal", "Read"),
    _acl("inference", "Group", "inference", "literal", "Read"),
    _acl("inference", "Topic", "events.deadletter", "literal", "Write"),
    _acl(
        "inference",
        "Topic",
        "gateway.replies. intent.replies. campaign.replies.",
        "prefixed",
        "Write",
    ),
    _acl(
        "workflow",
        "Topic",
        "workflow.commands intent.detected workflow.step.completed workflow.signals",
        "literal",
        "Read",
    ),
    _acl("workflow", "Group", "workflow workflow.engine", "literal", "Read"),
    _acl(
        "workflow",
        "Topic",
        "workflow.run.changed workflow.questions audit.recorded events.deadletter",
        "literal",
        "Write",
    ),
    _acl("workflow", "Topic", "gateway.replies.", "prefixed", "Write"),
    _acl("workflow", "Topic", "workflow.step.requested.", "prefixed", "Create Write"),
    _acl(
        "campaign",
        "Topic",
        "campaign.commands workflow.step.requested.campaign email.approved workflow.run.changed",
        "literal",
        "Read",
    ),
    _acl("campaign", "Group", "campaign campaign.events", "literal", "Read"),
    _acl(
        "campaign",
        "Topic",
        "workflow.step.completed workflow.signals email.approved email.delivery audit.recorded"
        " events.deadletter",
        "literal",
        "Write",
    ),
    _acl("campaign", "Topic", "gateway.replies.", "prefixed", "Write"),
    _acl("campaign", "Topic", "inference.commands", "literal", "Write"),
    _acl("campaign", "Topic", "campaign.replies.", "prefixed", "Create Delete Read"),
)


def acl_tool_runs(acls: Iterable[Acl]) -> list[list[str]]:
    """AclCommand arguments granting `acls`: one run per principal, pattern type and set of
    operations (a run grants each of its operations on each of its resources)."""
    merged: dict[tuple[str, str, tuple[str, ...]], list[Acl]] = {}
    for acl in acls:
        merged.setdefault((acl.principal, acl.pattern, acl.operations), []).append(acl)
    runs = []
    for (principal, pattern, operations), rows in merged.items():
        args = ["--add", "--allow-principal", f"User:{principal}"]
        args += ["--resource-pattern-type", pattern]
        args += [arg for operation in operations for arg in ("--operation", operation)]
        args += [
            arg for row in rows for name in row.names for arg in (f"--{row.resource.lower()}", name)
        ]
        runs.append(args)
    return runs


def readme_acls() -> set[tuple[str, str, str, str, str]]:
    """The ACL table of deploy/README.md's managed-Kafka section, one tuple per operation."""
    text = README.read_text()
    assert README_SECTION in text, f"{README} has no section {README_SECTION!r}"
    section = text.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    atoms: set[tuple[str, str, str, str, str]] = set()
    for line in section.splitlines():
        if not line.startswith("| `User:"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        principal, resource, names, pattern, operations = cells[:5]
        for name in re.findall(r"`([^`]+)`", names):
            for operation in operations.split(","):
                atoms.add((principal.strip("`"), resource, name, pattern, operation.strip()))
    return atoms


@dataclass
class SaslKafka:
    broker: ApacheKafka
    address: str  # the SASL_PLAINTEXT listener
    passwords: dict[str, str]

    @property
    def admin(self) -> Settings:
        """The PLAINTEXT listener: a super user, for creating topics and granting ACLs."""
        return Settings(
            environment="test",
            kafka_bootstrap_servers=self.broker.bootstrap_servers,
            kafka_security_protocol="PLAINTEXT",
        )

    def login(self, user: str, **fields: Any) -> Settings:
        """Settings of a client that logs in as `user` (over SCRAM-SHA-512 unless `fields` say
        otherwise)."""
        values: dict[str, Any] = {
            "environment": "test",
            "kafka_bootstrap_servers": self.address,
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": user,
            "kafka_sasl_password": self.passwords.get(user, "no-such-user"),
            "startup_timeout_seconds": 5,
        }
        return Settings(**(values | fields))

    def service_env(self, prepared: Settings, user: str, **extra: str) -> dict[str, str]:
        """A process's environment: this broker (as `user`), the session's PostgreSQL and Redis,
        and Apache Kafka's tuning (the Settings defaults, idempotent producers included)."""
        own = Settings(
            environment="test",
            kafka_bootstrap_servers=self.address,
            database_url=prepared.database_url,
            redis_url=prepared.redis_url,
        )
        login = {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": self.passwords[user],
        }
        return stack_env(own, **(login | extra))


@pytest.fixture(scope="module")
async def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SaslKafka]:
    passwords = {user: secrets.token_hex(12) for user in (*PROCESSES, OUTSIDER)}
    sasl_port = free_port()
    broker = ApacheKafka(
        tmp_path_factory.mktemp("sasl-kafka"),
        free_port(),
        sasl_port=sasl_port,
        scram_users=[ScramUser(user, password) for user, password in passwords.items()],
    )
    try:
        broker.start()  # here, on the main thread: the JVM dies with the thread that started it
    except KafkaUnavailable as exc:
        pytest.skip(f"Apache Kafka cannot run here: {exc}")
    try:
        stack = SaslKafka(broker, f"127.0.0.1:{sasl_port}", passwords)
        await ensure_topics(stack.admin, ALL_TOPICS)
        tools = asyncio.Semaphore(ACL_TOOLS_AT_ONCE)

        async def grant(args: list[str]) -> None:
            async with tools:
                await asyncio.to_thread(
                    broker.run_tool, ACL_TOOL, "--bootstrap-server", broker.bootstrap_servers, *args
                )

        await asyncio.gather(*(grant(args) for args in acl_tool_runs(ACLS)))
        yield stack
    finally:
        broker.stop()


def test_the_readme_lists_exactly_these_acls() -> None:
    granted = set().union(*(acl.atoms() for acl in ACLS))
    documented = readme_acls()
    assert documented == granted, (
        f"only in deploy/README.md: {sorted(documented - granted)}; "
        f"only granted here: {sorted(granted - documented)}"
    )


@dataclass
class Product:
    processes: dict[str, ServiceProcess]
    gateway: Gateway


@pytest.fixture
def product(sasl_kafka: SaslKafka, prepared: Settings) -> Iterator[Product]:
    """The five processes, each logged in as itself, started together."""
    port = free_port()
    argv = {
        name: python_module(f"services.{name}")
        for name in SERVICES  # intent, inference, workflow, campaign
    } | {"gateway": python_module("services.gateway", "serve", "--port", str(port))}
    extra = {"intent": MODEL_ENV, "campaign": MODEL_ENV}
    processes = {
        name: ServiceProcess(
            name, args, sasl_kafka.service_env(prepared, name, **extra.get(name, {}))
        )
        for name, args in argv.items()
    }
    try:
        for process in processes.values():
            process.start()
        for name, process in processes.items():
            ready = "Application startup complete" if name == "gateway" else "started successfully"
            process.wait_for(ready, timeout=60)
        yield Product(processes, Gateway(processes["gateway"], f"http://127.0.0.1:{port}"))
    finally:
        for name in ("gateway", *reversed(SERVICES)):
            processes[name].stop()


async def topic_names(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_the_product_runs_on_scram_logins_and_acls(
    product: Product, sasl_kafka: SaslKafka, make_key: MakeKey
) -> None:
    key = await make_key("admin", "assistant", "workflows", user="sasl")
    async with product.gateway.client(key) as api:
        ready = await api.get("/readyz")
        pings = await asyncio.gather(*(api.get(f"/api/services/{s}/ping") for s in SERVICES))
        intent = await api.post("/api/ai-assistant/intent", json={"message": WORKFLOW_MESSAGE})
        assert intent.status_code == 200, intent.text
        workflow_id = intent.json()["workflow_id"]
        assert workflow_id, intent.text

        async def first_step_done() -> dict[str, Any] | None:
            run = await get_run(api, workflow_id)
            steps = run.get("steps") or [{}]
            return run if steps[0].get("completed_at") else None

        # intent's outbox -> intent.detected -> the engine -> workflow.step.requested.campaign ->
        # the campaign service -> workflow.step.completed -> the engine: every hop a write and a
        # consumer group's read under another principal. (Whether the step succeeds depends on
        # the jobs in the session's database; that it completes is what the ACLs decide.)
        run = await wait_for(first_step_done, timeout=30, what=f"workflow {workflow_id}'s step")

    assert ready.status_code == 200, ready.text
    for service, ping in zip(SERVICES, pings, strict=True):
        assert ping.status_code == 200, f"{service}: {ping.text}"
        assert ping.json()["pong"]["service"] == service
    assert run["run_id"] == workflow_id
    assert run["steps"][0]["action"] == "campaign.extract_candidates"
    # Each process that asks others created its own reply topic (Create on its prefix) ...
    running = await topic_names(sasl_kafka.admin)
    for owner in ("gateway", "intent", "campaign"):
        assert any(name.startswith(f"{owner}.replies.") for name in running), sorted(running)
    # ... and deletes it when it stops (Delete on its prefix).
    for process in product.processes.values():
        process.stop()
    left = {name for name in await topic_names(sasl_kafka.admin) if ".replies." in name}
    assert not left, f"reply topics left behind: {sorted(left)}"
    for name, process in product.processes.items():
        refused = [line for line in process.lines if refused_by_acls(line)]
        assert not refused, f"{name} was refused:\n" + "\n".join(refused)


def refused_by_acls(line: str) -> bool:
    """A log line about something the ACLs refused; FastStream's attempt to create each topic
    a consumer subscribes to (they exist: refused, logged, and harmless) does not count."""
    if "Failed to create topic" in line:
        return False
    return "AuthorizationFailed" in line or "could not delete topic" in line


WRONG_LOGIN = (
    "refused the SASL login: authentication failed for KAFKA_SASL_USERNAME={user} with "
    "KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
)
CHECK_LOGIN = "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"


@pytest.mark.parametrize(
    ("user", "fields", "expected"),
    [
        (
            "gateway",
            {"kafka_sasl_password": "not-the-password"},
            [WRONG_LOGIN.format(user="gateway"), CHECK_LOGIN],
        ),
        ("nobody-known", {}, [WRONG_LOGIN.format(user="nobody-known"), CHECK_LOGIN]),
        (
            "gateway",
            {"kafka_sasl_mechanism": "PLAIN"},
            ["does not accept KAFKA_SASL_MECHANISM=PLAIN; set KAFKA_SASL_MECHANISM"],
        ),
    ],
    ids=["wrong-password", "unknown-user", "mechanism-not-enabled"],
)
async def test_a_refused_login_is_named_at_once(
    sasl_kafka: SaslKafka, user: str, fields: dict[str, Any], expected: list[str]
) -> None:
    settings = sasl_kafka.login(user, **fields)
    started = time.monotonic()
    with pytest.raises(KafkaLoginRefused) as refused:
        await check_kafka(settings)
    assert time.monotonic() - started < 3  # a refusal, not a timeout
    message = str(refused.value)
    assert message.startswith(f"Kafka at KAFKA_BOOTSTRAP_SERVERS={sasl_kafka.address} ")
    for part in expected:
        assert part in message
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() not in message


async def test_a_sasl_login_on_a_plaintext_listener_is_named(sasl_kafka: SaslKafka) -> None:
    settings = sasl_kafka.login(
        "gateway", kafka_bootstrap_servers=sasl_kafka.broker.bootstrap_servers
    )
    with pytest.raises(KafkaLoginRefused, match="does not expect a SASL login"):
        await check_kafka(settings)


def test_a_service_with_a_wrong_password_exits_with_the_reason(
    sasl_kafka: SaslKafka, prepared: Settings
) -> None:
    env = sasl_kafka.service_env(prepared, "inference", KAFKA_SASL_PASSWORD="not-the-password")
    process = ServiceProcess("inference", python_module("services.inference"), env).start()
    assert process.proc is not None
    code = process.proc.wait(timeout=30)
    process.wait_for("error", timeout=5)
    output = process.output()
    assert code == 2, output
    assert "inference: error: Kafka at KAFKA_BOOTSTRAP_SERVERS=" in output
    assert "authentication failed for KAFKA_SASL_USERNAME=inference" in output
    assert "Traceback" not in output
    assert "not-the-password" not in output


def test_a_service_without_its_acls_exits_with_the_reason(
    sasl_kafka: SaslKafka, prepared: Settings
) -> None:
    env = sasl_kafka.service_env(prepared, OUTSIDER)
    process = ServiceProcess("inference", python_module("services.inference"), env).start()
    assert process.proc is not None
    code = process.proc.wait(timeout=60)
    output = process.output()
    assert code == 2, output
    assert f"inference: error: Kafka refused to let KAFKA_SASL_USERNAME={OUTSIDER} " in output
    assert "grant the ACLs deploy/README.md lists for this process" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("user", [OUTSIDER, "inference"])
async def test_a_principal_cannot_write_a_topic_it_has_no_acl_for(
    sasl_kafka: SaslKafka, user: str
) -> None:
    # Without idempotence: an idempotent producer needs Write on some topic to start at all.
    producer = AIOKafkaProducer(
        **client_options(sasl_kafka.login(user)), enable_idempotence=False, request_timeout_ms=5000
    )
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(INTENT_DETECTED.name, b"{}", key=b"k")
    finally:
        await producer.stop()


async def test_a_principal_cannot_create_another_process_reply_topic(
    sasl_kafka: SaslKafka,
) -> None:
    topic = reply_topic(secrets.token_hex(6), "gateway")
    with pytest.raises(KafkaTopicRefused) as refused:
        await ensure_topics(sasl_kafka.login("inference"), [topic])
    assert refused.value.error is TopicAuthorizationFailedError
    assert str(refused.value).startswith(
        f"Kafka refused to create topic {topic.name} for KAFKA_SASL_USERNAME=inference "
        "(TopicAuthorizationFailedError"
    )
    assert str(refused.value).endswith("grant Create on it (deploy/README.md lists the ACLs)")
    assert topic.name not in await topic_names(sasl_kafka.admin)
