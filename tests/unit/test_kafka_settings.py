"""The KAFKA_SECURITY_PROTOCOL settings: what Settings refuses, and how they become the keyword
arguments every aiokafka client (admin, producer, consumer) and FastStream broker gets."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from shared.broker import check_kafka, client_options, producer_options
from shared.errors import DependencyUnavailable
from shared.kafka_security import KafkaLoginRefused, kafka_security
from shared.settings import Settings

SERVERS = "kafka-1.example.com:9096,kafka-2.example.com:9096"
CA_NAME = "Throwaway Test Kafka CA"


def kafka_settings(**fields: Any) -> Settings:
    """Settings with every Kafka security field given (none read from the environment)."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": SERVERS,
        "kafka_security_protocol": "PLAINTEXT",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": None,
        "kafka_sasl_password": None,
        "kafka_ssl_ca_file": None,
    }
    return Settings(**(values | fields))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (its own CA) and its key, made with the
    openssl command (the cryptography package is not a dependency)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a throwaway certificate with")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "ca.pem", folder / "key.pem"
    new_key = ["-newkey", "rsa:2048", "-nodes", "-keyout", str(key)]
    subject = ["-subj", f"/CN={CA_NAME}"]
    extensions = ["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=CA:TRUE"]
    subprocess.run(
        [openssl, "req", "-x509", "-days", "1", *new_key, "-out", str(cert), *subject, *extensions],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize(
    "login", [{}, {"kafka_sasl_username": "svc"}, {"kafka_sasl_password": "secret"}]
)
def test_sasl_without_a_username_and_password_is_refused(
    protocol: str, login: dict[str, str]
) -> None:
    with pytest.raises(ValidationError) as refused:
        kafka_settings(kafka_security_protocol=protocol, **login)
    assert (
        f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        in str(refused.value)
    )


def test_a_missing_ca_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValidationError, match=f"KAFKA_SSL_CA_FILE={missing} is not a readable"):
        kafka_settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=missing)


@pytest.mark.parametrize("value", ["SASL", "sasl_plaintext", "TLS"])
def test_an_unknown_protocol_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        kafka_settings(kafka_security_protocol=value)


def test_plaintext_adds_nothing_but_the_brokers() -> None:
    settings = kafka_settings()
    assert kafka_security(settings) is None
    assert client_options(settings) == {
        "bootstrap_servers": ["kafka-1.example.com:9096", "kafka-2.example.com:9096"]
    }


@pytest.mark.parametrize(
    ("mechanism", "security_class"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_sasl_plaintext_maps_each_mechanism(
    mechanism: str, security_class: type[BaseSecurity]
) -> None:
    settings = kafka_settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="workflow",
        kafka_sasl_password="s3cret",
    )
    assert type(kafka_security(settings)) is security_class
    assert client_options(settings) == {
        "bootstrap_servers": ["kafka-1.example.com:9096", "kafka-2.example.com:9096"],
        "security_protocol": "SASL_PLAINTEXT",
        "ssl_context": None,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "workflow",
        "sasl_plain_password": "s3cret",
    }


def test_sasl_ssl_trusts_the_ca_file(certificate: tuple[Path, Path]) -> None:
    ca_file, _ = certificate
    settings = kafka_settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="campaign",
        kafka_sasl_password="s3cret",
        kafka_ssl_ca_file=ca_file,
    )
    options = client_options(settings)
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": ["kafka-1.example.com:9096", "kafka-2.example.com:9096"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "campaign",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    # Only the CA file's certificates, not the system's as well.
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", CA_NAME),),)]


def test_ssl_without_sasl(certificate: tuple[Path, Path]) -> None:
    ca_file, _ = certificate
    with_ca = client_options(
        kafka_settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=ca_file)
    )
    system = client_options(kafka_settings(kafka_security_protocol="SSL"))
    for options in (with_ca, system):
        assert options["security_protocol"] == "SSL"
        assert isinstance(options["ssl_context"], ssl.SSLContext)
        assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert not any(key.startswith("sasl_") for key in options)
    assert len(with_ca["ssl_context"].get_ca_certs()) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"kafka_security_protocol": "SSL"},
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-256",
            "kafka_sasl_username": "intent",
            "kafka_sasl_password": "s3cret",
        },
        {
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "PLAIN",
            "kafka_sasl_username": "intent",
            "kafka_sasl_password": "s3cret",
        },
    ],
    ids=["plaintext", "ssl", "sasl-ssl-scram", "sasl-plaintext-plain"],
)
async def test_aiokafka_clients_accept_the_options(fields: dict[str, Any]) -> None:
    """aiokafka checks the combination (a protocol without its context, a mechanism without a
    login) when a client is made; nothing connects here."""
    settings = kafka_settings(**fields)
    admin = AIOKafkaAdminClient(**client_options(settings))
    producer = AIOKafkaProducer(**producer_options(settings))
    assert producer_options(settings)["acks"] == "all"
    await admin.close()
    await producer.stop()


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    """A TLS listener on 127.0.0.1 with the throwaway certificate, speaking no Kafka."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"127.0.0.1:{port}"


async def test_a_broker_certificate_the_ca_file_does_not_sign_is_named(tls_server: str) -> None:
    settings = kafka_settings(
        kafka_bootstrap_servers=tls_server,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="gateway",
        kafka_sasl_password="s3cret",
        startup_timeout_seconds=5,
    )  # the system's CAs, which never signed the throwaway certificate
    with pytest.raises(KafkaLoginRefused) as refused:
        await check_kafka(settings)
    message = str(refused.value)
    assert message.startswith(f"Kafka at KAFKA_BOOTSTRAP_SERVERS={tls_server}: TLS certificate")
    assert "set KAFKA_SSL_CA_FILE" in message
    assert "s3cret" not in message


async def test_no_broker_at_all_is_still_cannot_reach() -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
        settings = kafka_settings(
            kafka_bootstrap_servers=address,
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="gateway",
            kafka_sasl_password="s3cret",
            startup_timeout_seconds=2,
        )
        with pytest.raises(DependencyUnavailable) as unreachable:
            await check_kafka(settings)
    assert not isinstance(unreachable.value, KafkaLoginRefused)
    assert str(unreachable.value).startswith(f"cannot reach KAFKA_BOOTSTRAP_SERVERS={address} (")
