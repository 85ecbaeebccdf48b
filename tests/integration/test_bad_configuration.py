"""Bad configuration fails fast, naming the setting to fix, without a stack trace."""

from __future__ import annotations

import pytest

from shared.settings import Settings
from tests.support.processes import ServiceProcess, python_module
from tests.support.stack import stack_env

pytestmark = pytest.mark.integration


def run_to_exit(module: str, env: dict[str, str], *args: str) -> tuple[int | None, str]:
    proc = ServiceProcess(module, python_module(module, *args), env).start()
    assert proc.proc is not None
    code = proc.proc.wait(timeout=60)
    proc.wait_for(r"error", timeout=5)
    return code, proc.output()


@pytest.mark.parametrize("service", ["services.workflow", "services.gateway"])
def test_unreachable_broker(prepared: Settings, service: str) -> None:
    env = stack_env(prepared, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", STARTUP_TIMEOUT_SECONDS="2")
    code, output = run_to_exit(service, env)
    assert code == 2
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("service", ["services.intent", "services.gateway"])
def test_wrong_database_url(prepared: Settings, service: str) -> None:
    env = stack_env(
        prepared, DATABASE_URL="postgresql://postgres@127.0.0.1:5432/no_such_database_x"
    )
    code, output = run_to_exit(service, env)
    assert code == 2
    assert "DATABASE_URL" in output
    assert "no_such_database_x" in output
    assert "Traceback" not in output


def test_malformed_setting(prepared: Settings) -> None:
    env = stack_env(prepared, DATABASE_URL="mysql://localhost/db")
    code, output = run_to_exit("services.campaign", env)
    assert code == 2
    assert "DATABASE_URL must start with postgresql://" in output
    assert "Traceback" not in output
