"""The Helm chart lints, renders and passes kubeconform offline, and what it renders keeps our policies.

deploy/helm/validate.sh does the linting and schema validation (and installs helm and kubeconform into
~/.cache/careloop/tools on first use: minutes cold, seconds after); these tests then read the manifests
it rendered for the default, production and minimal values files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HELM = ROOT / "deploy" / "helm"
# Another chart can be checked the same way with CARELOOP_HELM_CHART=/path/to/chart.
CHART = Path(os.environ.get("CARELOOP_HELM_CHART", HELM / "careloop"))
VALUES_FILES = ("values.yaml", "values-production.yaml", "values-minimal.yaml")
SERVICES = ("intake", "careplan", "referral", "followup", "record", "workspace")
# Paths the three values files leave off, rendered and held to the same policies: KEDA on consumer lag,
# mutual TLS to Strimzi, backups in the Cluster; and an existing Kafka cluster instead of Strimzi.
OPTIONAL_VALUES: dict[str, dict[str, Any]] = {
    "values-test-keda-mtls.yaml": {
        "services": {s: {"autoscaling": {"keda": {"enabled": True}}} for s in SERVICES if s != "workspace"},
        "kafka": {"strimzi": {"authentication": "tls"}},
        "postgresql": {
            "backup": {
                "method": "barmanObjectStore",
                "barmanObjectStore": {
                    "destinationPath": "s3://careloop-backups",
                    "s3Credentials": {
                        "accessKeyId": {"name": "backup-s3", "key": "ACCESS_KEY_ID"},
                        "secretAccessKey": {"name": "backup-s3", "key": "SECRET_ACCESS_KEY"},
                    },
                },
                "scheduled": {"enabled": True},
            }
        },
        "observability": {"serviceMonitor": {"enabled": True}, "otlp": {"endpoint": "http://otel:4318"}},
    },
    "values-test-external-kafka.yaml": {
        "kafka": {
            "strimzi": {"enabled": False},
            "external": {
                "bootstrap": "kafka-0.example.org:9093,kafka-1.example.org:9093",
                "createTopics": False,
                "caSecret": {"name": "kafka-ca", "key": "ca.crt"},
                "egress": {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 9093}]},
            },
        },
    },
}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
# A rendered Secret may carry values only when generated for development and labelled so (never in
# production); every real secret is an existing Secret the chart names.
DEVELOPMENT_LABEL = "careloop.io/development-only"
SECRET_ENV = re.compile(r"(PASSWORD|SECRET|PRIVATE_KEY|_DATABASE_URL|_PG_URL)$")
SECRET_VALUE_KEY = re.compile(r"(password|passwd|secret|token|apikey|api_key|privatekey|private_key)$", re.I)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
SUMMARY = re.compile(
    r"Summary: (\d+) resources? found in \d+ files? - "
    r"Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)"
)

pytestmark = pytest.mark.timeout(1800)  # the first run builds helm from source


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if not (CHART / "Chart.yaml").is_file():
        pytest.skip(f"the chart is not there yet: no {CHART}/Chart.yaml")
    tools = subprocess.run([HELM / "tools.sh", "install"], capture_output=True, text=True)
    if tools.returncode != 0:
        pytest.fail(f"helm and kubeconform could not be installed (make helm-tools):\n{tools.stderr}")
    out = tmp_path_factory.mktemp("helm")
    optional = []
    for values_file, values in OPTIONAL_VALUES.items():
        (out / values_file).write_text(yaml.safe_dump(values))
        optional.append(out / values_file)
    result = subprocess.run(
        [HELM / "validate.sh", "--chart", CHART, "--out", out / "rendered", *VALUES_FILES, *optional],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"deploy/helm/validate.sh failed:\n{output}"
    return out, output


def test_every_values_file_lints_renders_and_passes_kubeconform_strict_offline(validation):
    _, output = validation
    summaries = [tuple(map(int, s)) for s in SUMMARY.findall(output)]
    assert len(summaries) == len(VALUES_FILES) + len(OPTIONAL_VALUES), output
    for found, valid, invalid, errors, skipped in summaries:
        assert found > 0 and valid == found and (invalid, errors, skipped) == (0, 0, 0), output


class Manifests(list[dict[str, Any]]):
    """The documents helm rendered for one values file."""

    def __init__(self, out: Path, values_file: str) -> None:
        docs = yaml.safe_load_all((out / "rendered" / values_file).read_text())
        super().__init__(d for d in docs if isinstance(d, dict) and d.get("kind"))
        self.values_file = values_file


@pytest.fixture(scope="module", params=[*VALUES_FILES, *OPTIONAL_VALUES])
def rendered(request: pytest.FixtureRequest, validation) -> Manifests:
    return Manifests(validation[0], request.param)


@pytest.fixture(scope="module")
def production(validation) -> Manifests:
    return Manifests(validation[0], "values-production.yaml")


def name(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def containers(
    workload: dict[str, Any], init: bool = True
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, container, pod spec) for every container (and init container) of a workload."""
    pod = pod_template(workload)["spec"]
    for container in (pod.get("initContainers", []) if init else []) + pod["containers"]:
        yield f"{name(workload)} container {container['name']}", container, pod


