"""SASL and TLS for every Kafka client: the KAFKA_SECURITY_PROTOCOL settings as FastStream takes
them, and, when the brokers refuse a login, an error that names the settings to fix."""

from __future__ import annotations

import asyncio
import ssl

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.errors import DependencyUnavailable
from shared.settings import Settings

LOGIN_PROBE_SECONDS = 5.0

# What a broker answers a principal that lacks an ACL; a service meets them while it starts.
AUTHORIZATION_ERRORS: tuple[type[KafkaError], ...] = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)
_REFUSED = {
    TopicAuthorizationFailedError: "read or write a topic",
    GroupAuthorizationFailedError: "join a consumer group",
    # An idempotent producer's InitProducerId: Write on some topic (IdempotentWrite before 3.0).
    ClusterAuthorizationFailedError: "start an idempotent producer (it needs Write on a topic)",
}


def kafka_security(settings: Settings) -> BaseSecurity | None:
    """The connection's security for FastStream, from the KAFKA_SECURITY_PROTOCOL settings."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    use_ssl = protocol in ("SSL", "SASL_SSL")
    context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_file) if use_ssl else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    assert settings.kafka_sasl_username is not None  # Settings refuses SASL_* without them
    assert settings.kafka_sasl_password is not None
    login = (settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value())
    mechanisms: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    return mechanisms[settings.kafka_sasl_mechanism](*login, ssl_context=context, use_ssl=use_ssl)


class KafkaLoginRefused(DependencyUnavailable):
    """The brokers answer but refuse this process's connection: a wrong SASL login or mechanism,
    a protocol that does not match the listener, or a certificate the CA file does not trust.
    The message names the settings to fix rather than saying the brokers cannot be reached."""

    def __init__(self, settings: Settings, message: str) -> None:
        super().__init__("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers, message)
        self.args = (message,)


async def connection_refusal(settings: Settings) -> str | None:
    """Why a broker that answers refuses this connection (SASL or TLS), as a message naming the
    settings; None when none answers within LOGIN_PROBE_SECONDS (that is 'cannot reach')."""
    options = parse_security(kafka_security(settings))
    timeout_ms = int(LOGIN_PROBE_SECONDS * 1000)
    try:
        async with asyncio.timeout(LOGIN_PROBE_SECONDS):  # all servers together
            for host, port, _ in collect_hosts(settings.kafka_servers, randomize=False):
                try:
                    conn = await create_conn(host, port, request_timeout_ms=timeout_ms, **options)
                except (
                    SaslAuthenticationFailed,
                    UnsupportedSaslMechanismError,
                    IllegalSaslStateError,
                    ssl.SSLCertVerificationError,
                ) as exc:
                    return _refusal_message(settings, exc)
                except (KafkaError, OSError, TimeoutError):
                    continue
                conn.close()
    except TimeoutError:
        pass
    return None


def _refusal_message(settings: Settings, exc: Exception) -> str:
    where = f"Kafka at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}"
    protocol = f"KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}"
    mechanism = f"KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism}"
    if isinstance(exc, SaslAuthenticationFailed):
        return (
            f"{where} refused the SASL login: authentication failed for "
            f"KAFKA_SASL_USERNAME={settings.kafka_sasl_username} with {mechanism} ({exc}); "
            "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM (the user "
            "must exist on the brokers for that mechanism)"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (
            f"{where} does not accept {mechanism}; set KAFKA_SASL_MECHANISM to a mechanism the "
            "brokers enable (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
        )
    if isinstance(exc, IllegalSaslStateError):
        return (
            f"{where} does not expect a SASL login ({protocol}); check KAFKA_SECURITY_PROTOCOL "
            "and the port: it may be a PLAINTEXT or SSL listener"
        )
    return (
        f"{where}: TLS certificate verification failed ({exc}); set KAFKA_SSL_CA_FILE to the "
        f"CA certificates that signed the brokers' certificates ({protocol})"
    )


def sasl_user(settings: Settings) -> str | None:
    """'KAFKA_SASL_USERNAME=<user>' where this process logs in with SASL, for error messages."""
    if settings.kafka_security_protocol.startswith("SASL_"):
        return f"KAFKA_SASL_USERNAME={settings.kafka_sasl_username}"
    return None


def authorization_refused(settings: Settings, exc: KafkaError) -> str:
    """One line for a startup that a missing ACL stopped: what was refused, to whom, and where
    the ACLs each process needs are listed."""
    what = _REFUSED.get(type(exc), "make a request")
    who = sasl_user(settings) or "this process"
    return (
        f"Kafka refused to let {who} {what} ({type(exc).__name__}{_detail(exc)}); grant the "
        "ACLs deploy/README.md lists for this process"
    )


def _detail(exc: KafkaError) -> str:
    text = str(exc).removeprefix(f"[Error {getattr(exc, 'errno', '')}] {type(exc).__name__}")
    return f": {text.strip(': ')}" if text.strip(": ") else ""
