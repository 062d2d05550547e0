"""Regenerates the JSON schemas that deploy/helm/validate.sh hands to kubeconform (see SOURCES.md).

Needs the network once (PyPI, the Go module proxy, Maven Central), Go, Maven and a JDK 21 or newer;
validation afterwards is offline. Run from the repository root:

    uv run --no-project --with pyyaml --with kubernetes-validate==1.37.0 \\
        python deploy/helm/schemas/refresh.py

Output (replaced whole): kubernetes/v<version>-strict/<kind>-<group>-<version>.json plus a pruned
_definitions.json, and crds/<group>/<kind>_<version>.json, the two layouts validate.sh's
-schema-location templates name. Descriptions are dropped to keep the files small.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
KUBERNETES_VERSION = "1.34.0"

# Only the kinds a chart like ours renders, plus a few cheap neighbours.
KUBERNETES_KINDS = [
    "configmap-v1",
    "secret-v1",
    "service-v1",
    "serviceaccount-v1",
    "pod-v1",
    "persistentvolumeclaim-v1",
    "namespace-v1",
    "limitrange-v1",
    "resourcequota-v1",
    "deployment-apps-v1",
    "statefulset-apps-v1",
    "daemonset-apps-v1",
    "job-batch-v1",
    "cronjob-batch-v1",
    "horizontalpodautoscaler-autoscaling-v2",
    "poddisruptionbudget-policy-v1",
    "networkpolicy-networking-v1",
    "ingress-networking-v1",
    "role-rbac-v1",
    "rolebinding-rbac-v1",
    "clusterrole-rbac-v1",
    "clusterrolebinding-rbac-v1",
    "priorityclass-scheduling-v1",
]

# Go module -> CRD files inside its module zip.
GO_MODULE_CRDS = {
    "github.com/cloudnative-pg/cloudnative-pg@v1.28.0": [
        f"config/crd/bases/postgresql.cnpg.io_{name}.yaml"
        for name in ("clusters", "scheduledbackups", "backups", "databases", "poolers")
    ],
    "github.com/cloudnative-pg/plugin-barman-cloud@v0.15.0": [
        "config/crd/bases/barmancloud.cnpg.io_objectstores.yaml"
    ],
    "github.com/kedacore/keda/v2@v2.21.0": [
        "config/crd/bases/keda.sh_scaledobjects.yaml",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
    ],
    "github.com/prometheus-operator/prometheus-operator@v0.85.0": [
        f"example/prometheus-operator-crd/monitoring.coreos.com_{name}.yaml"
        for name in ("servicemonitors", "podmonitors", "prometheusrules")
    ],
}

STRIMZI_VERSION = "1.2.0"
STRIMZI_CLASSES = {
    "kafka": "io.strimzi.api.kafka.model.kafka.Kafka",
    "kafkanodepool": "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
    "kafkatopic": "io.strimzi.api.kafka.model.topic.KafkaTopic",
    "kafkauser": "io.strimzi.api.kafka.model.user.KafkaUser",
}
STRIMZI_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.careloop</groupId><artifactId>strimzi-crds</artifactId><version>0</version>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>{v}</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>{v}</version></dependency>
  </dependencies>
</project>
"""

MAP_KEYWORDS = ("properties", "patternProperties", "$defs", "definitions")
SCHEMA_KEYWORDS = ("items", "additionalProperties", "not")
LIST_KEYWORDS = ("allOf", "anyOf", "oneOf", "prefixItems")


