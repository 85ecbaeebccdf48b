"""Every setting of shared/settings.py reaches the deploy files, so an SRE can see and set it: the
Compose files (`${NAME:-default}`, or `NAME:` passed through), and the Kubernetes manifests (the
ConfigMap, a commented-out line of it for a setting with no default, or a container's env; secrets
only from a Secret). The defaults written there are the code's. A new setting fails here until it
is added to them, or to `LEFT_AT_CODE_DEFAULT` with the reason."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import SecretStr

from deploy.k8s import render
from shared.settings import Settings

DEPLOY = Path(render.ROOT).parent
COMPOSE_FILES = (DEPLOY / "compose.yaml", DEPLOY / "compose.hostinfra.yaml")
CONFIG_MAP = render.ROOT / "base" / "configmap.yaml"
# The Compose services that run the image (the others are infrastructure with settings of theirs).
APP_SERVICES = ("setup", "gateway", "intent", "inference", "workflow", "campaign")

SETTINGS = {name.upper(): field for name, field in Settings.model_fields.items()}
# Credentials: every SecretStr field, whatever its name says a credential, and the settings whose
# values carry one (a DSN's password).
SECRETS = {
    name
    for name, field in SETTINGS.items()
    if field.annotation in (SecretStr, SecretStr | None)
    or re.search(r"(PASSWORD|SECRET|API_KEY|TOKEN)$", name)
} | {"DATABASE_URL", "REDIS_URL"}

# Settings the deploy files leave out on purpose, so they keep the code's default there; each
# with the reason. None so far: every setting is one a deployment may want to change.
LEFT_AT_CODE_DEFAULT: dict[str, str] = {}

# ConfigMap values that differ from the code's default on purpose.
CONFIG_MAP_OVERRIDES = {
    "ENVIRONMENT": "the base is production; the dev overlay patches it back",
    "GATEWAY_HOST": "a pod listens on its own address, not loopback",
    "WEB_COOKIE_SECURE": "behind TLS; the dev overlay turns it off",
    "HEARTBEAT_FILE": "the services' livenessProbe reads it",
    # Placeholders the overlays replace: production refuses the code's development defaults
    # for the sender and the links, and there is no broker, collector or relay on loopback.
    "KAFKA_BOOTSTRAP_SERVERS": "placeholder",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "placeholder",
    "SMTP_HOST": "placeholder",
    "SMTP_PORT": "submission port of a real relay",
    "SMTP_STARTTLS": "a real relay over the submission port",
    "PUBLIC_BASE_URL": "placeholder",
    "SENDER_EMAIL": "placeholder",
    "SENDER_POSTAL_ADDRESS": "placeholder",
}

# Compose defaults that differ from the code's default on purpose.
COMPOSE_OVERRIDES = {
    # compose.hostinfra.yaml must replace compose.yaml's collector, which does not run there;
    # shared/telemetry.py takes an empty endpoint as unset.
    "OTEL_EXPORTER_OTLP_ENDPOINT": "",
}

Object = dict[str, Any]


class ComposeLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader, plus Compose's `!reset` tag (compose.hostinfra.yaml uses it)."""


ComposeLoader.add_constructor("!reset", lambda loader, node: loader.construct_sequence(node))


def settings_from_env(env: dict[str, str]) -> Settings:
    """The settings a process gets from exactly this environment, no `.env` file."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings(_env_file=None)


def plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def code_default(name: str) -> Any:
    return plain(SETTINGS[name].get_default(call_default_factory=True))


def from_env(name: str, value: str) -> Any:
    return plain(getattr(settings_from_env({name: value}), name.lower()))


def compose_env() -> dict[str, dict[str, Any]]:
    """Each app service's environment, per Compose file, anchors and merge keys resolved."""
    out: dict[str, dict[str, Any]] = {}
    for path in COMPOSE_FILES:
        services = yaml.load(path.read_text(), Loader=ComposeLoader)["services"]  # noqa: S506
        for name in APP_SERVICES:
            env = services.get(name, {}).get("environment", {})
            assert isinstance(env, dict), f"{path.name} {name}: environment as a map, please"
            out.setdefault(name, {}).update(env)
    return out


def config_map() -> dict[str, str]:
    data: dict[str, str] = yaml.safe_load(CONFIG_MAP.read_text())["data"]
    return data


def commented_out() -> dict[str, str]:
    """`# NAME: example` lines of the ConfigMap: settings with no default, shown unset."""
    pattern = re.compile(r"^\s*#\s*([A-Z][A-Z0-9_]*):\s*(.*)$", re.MULTILINE)
    return {m[1]: m[2] for m in pattern.finditer(CONFIG_MAP.read_text()) if m[1] in SETTINGS}


def container_env(objects: list[Object]) -> set[str]:
    names: set[str] = set()
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            spec = o["spec"]["template"]["spec"]
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                names |= {e["name"] for e in c.get("env", [])}
    return names


def test_the_omissions_are_settings_and_really_omitted() -> None:
    assert LEFT_AT_CODE_DEFAULT.keys() <= SETTINGS.keys()
    everywhere = set().union(*compose_env().values()) | config_map().keys()
    assert not LEFT_AT_CODE_DEFAULT.keys() & everywhere, "listed as left out, yet there"
    assert CONFIG_MAP_OVERRIDES.keys() <= config_map().keys()


