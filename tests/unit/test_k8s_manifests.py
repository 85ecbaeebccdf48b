"""The Kubernetes manifests (deploy/k8s): both overlays render, every object is valid for the
Kubernetes API, and the rules an operator relies on hold: probes, resources and a non-root,
read-only security context on every pod, secrets only by reference, consumers never scaled past
their topics' partitions, the one-shot Jobs, default-deny NetworkPolicies. No cluster is needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import SecretStr

from deploy.k8s import render
from deploy.k8s.topics import missing_topics
from shared.settings import Settings
from shared.topics import ALL_TOPICS

KUBERNETES_VERSION = "1.30.0"
OVERLAYS = render.OVERLAYS
SERVICES = ("gateway", "intent", "inference", "workflow", "campaign")
CONSUMERS = SERVICES[1:]
IMAGE = "recruiter-assistant"
# Settings that hold credentials: every SecretStr field, and those whose values carry them.
SECRET_SETTINGS = {
    name.upper()
    for name, field in Settings.model_fields.items()
    if field.annotation in (SecretStr, SecretStr | None)
} | {"DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY"}
# Not settings of the product, but environment the image's Python needs in a read-only container.
PROCESS_ENV = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "HOME"}

Object = dict[str, Any]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Object]]:
    return {name: render.render(name) for name in OVERLAYS}


@pytest.fixture(scope="module")
def objects(rendered: dict[str, list[Object]], overlay: str) -> list[Object]:
    return rendered[overlay]


def of_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_specs(objects: list[Object]) -> list[tuple[str, Object]]:
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    ]


def containers(spec: Object) -> list[Object]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def config(objects: list[Object]) -> dict[str, str]:
    data: dict[str, str] = of_kind(objects, "ConfigMap")["recruiter-assistant-config"]["data"]
    return data


def test_the_command_line_prints_every_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert render.main(["prod"]) == 0
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    assert printed == render.render("prod")


def test_every_object_is_named_once_in_the_namespace(objects: list[Object]) -> None:
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys))
    for o in objects:
        expected = None if o["kind"] == "Namespace" else "recruiter-assistant"
        assert o["metadata"].get("namespace") == expected, o["metadata"]["name"]
    assert of_kind(objects, "Namespace").keys() == {"recruiter-assistant"}


def test_every_object_validates_against_the_kubernetes_schemas(objects: list[Object]) -> None:
    for o in objects:
        if o["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD, not in the Kubernetes schemas: checked by the next test
        kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)


# The part of KEDA's ScaledObject (keda.sh/v1alpha1) these manifests use, with its types.
SCALED_OBJECT_SCHEMA: Object = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "minReplicaCount", "maxReplicaCount", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "apiVersion": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "kafka"},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}},
                            },
                            "metadata": {
                                "type": "object",
                                "required": ["bootstrapServers", "consumerGroup", "lagThreshold"],
                                # KEDA reads trigger metadata as strings only.
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_scaled_objects_follow_the_partition_count(objects: list[Object]) -> None:
    partitions = int(config(objects)["KAFKA_TOPIC_PARTITIONS"])
    scaled = of_kind(objects, "ScaledObject")
    assert scaled.keys() == set(CONSUMERS)
    deployments = of_kind(objects, "Deployment")
    for name, o in scaled.items():
        jsonschema.validate(o, SCALED_OBJECT_SCHEMA)
        spec = o["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert name in deployments
        assert spec["maxReplicaCount"] == partitions, name
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name
        groups = {t["metadata"]["consumerGroup"] for t in spec["triggers"]}
        assert name in groups, f"{name}: no trigger on its command consumer group"
        for trigger in spec["triggers"]:
            topics = set(trigger["metadata"]["topic"].split(","))
            assert topics <= {t.name for t in ALL_TOPICS}, topics
            servers = trigger["metadata"]["bootstrapServers"]
            assert servers == config(objects)["KAFKA_BOOTSTRAP_SERVERS"], name
    assert "gateway" not in scaled  # CPU-scaled instead, below


def test_the_gateway_scales_on_cpu_behind_a_service(objects: list[Object]) -> None:
    hpa = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa.keys() == {"gateway"}
    spec = hpa["gateway"]["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]
    assert 1 <= spec["minReplicas"] < spec["maxReplicas"]
    service = of_kind(objects, "Service")["gateway"]["spec"]
    gateway = of_kind(objects, "Deployment")["gateway"]
    assert service["selector"].items() <= gateway["spec"]["template"]["metadata"]["labels"].items()
    assert service["ports"][0]["targetPort"] == "http"


def test_a_deployment_per_service_runs_the_image_with_its_command(objects: list[Object]) -> None:
    deployments = of_kind(objects, "Deployment")
    assert deployments.keys() == set(SERVICES)
    for name, d in deployments.items():
        assert "replicas" not in d["spec"], f"{name}: the autoscaler owns the replica count"
        (container,) = d["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith(f"{IMAGE}:"), container["image"]
        assert container["command"][:3] == ["python", "-m", f"services.{name}"]
        assert d["spec"]["selector"]["matchLabels"].items() <= (
            d["spec"]["template"]["metadata"]["labels"].items()
        )


def test_every_deployment_has_readiness_and_liveness_probes(objects: list[Object]) -> None:
    for name, d in of_kind(objects, "Deployment").items():
        for container in d["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in container, f"{name}: no {probe}"
                action = container[probe]
                assert "httpGet" in action or "exec" in action, f"{name}: {probe}"
    gateway = of_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_exec_probes_are_python_that_compiles(objects: list[Object]) -> None:
    for name, d in of_kind(objects, "Deployment").items():
        for container in d["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                command = container[probe].get("exec", {}).get("command")
                if command:
                    assert command[:3] == ["python", "-S", "-c"], name
                    compile(command[3], f"{name} {probe}", "exec")


def test_every_pod_has_resources_and_a_non_root_read_only_security_context(
    objects: list[Object],
) -> None:
    for where, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in containers(spec):
            who = f"{where} {c['name']}"
            for kind in ("requests", "limits"):
                assert set(c["resources"][kind]) == {"cpu", "memory"}, who
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, who
            assert sc["readOnlyRootFilesystem"] is True, who
            assert sc["allowPrivilegeEscalation"] is False, who
            assert sc["capabilities"] == {"drop": ["ALL"]}, who
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, who
            (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]  # noqa: S108
            assert "emptyDir" in volumes[tmp["name"]], who


def test_secrets_are_referenced_never_written_down(objects: list[Object]) -> None:
    assert {"UNSUBSCRIBE_SECRET", "WEBHOOK_SECRET", "KAFKA_SASL_PASSWORD"} <= SECRET_SETTINGS
    assert not of_kind(objects, "Secret"), "Secrets are made outside the repository"
    assert not SECRET_SETTINGS & config(objects).keys()
    for where, spec in pod_specs(objects):
        for c in containers(spec):
            who = f"{where} {c['name']}"
            env = {e["name"]: e for e in c["env"]}
            # Every process validates these at start (production refuses the defaults).
            needed = {"DATABASE_URL", "UNSUBSCRIBE_SECRET", "WEBHOOK_SECRET", "KAFKA_SASL_PASSWORD"}
            if c["name"] in ("gateway", "inference", "campaign"):
                needed.add("REDIS_URL")  # the three that connect to Redis
            if c["name"] == "campaign":
                needed |= {"SMTP_PASSWORD", "IMAP_PASSWORD"}  # the only one that reads mail
            assert needed <= env.keys(), f"{who}: no {needed - env.keys()}"
            for name in SECRET_SETTINGS & env.keys():
                assert "value" not in env[name], f"{who}: {name} written down"
                assert env[name]["valueFrom"]["secretKeyRef"]["name"].startswith(IMAGE)
            # The settings; the campaign service also takes its sender identities' SMTP
            # passwords (the variables SENDER_IDENTITIES_FILE names) from a Secret of their own.
            sources = [f.get("configMapRef", f.get("secretRef"))["name"] for f in c["envFrom"]]
            extra = ["recruiter-assistant-sender-passwords"] if c["name"] == "campaign" else []
            assert sources == ["recruiter-assistant-config", *extra], who


def test_the_config_map_holds_known_settings_that_production_accepts(
    objects: list[Object], overlay: str
) -> None:
    data = config(objects)
    known = {name.upper() for name in Settings.model_fields}
    assert data.keys() - PROCESS_ENV <= known, data.keys() - PROCESS_ENV - known
    secrets = {  # what the Secrets hold, made up
        "unsubscribe_secret": "x" * 40,
        "webhook_secret": "y" * 40,
        "database_url": "postgresql://app@db:5432/recruiter",
    }
    env = {k: v for k, v in data.items() if k not in PROCESS_ENV}
    env |= {k.upper(): v for k, v in secrets.items()}
    with mock.patch.dict(os.environ, env, clear=True):  # as a pod's environment, exactly
        settings = Settings(_env_file=None)
    expected = "development" if overlay == "dev" else "production"
    assert settings.environment == expected


def test_the_jobs_create_the_topics_and_migrate_every_service(objects: list[Object]) -> None:
    jobs = of_kind(objects, "Job")
    assert jobs.keys() == {"create-topics", "migrate"}
    (topics,) = jobs["create-topics"]["spec"]["template"]["spec"]["containers"]
    assert topics["command"][:3] == ["python", "-m", "deploy.k8s.topics"]
    migrate = containers(jobs["migrate"]["spec"]["template"]["spec"])
    assert [c["command"] for c in migrate] == [
        ["python", "-m", f"services.{name}", "migrate"] for name in SERVICES
    ]
    for job in jobs.values():
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert job["spec"]["backoffLimit"] >= 1


def test_disruption_budgets(objects: list[Object], overlay: str) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    assert budgets.keys() == set(SERVICES)
    for name, budget in budgets.items():
        if overlay == "prod":
            assert budget["spec"] == {**budget["spec"], "minAvailable": 1}
            assert "maxUnavailable" not in budget["spec"]
            # Two instances at least, or the budget would block every node drain.
            autoscaler = of_kind(objects, "ScaledObject").get(name)
            minimum = (
                autoscaler["spec"]["minReplicaCount"]
                if autoscaler
                else of_kind(objects, "HorizontalPodAutoscaler")[name]["spec"]["minReplicas"]
            )
            assert minimum >= 2, name
        else:
            assert budget["spec"]["maxUnavailable"] == 1


def test_network_policies_deny_by_default(objects: list[Object]) -> None:
    policies = of_kind(objects, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            assert rule.get("ports"), f"{name}: a rule open on every port"
    dns = {p["port"] for p in policies["allow-dns"]["spec"]["egress"][0]["ports"]}
    assert dns == {53}
    backends = {p["port"] for p in policies["allow-backends"]["spec"]["egress"][0]["ports"]}
    assert {9092, 5432, 6379, 4318} <= backends
    (ingress,) = policies["gateway-ingress"]["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8000}]
    # Only the gateway takes connections.
    takes = {n for n, p in policies.items() if "Ingress" in p["spec"]["policyTypes"]}
    assert takes == {"default-deny", "gateway-ingress"}


def test_the_overlays_differ_as_documented(rendered: dict[str, list[Object]]) -> None:
    def memory(objects: list[Object], name: str) -> str:
        d = of_kind(objects, "Deployment")[name]
        limit: str = d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
        return limit

    dev, prod = rendered["dev"], rendered["prod"]
    assert config(dev)["ENVIRONMENT"] == "development"
    assert config(prod)["ENVIRONMENT"] == "production"
    for name in SERVICES:
        assert memory(dev, name) == "512Mi"
        assert memory(prod, name) == "1Gi"
    for name in CONSUMERS:
        assert of_kind(dev, "ScaledObject")[name]["spec"]["minReplicaCount"] == 1
    assert of_kind(dev, "HorizontalPodAutoscaler")["gateway"]["spec"]["minReplicas"] == 1
    tags = {
        overlay: of_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        for overlay, objects in rendered.items()
    }
    assert tags == {"dev": f"{IMAGE}:dev", "prod": f"{IMAGE}:0.1.0"}


def test_the_topics_job_creates_the_missing_topics_with_their_partitions() -> None:
    settings = Settings.model_validate({"kafka_topic_partitions": 6})
    topics = missing_topics(settings, {"intent.commands"}, replication=3)
    by_name = {t.name: t for t in topics}
    assert by_name.keys() == {t.name for t in ALL_TOPICS} - {"intent.commands"}
    assert by_name["events.deadletter"].num_partitions == 1
    assert by_name["workflow.commands"].num_partitions == 6
    assert {t.replication_factor for t in topics} == {3}


def test_the_renderer_refuses_what_it_does_not_understand(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(render.RenderError, match="namePrefix"):
        render.build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: []\npatches:\n- path: p.yaml\n")
    (tmp_path / "p.yaml").write_text("kind: Deployment\nmetadata:\n  name: nobody\n")
    with pytest.raises(render.RenderError, match="matches no object"):
        render.build(tmp_path)


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed"
)
def test_kubectl_kustomize_renders_the_same_objects(objects: list[Object], overlay: str) -> None:
    folder = Path(render.ROOT, "overlays", overlay)
    out = subprocess.run(
        ["kubectl", "kustomize", str(folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out)}
    ours = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert ours == theirs
