#!/usr/bin/env bash
# Validates the Helm chart offline, with no cluster: for each values file, `helm lint --strict`, then
# `helm template`, then kubeconform in strict mode against the schemas vendored in deploy/helm/schemas
# (Kubernetes and the Strimzi, CloudNativePG, KEDA and Prometheus-operator CRDs). A kind with no vendored
# schema is an error: there is deliberately no -ignore-missing-schemas.
#
#   deploy/helm/validate.sh [--chart DIR] [--out DIR] [VALUES_FILE ...]
#
# VALUES_FILE names are looked up in the chart directory; the default is values.yaml,
# values-production.yaml and values-minimal.yaml. Rendered manifests are kept in --out (default
# .artifacts/helm) as <values-file-stem>.yaml, for the policy tests and for reading.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
KUBE_VERSION="${CARELOOP_KUBE_VERSION:-1.34.0}"
RELEASE="${CARELOOP_HELM_RELEASE:-careloop}"
NAMESPACE="${CARELOOP_HELM_NAMESPACE:-careloop}"
SCHEMAS="$HERE/schemas"
CHART="$HERE/careloop"
OUT="$ROOT/.artifacts/helm"
VALUES=()

while (($#)); do
	case "$1" in
	--chart) CHART="$2"; shift 2 ;;
	--out) OUT="$2"; shift 2 ;;
	-h | --help) sed -n '2,12p' "$0"; exit 0 ;;
	-*) echo "validate.sh: unknown option $1" >&2; exit 2 ;;
	*) VALUES+=("$1"); shift ;;
	esac
done
((${#VALUES[@]})) || VALUES=(values.yaml values-production.yaml values-minimal.yaml)

[[ -f "$CHART/Chart.yaml" ]] || { echo "validate.sh: no chart at $CHART (no Chart.yaml)" >&2; exit 1; }
[[ -d "$SCHEMAS/kubernetes/v$KUBE_VERSION-strict" ]] || {
	echo "validate.sh: no vendored Kubernetes $KUBE_VERSION schemas in $SCHEMAS (see $SCHEMAS/SOURCES.md)" >&2
	exit 1
}
eval "$("$HERE/tools.sh" env)"
mkdir -p "$OUT"

# Templates may gate optional resources on .Capabilities.APIVersions (ServiceMonitor, ScaledObject, ...):
# declare every CRD group/version we hold a schema for, so that all of them are rendered and checked.
API_VERSIONS=()
while IFS= read -r schema; do
	group="$(basename "$(dirname "$schema")")"
	file="$(basename "$schema" .json)"
	API_VERSIONS+=(--api-versions "$group/${file##*_}")
done < <(find "$SCHEMAS/crds" -name '*.json' | sort)

KUBECONFORM_ARGS=(
	-strict -summary -kubernetes-version "$KUBE_VERSION"
	-schema-location "$SCHEMAS/kubernetes/{{ .NormalizedKubernetesVersion }}{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
	-schema-location "$SCHEMAS/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
)

failed=()
for values in "${VALUES[@]}"; do
	file="$CHART/$values"
	[[ -f "$file" ]] || file="$values"
	stem="$(basename "$values" .yaml)"
	if [[ ! -f "$file" ]]; then
		echo "== $stem: no such values file (looked in $CHART and here)" >&2
		failed+=("$stem: missing")
		continue
	fi
	rendered="$OUT/$stem.yaml"
	echo "== $stem: helm lint --strict"
	if ! "$HELM" lint --strict --kube-version "$KUBE_VERSION" --namespace "$NAMESPACE" -f "$file" "$CHART"; then
		failed+=("$stem: helm lint")
		continue
	fi
	echo "== $stem: helm template --kube-version $KUBE_VERSION > $rendered"
	if ! "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" \
		"${API_VERSIONS[@]}" -f "$file" >"$rendered"; then
		failed+=("$stem: helm template")
		continue
	fi
	echo "== $stem: kubeconform -strict (offline, vendored schemas)"
	if ! "$KUBECONFORM" "${KUBECONFORM_ARGS[@]}" "$rendered"; then
		failed+=("$stem: kubeconform")
	fi
done

if ((${#failed[@]})); then
	printf 'validate.sh: FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "validate.sh: ${#VALUES[@]} values file(s) lint, render and validate cleanly against Kubernetes $KUBE_VERSION"