def service_of(container: dict[str, Any]) -> str | None:
    """The contract: one image for all, a pod picks its service with args: ["<service>"]."""
    args = container.get("args") or []
    return args[0] if args and args[0] in SERVICES else None


def service_deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for workload in of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet"):
        for _, container, _ in containers(workload, init=False):
            if service := service_of(container):
                assert service not in found, f"{service} runs in two workloads"
                found[service] = workload
    assert found, "no service Deployment rendered"
    return found


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def test_every_container_runs_non_root_read_only_unprivileged_and_confined(rendered):
    broken = []
    for workload in [d for d in rendered if d["kind"] in WORKLOADS]:
        for where, container, pod in containers(workload):
            own, shared = container.get("securityContext") or {}, pod.get("securityContext") or {}

            def effective(key: str, own=own, shared=shared) -> Any:
                return own[key] if key in own else shared.get(key)

            checks = {
                "runAsNonRoot: true": effective("runAsNonRoot") is True,
                "runAsUser set and not 0": effective("runAsUser") not in (None, 0),
                "readOnlyRootFilesystem: true": own.get("readOnlyRootFilesystem") is True,
                "allowPrivilegeEscalation: false": own.get("allowPrivilegeEscalation") is False,
                "capabilities drop ALL": "ALL" in ((own.get("capabilities") or {}).get("drop") or []),
                "seccompProfile RuntimeDefault": (effective("seccompProfile") or {}).get("type")
                == "RuntimeDefault",
                "not privileged": not own.get("privileged"),
                "no host namespaces": not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")),
            }
            broken += [f"{where}: {rule}" for rule, ok in checks.items() if not ok]
    assert not broken, "\n".join(broken)


def test_every_container_requests_cpu_and_memory_and_has_a_memory_limit(rendered):
    # A CPU limit is allowed, not required: it throttles a consumer that could otherwise catch up.
    broken = []
    for workload in [d for d in rendered if d["kind"] in WORKLOADS]:
        for where, container, _ in containers(workload):
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            if not {"cpu", "memory"} <= requests.keys() or "memory" not in limits:
                broken.append(f"{where}: resources {resources}")
    assert not broken, "\n".join(broken)


def test_every_service_container_is_live_on_healthz_and_ready_on_readyz(rendered):
    broken = []
    for workload in service_deployments(rendered).values():
        for where, container, _ in containers(workload, init=False):
            if not service_of(container):
                continue
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                if ((container.get(probe) or {}).get("httpGet") or {}).get("path") != path:
                    broken.append(f"{where}: {probe} is not an HTTP GET of {path}")
    assert not broken, "\n".join(broken)


