"""`make run` end to end: everything comes up, the README's examples work as written against it, a
second `make run` beside it is refused at once, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from deploy.servers import free_port
from deploy.supervisor import pid_alive
from shared.settings import Settings
from tests.support.processes import ServiceProcess, python_module
from tests.support.stack import stack_env

pytestmark = [pytest.mark.e2e, pytest.mark.tansu]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"<!-- example -->\s*```(?:bash|sh|console)\n(.*?)```", re.DOTALL)


def readme_examples() -> list[str]:
    return EXAMPLE.findall((REPO / "README.md").read_text())


def test_readme_has_examples_to_run() -> None:
    assert len(readme_examples()) >= 3


def test_make_run_serves_the_readme_examples_and_stops_cleanly(
    prepared: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = stack_env(prepared)
    del env["KAFKA_BOOTSTRAP_SERVERS"]  # make run starts its own broker
    argv = python_module("deploy.run_local", "--port", str(port), "--state-dir", str(tmp_path))
    run = ServiceProcess("make-run", argv, env).start()
    try:
        run.wait_for("The recruiter assistant is running", timeout=120)
        picked = re.search(r"Kafka +127\.0\.0\.1:\d+, (.+)", run.output())
        assert picked is not None, run.output()
        if "already running" not in picked.group(1):  # else a developer's `make run` has 9092
            broker = "Tansu" if env.get("LOCAL_KAFKA") == "tansu" else "Apache Kafka"
            assert picked.group(1).startswith(f"{broker}, started here"), picked.group(0)
        assert_a_second_run_is_refused(env, port, tmp_path / "second")
        key_file = tmp_path / "dev-api-key"
        assert key_file.read_text().startswith("rk_")

        for example in readme_examples():
            script = example.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
                ".local/dev-api-key", str(key_file)
            )
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
                env=env,  # the same settings `make run` was given
                check=False,
            )
            assert done.returncode == 0, (
                f"README example failed:\n{script}\n{done.stdout}\n{done.stderr}"
            )
    finally:
        assert run.proc is not None
        run.proc.send_signal(signal.SIGINT)
        code = run.proc.wait(60)

    assert code == 0, run.output()
    pids = [int(p) for p in re.findall(r"supervisor: started \w+ \(pid (\d+)\)", run.output())]
    broker = re.search(r"started (?:Apache Kafka \S+|Tansu) \(pid (\d+)\)", run.output())
    assert len(pids) == 5
    if broker is not None:
        pids.append(int(broker.group(1)))
    leftovers = [pid for pid in pids if pid_alive(pid)]
    assert leftovers == [], f"processes left behind: {leftovers}"


def assert_a_second_run_is_refused(env: dict[str, str], port: int, state_dir: Path) -> None:
    """Before it starts anything, naming the process that holds the gateway's port."""
    argv = python_module("deploy.run_local", "--port", str(port), "--state-dir", str(state_dir))
    second = subprocess.run(
        argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"port {port} is in use by pid " in second.stderr
    assert "services.gateway" in second.stderr  # the first run's gateway holds it
    assert "is running" not in second.stdout
    assert not (state_dir / "kafka").exists()  # it started no broker