def test_every_setting_is_in_the_compose_files() -> None:
    present = set().union(*compose_env().values())
    missing = SETTINGS.keys() - present - LEFT_AT_CODE_DEFAULT.keys()
    assert not missing, (
        f"{sorted(missing)}: add them to the services that read them in deploy/compose.yaml "
        "as NAME: ${NAME:-<the code's default>} (NAME: alone when there is no default), "
        "or to LEFT_AT_CODE_DEFAULT with the reason"
    )


@pytest.mark.parametrize("overlay", render.OVERLAYS)
def test_every_setting_is_in_the_kubernetes_manifests(overlay: str) -> None:
    objects = render.render(overlay)
    (data,) = [o["data"] for o in objects if o["kind"] == "ConfigMap"]
    present = data.keys() | commented_out().keys() | container_env(objects)
    missing = SETTINGS.keys() - present - LEFT_AT_CODE_DEFAULT.keys()
    assert not missing, (
        f"{sorted(missing)}: add them to deploy/k8s/base/configmap.yaml with the code's default "
        "(a commented-out example when there is none), secrets to the Deployments that read "
        "them from the Secret, or to LEFT_AT_CODE_DEFAULT with the reason"
    )


def test_compose_defaults_are_the_code_defaults() -> None:
    checked = 0
    for service, env in compose_env().items():
        for name, value in env.items():
            if name not in SETTINGS or value is None:
                continue  # not a setting, or passed through: unset keeps the code's default
            match = re.fullmatch(r"\$\{(\w+):-(.*)\}", str(value))
            if not match:
                continue  # wired to this file's own servers, or a required ${NAME:?...}
            if match[1] == f"{service.upper()}_{name}":
                continue  # one service's own variable: a host port in compose.hostinfra.yaml
            assert match[1] == name, f"{service}: {name} reads ${{{match[1]}}}"
            expected = COMPOSE_OVERRIDES.get(name, code_default(name))
            assert from_env(name, match[2]) == expected, f"{service}: {name}"
            checked += 1
    assert checked > 50  # the check ran on the many settings written as ${NAME:-default}


def test_config_map_values_are_the_code_defaults() -> None:
    for name, value in config_map().items():
        if name in SETTINGS and name not in CONFIG_MAP_OVERRIDES:
            assert from_env(name, value) == code_default(name), name


def test_commented_out_settings_are_those_without_a_default() -> None:
    commented = commented_out()
    assert "IMAP_HOST" in commented  # the pattern finds them
    for name in commented:
        assert code_default(name) is None, f"{name} has a default: write it out, uncommented"
        assert name not in config_map(), f"{name} both set and commented out"


def test_secrets_are_never_in_the_config_map_and_always_in_a_secret() -> None:
    assert {"UNSUBSCRIBE_SECRET", "WEBHOOK_SECRET", "OPENAI_API_KEY", "IMAP_PASSWORD"} <= SECRETS
    assert not SECRETS & (config_map().keys() | commented_out().keys())
    from_secrets: set[str] = set()
    for o in render.render("prod"):
        if o["kind"] in ("Deployment", "Job"):
            spec = o["spec"]["template"]["spec"]
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                from_secrets |= {
                    e["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
                }
    assert from_secrets >= SECRETS - LEFT_AT_CODE_DEFAULT.keys(), SECRETS - from_secrets


def test_compose_never_writes_a_secret_down() -> None:
    for service, env in compose_env().items():
        for name in SECRETS & env.keys():
            value = env[name]
            if value is None or name in ("DATABASE_URL", "REDIS_URL"):
                continue  # passed through; the DSNs of this file's own servers
            match = re.fullmatch(r"\$\{(\w+):([-?])(.*)\}", str(value))
            assert match, f"{service}: {name} written down"
            assert match[1] == name, f"{service}: {name} reads ${{{match[1]}}}"
            if match[2] == "-":
                # The only default allowed is the code's, which production refuses.
                assert match[3] == code_default(name), f"{service}: {name}"


PODMAN_COMPOSE = shutil.which("podman-compose") or shutil.which(
    "podman-compose", path=str(Path(sys.executable).parent)
)


@pytest.mark.skipif(
    PODMAN_COMPOSE is None or shutil.which("podman") is None,
    reason="podman-compose or podman not installed",
)
def test_podman_compose_reads_both_files() -> None:
    assert PODMAN_COMPOSE is not None
    env = {  # the files' own defaults, whatever settings this process has exported
        **{k: v for k, v in os.environ.items() if k not in SETTINGS},
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "DATABASE_URL": "postgresql://app@127.0.0.1:5432/recruiter",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    for files in (COMPOSE_FILES[:1], COMPOSE_FILES):
        args = [a for f in files for a in ("-f", str(f))]
        out = subprocess.run(
            [PODMAN_COMPOSE, *args, "config"], capture_output=True, text=True, env=env, timeout=60
        )
        assert out.returncode == 0, out.stderr
        services = yaml.safe_load(out.stdout)["services"]
        campaign = services["campaign"]["environment"]
        assert campaign["SEND_DAILY_CAP"] == "200"
        assert campaign["IMAP_PASSWORD"] is None  # passed through, never written
        for name in APP_SERVICES:  # what each container gets, every process accepts
            given = services[name]["environment"]
            settings = settings_from_env({k: str(v) for k, v in given.items() if v is not None})
            assert settings.environment == "development", name