def test_every_service_has_its_own_service_account_disruption_budget_and_network_policy(rendered):
    accounts = {d["metadata"]["name"] for d in of_kind(rendered, "ServiceAccount")}
    broken, used = [], {}
    for service, workload in service_deployments(rendered).items():
        template = pod_template(workload)
        labels, account = template["metadata"].get("labels") or {}, template["spec"].get("serviceAccountName")
        if account in (None, "default") or account not in accounts:
            broken.append(f"{service}: serviceAccountName {account!r} is not a ServiceAccount of the chart")
        elif account in used:
            broken.append(f"{service} shares ServiceAccount {account} with {used[account]}")
        used.setdefault(account, service)
        budgets = of_kind(rendered, "PodDisruptionBudget")
        if not any(selects(p["spec"].get("selector"), labels) for p in budgets):
            broken.append(f"{service}: no PodDisruptionBudget selects its pods")
        policies = [
            p
            for p in of_kind(rendered, "NetworkPolicy")
            if p["spec"].get("podSelector") and selects(p["spec"]["podSelector"], labels)
        ]
        types = {t for p in policies for t in p["spec"].get("policyTypes") or []}
        if not {"Ingress", "Egress"} <= types:
            broken.append(f"{service}: no NetworkPolicy of its own limits both its ingress and egress")
    assert not broken, "\n".join(broken)


def test_no_secret_value_is_rendered_or_passed_in_plain_environment(rendered):
    broken = []
    production = rendered.values_file == "values-production.yaml"
    for secret in of_kind(rendered, "Secret"):
        development = (secret["metadata"].get("labels") or {}).get(DEVELOPMENT_LABEL) == "true"
        if (secret.get("data") or secret.get("stringData")) and (production or not development):
            broken.append(f"{name(secret)} carries values")
    for workload in [d for d in rendered if d["kind"] in WORKLOADS]:
        for where, container, _ in containers(workload):
            for env in container.get("env") or []:
                value = str(env.get("value", ""))
                if SECRET_ENV.search(env["name"]) and "secretKeyRef" not in (env.get("valueFrom") or {}):
                    broken.append(f"{where}: {env['name']} is not from a secretKeyRef")
                if CREDENTIALS_IN_URL.search(value):
                    broken.append(f"{where}: {env['name']} has credentials in a URL")
    assert not broken, "\n".join(broken)


