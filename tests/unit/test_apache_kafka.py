"""The local Apache Kafka's preconditions and errors, with stand-in `java` and `mvn` commands."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from deploy import apache_kafka
from deploy.servers import InfraStartError


def command(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("version_line", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "25" 2025-09-16', 25),
        ('java version "1.8.0_402"', 8),
    ],
)
def test_the_java_version_is_read_from_java_version(
    tmp_path: Path, version_line: str, major: int
) -> None:
    command(tmp_path, "java", f"echo '{version_line}' >&2")
    assert apache_kafka.java_major(str(tmp_path / "java")) == major


def test_java_older_than_17_is_refused_with_the_reason(tmp_path: Path) -> None:
    command(tmp_path, "java", """echo 'openjdk version "11.0.2"' >&2""")
    command(tmp_path, "mvn", "exit 0")
    reason = apache_kafka.unavailable_reason({"PATH": str(tmp_path)}, root=tmp_path / "lib")
    assert reason is not None
    assert "Java 11; Apache Kafka 4 needs Java 17+" in reason


def test_java_home_wins_over_path(tmp_path: Path) -> None:
    command(tmp_path / "home" / "bin", "java", "exit 0")
    command(tmp_path / "path", "java", "exit 0")
    env = {"JAVA_HOME": str(tmp_path / "home"), "PATH": str(tmp_path / "path")}
    assert apache_kafka.java_command(env) == str(tmp_path / "home" / "bin" / "java")


def test_a_failed_fetch_from_maven_central_says_what_maven_said(tmp_path: Path) -> None:
    command(
        tmp_path / "bin",
        "mvn",
        "echo '[ERROR] Failed to execute goal: Could not resolve dependencies for project'; exit 1",
    )
    with pytest.raises(InfraStartError) as raised:
        apache_kafka.resolve({"PATH": str(tmp_path / "bin")}, root=tmp_path / "lib")
    message = str(raised.value)
    assert (
        f"could not fetch Apache Kafka {apache_kafka.kafka_version()} from Maven Central" in message
    )
    assert "mvn exited 1" in message
    assert "Could not resolve dependencies" in message
    assert "LOCAL_KAFKA=tansu" in message
    assert not apache_kafka.library_dir(tmp_path / "lib").exists()  # nothing half-fetched kept


def test_fetched_jars_are_not_fetched_again(tmp_path: Path) -> None:
    lib = apache_kafka.library_dir(tmp_path / "lib")
    lib.mkdir(parents=True)
    (lib / ".complete").touch()
    # No mvn on PATH: a second resolve must not need it.
    assert apache_kafka.resolve({"PATH": str(tmp_path / "empty")}, root=tmp_path / "lib") == lib


def test_a_cluster_id_never_looks_like_an_option() -> None:
    ids = [apache_kafka.new_cluster_id() for _ in range(2_000)]  # about 31 started with "-"
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