def walk(schema: Any, visit: Any) -> Any:
    """Applies visit(node) to every subschema, bottom-up, keeping property names apart from keywords."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in MAP_KEYWORDS:
        if isinstance(out.get(key), dict):
            out[key] = {name: walk(sub, visit) for name, sub in out[key].items()}
    for key in SCHEMA_KEYWORDS:
        if isinstance(out.get(key), dict):
            out[key] = walk(out[key], visit)
    for key in LIST_KEYWORDS:
        if isinstance(out.get(key), list):
            out[key] = [walk(sub, visit) for sub in out[key]]
    return visit(out)


def drop_description(node: dict[str, Any]) -> dict[str, Any]:
    node.pop("description", None)
    return node


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


# --- Kubernetes -------------------------------------------------------------------------------------


def kubernetes_source(version: str) -> Path:
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    return Path(str(root / f"v{version}-local-strict"))


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def local_refs(node: Any) -> Any:
    """kubeconform loads files, not kubernetes.io URLs: point each $ref at the sibling file."""
    text = json.dumps(node).replace('"/api/_definitions.json#', '"_definitions.json#')
    return json.loads(text)


def write_kubernetes(version: str, dest: Path) -> list[str]:
    source = kubernetes_source(version)
    all_defs = json.loads((source / "_definitions.json").read_text())["$defs"]
    wanted: set[str] = set()
    todo: list[str] = []
    for kind in KUBERNETES_KINDS:
        schema = json.loads((source / f"{kind}.json").read_text())
        schema.pop("$id", None)
        schema = walk(local_refs(schema), drop_description)
        todo += [r.rsplit("/", 1)[-1] for r in refs(schema)]
        write_json(dest / f"{kind}.json", schema)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += [r.rsplit("/", 1)[-1] for r in refs(all_defs[name])]
    defs = {name: walk(all_defs[name], drop_description) for name in sorted(wanted)}
    write_json(dest / "_definitions.json", {"$defs": defs})
    return KUBERNETES_KINDS


# --- CRDs -------------------------------------------------------------------------------------------


def strict_object(node: dict[str, Any]) -> dict[str, Any]:
    """kubeconform -strict rejects unknown fields only where the schema says so, as kubectl does."""
    open_ended = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if "properties" in node and not open_ended:
        node["additionalProperties"] = False
    return node


def openapi_to_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """One subschema from OpenAPI v3 (as CRDs write it) to JSON Schema."""
    node.pop("description", None)
    if node.pop("x-kubernetes-int-or-string", False) or node.get("format") == "int-or-string":
        node.pop("type", None)
        node.pop("format", None)
        node.pop("anyOf", None)
        node["oneOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    for bound in ("Minimum", "Maximum"):
        exclusive = node.pop(f"exclusive{bound}", None)
        if exclusive is True and bound.lower() in node:
            node[f"exclusive{bound}"] = node.pop(bound.lower())
    return node


def strict_crd_schema(schema: Any) -> Any:
    """Applies strict_object along properties/items/additionalProperties only: subschemas inside
    allOf/anyOf/oneOf/not carry partial properties (mutual-exclusion rules) and must stay open."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("properties", "patternProperties"):
        if isinstance(out.get(key), dict):
            out[key] = {name: strict_crd_schema(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = strict_crd_schema(out[key])
    return strict_object(out)


def write_crd(crd: dict[str, Any], dest: Path) -> list[str]:
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    written = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = version["schema"]["openAPIV3Schema"]
        schema = strict_crd_schema(walk(schema, openapi_to_jsonschema))
        schema["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
        schema.setdefault("required", [])
        schema["required"] = sorted({*schema["required"], "apiVersion", "kind"})
        name = f"{group}/{kind.lower()}_{version['name']}"
        write_json(dest / f"{name}.json", schema)
        written.append(name)
    return written


def go_env(cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GOPATH": str(cache / "go"),
        "GOMODCACHE": str(cache / "go" / "pkg" / "mod"),
        "GOCACHE": str(cache / "go-build"),
        "GOFLAGS": "-modcacherw",
    }


def go_module_crds(go: str, cache: Path) -> Iterator[Path]:
    for module, files in GO_MODULE_CRDS.items():
        out = subprocess.run(
            [go, "mod", "download", "-json", module], env=go_env(cache), check=True, capture_output=True
        )
        module_dir = Path(json.loads(out.stdout)["Dir"])
        yield from (module_dir / f for f in files)


def java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)', out)
    return int(found.group(1)) if found else 0


def find_java() -> str:
    candidates = [os.environ.get("JAVA", ""), f"{os.environ.get('JAVA_HOME', '')}/bin/java"]
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*/bin/java"))
    for java in candidates:
        if java and Path(java).is_file() and java_major(java) >= 21:
            return java
    raise SystemExit("Strimzi's crd-generator needs Java 21 or newer: set JAVA=/path/to/java")


def strimzi_crds(work: Path) -> Iterator[Path]:
    (work / "pom.xml").write_text(STRIMZI_POM.format(v=STRIMZI_VERSION))
    mvn = ["mvn", "-q", "-B", f"-Dmaven.repo.local={work / 'm2'}", "-f", str(work / "pom.xml")]
    subprocess.run([*mvn, "dependency:build-classpath", f"-Dmdep.outputFile={work / 'cp.txt'}"], check=True)
    java = [find_java(), "-cp", (work / "cp.txt").read_text().strip(), "io.strimzi.crdgenerator.CrdGenerator"]
    pairs = [f"{cls}={work / name}.yaml" for name, cls in STRIMZI_CLASSES.items()]
    versions = ["--crd-api-version", "v1", "--api-versions", "v1", "--storage-version", "v1"]
    subprocess.run([*java, *versions, "--yaml", *pairs], check=True)
    yield from (work / f"{name}.yaml" for name in STRIMZI_CLASSES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    parser.add_argument("--go", default=shutil.which("go") or "/usr/local/go/bin/go")
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "careloop" / "tools"
    parser.add_argument("--cache", type=Path, default=default_cache, help="Go caches (as tools.sh uses)")
    args = parser.parse_args()

    kube_dest = HERE / "kubernetes" / f"v{args.kubernetes_version}-strict"
    shutil.rmtree(HERE / "kubernetes", ignore_errors=True)
    shutil.rmtree(HERE / "crds", ignore_errors=True)
    for kind in write_kubernetes(args.kubernetes_version, kube_dest):
        print(f"kubernetes v{args.kubernetes_version}: {kind}")
    with tempfile.TemporaryDirectory() as work:
        crd_files = [*go_module_crds(args.go, args.cache), *strimzi_crds(Path(work))]
        for path in crd_files:
            for crd in yaml.safe_load_all(path.read_text()):
                if crd and crd.get("kind") == "CustomResourceDefinition":
                    for name in write_crd(crd, HERE / "crds"):
                        print(f"crd: {name}  <- {path.name}")


if __name__ == "__main__":
    main()