def secret_looking_values(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            secretish = SECRET_VALUE_KEY.search(str(key)) and not str(key).lower().startswith("existing")
            if secretish and isinstance(value, str | int) and str(value).strip():
                yield here
            yield from secret_looking_values(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from secret_looking_values(value, f"{path}[{i}]")


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_no_values_file_holds_a_secret_value(values_file):
    if not (CHART / values_file).is_file():
        pytest.skip(f"the chart is not there yet: no {CHART}/{values_file}")
    found = list(secret_looking_values(yaml.safe_load((CHART / values_file).read_text())))
    assert not found, f"{values_file}: secret-looking values (name an existing Secret instead): {found}"


def test_production_topics_cover_every_event_with_three_replicas_and_two_in_sync(production):
    topics = of_kind(production, "KafkaTopic")
    assert topics, "production renders no KafkaTopic"
    broken = []
    for topic in topics:
        replicas, config = topic["spec"].get("replicas"), topic["spec"].get("config") or {}
        in_sync = config.get("min.insync.replicas")
        if replicas != 3 or str(in_sync) != "2":
            broken.append(f"{name(topic)}: replicas {replicas}, min.insync.replicas {in_sync}")
    assert not broken, "\n".join(broken)
    table = json.loads((CHART / "files" / "topics.json").read_text())
    expected = [t["name"] for t in table["topics"] + table["dead_letter_topics"]]
    names = [t["spec"].get("topicName") or t["metadata"]["name"] for t in topics]
    missing = [e for e in expected if not any(n.endswith(e) for n in names)]
    assert not missing, f"no KafkaTopic for {missing}"


def test_every_database_cluster_gets_statistics_soon_after_its_tables_fill(rendered):
    """A new cluster's planner has no statistics until autovacuum first visits each database; the chart
    makes that seconds, not minutes (values: common.database.parameters)."""
    clusters = [c for c in of_kind(rendered, "Cluster") if c["apiVersion"].startswith("postgresql.cnpg.io")]
    assert clusters, "no database Cluster rendered"
    for cluster in clusters:
        assert cluster["spec"]["postgresql"]["parameters"]["autovacuum_naptime"] == "10s", name(cluster)


def test_production_runs_three_brokers(production):
    brokers = [p for p in of_kind(production, "KafkaNodePool") if "broker" in p["spec"].get("roles", [])]
    assert sum(p["spec"]["replicas"] for p in brokers) >= 3


def test_every_kafka_user_is_authenticated_and_limited_by_acls(rendered):
    broken = []
    for user in of_kind(rendered, "KafkaUser"):
        spec = user["spec"]
        authorization = spec.get("authorization") or {}
        if (spec.get("authentication") or {}).get("type") not in ("scram-sha-512", "tls"):
            broken.append(f"{name(user)}: authentication {spec.get('authentication')}")
        if authorization.get("type") != "simple" or not authorization.get("acls"):
            broken.append(f"{name(user)}: no ACLs")
    assert not broken, "\n".join(broken)


def test_production_has_a_kafka_user_per_event_service(production):
    table = json.loads((CHART / "files" / "topics.json").read_text())
    assert len(of_kind(production, "KafkaUser")) >= len(table["services"])


def test_every_consumer_keeps_its_group_member_id_in_its_pods_empty_dir(rendered):
    """The services are dynamic members of their groups (no instance id); each keeps its member id on a
    volume that outlives a container killed outright, so the container after it makes the killed member
    leave at once (careloop_shared.kafka.evict_predecessor)."""
    for service, workload in service_deployments(rendered).items():
        if service == "workspace":
            continue
        pod = pod_template(workload)["spec"]
        [(_, container, _)] = list(containers(workload, init=False))
        env = {e["name"]: e.get("value") for e in container.get("env") or []}
        assert f"{service.upper()}_GROUP_INSTANCE_ID" not in env, service
        kept = Path(env[f"{service.upper()}_GROUP_MEMBER_FILE"])
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
        volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(kept.parent)])
        assert "emptyDir" in volume, (service, volume)


KEY_CLIENTS = ("careplan", "referral", "followup")  # as intake/rules/key-release.v1.json names them


def test_key_clients_reach_intake_and_nothing_else_is_let_into_intake_but_the_workspace(production):
    """careplan, referral and followup ask intake for patients' data keys: each is told where intake
    listens, its egress allows intake's pods, and intake's ingress allows them; record does not get in."""
    deployments = service_deployments(production)
    labels = {s: pod_template(w)["metadata"]["labels"] for s, w in deployments.items()}
    intake_service = next(
        s for s in of_kind(production, "Service") if selects(s["spec"].get("selector"), labels["intake"])
    )
    policy = {
        s: next(
            p for p in of_kind(production, "NetworkPolicy") if selects(p["spec"]["podSelector"], labels[s])
        )
        for s in deployments
    }

    def peers(rules: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        return [peer for rule in rules for peer in rule.get(key) or [] if "podSelector" in peer]

    let_in = peers(policy["intake"]["spec"]["ingress"], "from")
    for service, workload in deployments.items():
        env = {
            e["name"]: e.get("value")
            for _, c, _ in containers(workload, init=False)
            for e in c.get("env") or []
        }
        may_reach = any(
            selects(p["podSelector"], labels["intake"])
            for p in peers(policy[service]["spec"]["egress"], "to")
        )
        let_into_intake = any(selects(p["podSelector"], labels[service]) for p in let_in)
        if service in KEY_CLIENTS:
            port = intake_service["spec"]["ports"][0]["port"]
            assert env.get("CARELOOP_INTAKE_URL") == f"http://{intake_service['metadata']['name']}:{port}"
            assert may_reach and let_into_intake, service
        elif service == "record":
            assert "CARELOOP_INTAKE_URL" not in env and not may_reach and not let_into_intake
