#!/usr/bin/env bash
# Installs the chart-validation tools (helm, kubeconform) from their Go modules into a cache outside the
# repository, so a fresh clone reuses them:
#   ${XDG_CACHE_HOME:-~/.cache}/careloop/tools/{helm-<version>,kubeconform-<version>}/
# GOPATH, GOMODCACHE and GOCACHE live under that cache too. A cold helm build takes several minutes.
#
#   deploy/helm/tools.sh install   build what is missing (prints nothing when both are cached)
#   deploy/helm/tools.sh env       print HELM=... and KUBECONFORM=... lines for eval
#   deploy/helm/tools.sh path      print the cache directory
#
# Go is taken from $GO, then PATH, then /usr/local/go/bin/go. If it cannot build a tool it stops with a
# message saying what to do.
set -euo pipefail

HELM_VERSION="${CARELOOP_HELM_VERSION:-v3.22.0}"
KUBECONFORM_VERSION="${CARELOOP_KUBECONFORM_VERSION:-v0.8.0}"
TOOLS_DIR="${CARELOOP_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/careloop/tools}"

HELM_BIN="$TOOLS_DIR/helm-$HELM_VERSION/helm"
KUBECONFORM_BIN="$TOOLS_DIR/kubeconform-$KUBECONFORM_VERSION/kubeconform"

die() {
	echo "deploy/helm/tools.sh: $*" >&2
	exit 1
}

find_go() {
	if [[ -n "${GO:-}" ]]; then
		[[ -x "$GO" ]] && echo "$GO"
	elif command -v go >/dev/null 2>&1; then
		command -v go
	elif [[ -x /usr/local/go/bin/go ]]; then
		echo /usr/local/go/bin/go
	else
		return 1
	fi
}

# go_install <module@version> <destination dir> <extra go flags...>
go_install() {
	local target="$1" dest="$2"
	shift 2
	local go
	go="$(find_go)" || die "Go is needed to build ${target%%@*} and none was found.
Install Go 1.26 or newer (helm v3.22 and kubeconform v0.8 need it) (https://go.dev/dl/) and put it on PATH or set GO=/path/to/go, or place a
prebuilt binary at $dest/ yourself, then run 'make helm-tools' again."
	mkdir -p "$dest" "$TOOLS_DIR/go" "$TOOLS_DIR/go-build"
	echo "building ${target} into $dest (cached for next time; helm takes several minutes cold)" >&2
	local start=$SECONDS
	if ! env GOPATH="$TOOLS_DIR/go" GOMODCACHE="$TOOLS_DIR/go/pkg/mod" GOCACHE="$TOOLS_DIR/go-build" \
		GOBIN="$dest" GOFLAGS="-buildvcs=false -modcacherw" GOTOOLCHAIN=local CGO_ENABLED=0 \
		nice -n 10 "$go" install "$@" "$target"; then
		rm -rf "$dest"
		die "'go install $target' failed (see above).
It needs the Go module proxy (GOPROXY, default https://proxy.golang.org) on a cold cache and a Go new
enough for the module. Fix that and run 'make helm-tools' again, or place a prebuilt binary in $dest/."
	fi
	echo "built ${target} in $((SECONDS - start)) s" >&2
}

install_tools() {
	mkdir -p "$TOOLS_DIR"
	# One installer at a time: make and pytest may both ask.
	exec 9>"$TOOLS_DIR/.lock"
	if command -v flock >/dev/null 2>&1; then
		flock 9
	fi
	if [[ ! -x "$KUBECONFORM_BIN" ]]; then
		go_install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" "$(dirname "$KUBECONFORM_BIN")" \
			-ldflags "-X main.version=$KUBECONFORM_VERSION"
	fi
	if [[ ! -x "$HELM_BIN" ]]; then
		# Both projects stamp their version in with ldflags in their own builds; do the same.
		go_install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$(dirname "$HELM_BIN")" \
			-ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
	fi
	"$HELM_BIN" version --short >/dev/null 2>&1 || die "$HELM_BIN does not run; delete $(dirname "$HELM_BIN") and retry"
	"$KUBECONFORM_BIN" -v >/dev/null 2>&1 || die "$KUBECONFORM_BIN does not run; delete $(dirname "$KUBECONFORM_BIN") and retry"
}

case "${1:-install}" in
install) install_tools ;;
env)
	install_tools
	printf 'HELM=%q\nKUBECONFORM=%q\n' "$HELM_BIN" "$KUBECONFORM_BIN"
	;;
path) echo "$TOOLS_DIR" ;;
*) die "usage: $0 [install|env|path]" ;;
esac
