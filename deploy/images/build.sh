#!/usr/bin/env bash
# careloop's container image, built without a daemon: buildah (vfs storage, chroot isolation) on a base
# made with debootstrap from Debian's own mirror. Everything it keeps (the base, buildah's storage) lives
# under ${XDG_CACHE_HOME:-~/.cache}/careloop/images, never in the checkout.
# Usage: deploy/images/build.sh base|build|export|test|size|clean
#   base    the base image (Debian bookworm + Python 3.11), made once; CARELOOP_IMAGE_BASE_REFRESH=1 remakes it
#   build   the base if missing, then localhost/careloop:<version>; prints its size
#   export  an OCI archive of the image in .artifacts/images/careloop-<version>.oci.tar
#   test    build, export, then start every service from the image against the local Kafka and PostgreSQL
#   clean   forget buildah's storage and the base (the next build starts cold)
# With CONTAINER_TOOL=docker or podman the same Containerfile is built by that tool instead, on
# BASE_IMAGE (python:3.11-slim-bookworm by default there).
set -euo pipefail

IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$IMAGES_DIR/../.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/careloop/images"
ARTIFACTS="$REPO_ROOT/.artifacts/images"
MIRROR="${CARELOOP_DEBIAN_MIRROR:-}"
SUITE=bookworm
BASE_LOCAL=localhost/careloop-base:bookworm
# Runtime packages of the base: python3 (python3-minimal has no json), venv for the build stage,
# ca-certificates for https (OIDC discovery), tzdata for zoneinfo (the workspace's time zone).
BASE_PACKAGES=python3,python3-venv,ca-certificates,tzdata
CONTAINER_TOOL="${CONTAINER_TOOL:-buildah}"

log() { printf '[images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
elapsed_since() { local d=$(($(now_ms) - $1)); printf '%d.%01ds' $((d / 1000)) $((d % 1000 / 100)); }

version() { sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_ROOT/pyproject.toml" | head -n1; }
IMAGE="localhost/careloop:$(version)"

# Overlay where the kernel mounts it (a build of unchanged code in seconds); vfs, which works anywhere but
# copies every layer whole (minutes), elsewhere. CARELOOP_BUILDAH_DRIVER=vfs|overlay chooses.
storage_driver() {
  if [[ -n "${CARELOOP_BUILDAH_DRIVER:-}" ]]; then echo "$CARELOOP_BUILDAH_DRIVER"; return; fi
  local probe ok=vfs
  mkdir -p "$CACHE"
  probe="$(mktemp -d "$CACHE/probe.XXXXXX")"
  mkdir -p "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
    "$probe/merged" 2>/dev/null; then
    umount "$probe/merged" && ok=overlay
  fi
  rm -rf "$probe"
  echo "$ok"
}
DRIVER=""

bah() {
  [[ -n "$DRIVER" ]] || DRIVER="$(storage_driver)"
  buildah --root "$CACHE/storage-$DRIVER" --runroot "$CACHE/run-$DRIVER" --storage-driver "$DRIVER" "$@"
}

# Root may install what is missing (as the README says of the local tools); anyone else is told what to run.
need_tools() {
  local missing=() tool
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  ((${#missing[@]} == 0)) && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    die "missing ${missing[*]}: run 'sudo apt-get install -y --no-install-recommends ${missing[*]}'"
  fi
}

need_root() { [[ "$(id -u)" == 0 ]] || die "buildah with vfs storage and chroot isolation needs root here (or use CONTAINER_TOOL=podman)"; }

# The Debian mirror this machine already uses, so the base comes from where its own packages come from.
debian_mirror() {
  if [[ -n "$MIRROR" ]]; then echo "$MIRROR"; return; fi
  local url
  url="$(grep -rhoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    grep -oE 'https?://[^ ]+' | head -n1 || true)"
  echo "${url:-http://deb.debian.org/debian}"
}

base_exists() { bah inspect --type image "$BASE_LOCAL" >/dev/null 2>&1; }

cmd_base() {
  need_root
  DRIVER="${DRIVER:-$(storage_driver)}"
  if base_exists && [[ "${CARELOOP_IMAGE_BASE_REFRESH:-0}" != 1 ]]; then
    log "base $BASE_LOCAL is cached (CARELOOP_IMAGE_BASE_REFRESH=1 remakes it)"
    return
  fi
  need_tools debootstrap buildah
  local t0 mirror work rootfs ctr mnt
  t0="$(now_ms)"
  mirror="$(debian_mirror)"
  mkdir -p "$CACHE"
  work="$(mktemp -d "$CACHE/base.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
  trap "rm -rf '$work'" EXIT
  rootfs="$work/rootfs"
  log "debootstrap $SUITE from $mirror (packages: $BASE_PACKAGES)"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  # The point release plus the security and updates suites, so the base carries today's fixes.
  local security="${mirror%/debian*}/debian-security"
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
EOF
  chroot "$rootfs" /bin/sh -c 'apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq -y upgrade' \
    >>"$work/debootstrap.log" 2>&1 ||
    log "WARNING: apt-get upgrade in the base failed; the base has the $SUITE point release only"
  # What an image never needs: package lists and caches, logs, documentation (the copyright files stay).
  chroot "$rootfs" apt-get -qq clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/* "$rootfs"/var/log/* "$rootfs"/tmp/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/dev/* \
    "$rootfs"/proc/* "$rootfs"/sys/* "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname "$rootfs"/etc/machine-id
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  ctr="$(bah from scratch)"
  mnt="$(bah mount "$ctr")"
  tar -C "$rootfs" -cf - . | tar -C "$mnt" -xpf -
  bah umount "$ctr" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd /bin/bash --label "org.opencontainers.image.title=careloop-base" \
    --label "org.opencontainers.image.description=Debian $SUITE minbase with Python 3 from $mirror" "$ctr"
  bah commit --quiet --rm "$ctr" "$BASE_LOCAL" >/dev/null
  log "base $BASE_LOCAL made in $(elapsed_since "$t0") ($(image_size "$BASE_LOCAL"))"
}

image_size() {
  local bytes
  bytes="$(bah inspect --type image --format '{{.Docker.Size}}' "$1" 2>/dev/null || echo 0)"
  if [[ "$bytes" =~ ^[0-9]+$ ]] && ((bytes > 0)); then
    awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1000000 }'
  else
    bah images --format '{{.Size}}' "$1" | head -n1
  fi
}

# The CA bundle this machine trusts (it may hold a TLS-inspecting proxy's CA): the build stage's downloads
# trust the same, and it never lands in a layer.
ca_bundle() {
  local f
  for f in "${SSL_CERT_FILE:-}" "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [[ -n "$f" && -s "$f" ]] && { echo "$f"; return; }
  done
  echo /dev/null
}

revision() {
  local rev
  rev="$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  # A checkout with changes is not that commit: say so in the label.
  if [[ "$rev" != unknown && -n "$(git -C "$REPO_ROOT" status --porcelain 2>/dev/null)" ]]; then rev="$rev-dirty"; fi
  echo "$rev"
}

source_url() { git -C "$REPO_ROOT" remote get-url origin 2>/dev/null || echo "${CARELOOP_IMAGE_SOURCE:-unknown}"; }

build_args() {
  printf -- '--build-arg\n%s\n' "VERSION=$(version)" "REVISION=$(revision)" "SOURCE=$(source_url)" \
    "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

cmd_build() {
  local t0 args
  mapfile -t args < <(build_args)
  case "$CONTAINER_TOOL" in
    buildah)
      need_root
      need_tools buildah
      cmd_base
      t0="$(now_ms)"
      log "building $IMAGE (buildah, $DRIVER storage in $CACHE)"
      bah bud --quiet --isolation chroot --network host --format docker --layers \
        --build-arg "BASE=$BASE_LOCAL" "${args[@]}" --secret "id=ca-bundle,src=$(ca_bundle)" \
        -f "$IMAGES_DIR/Containerfile" -t "$IMAGE" "$REPO_ROOT" >/dev/null
      log "built $IMAGE in $(elapsed_since "$t0")"
      echo "$IMAGE $(image_size "$IMAGE")"
      ;;
    docker | podman)
      t0="$(now_ms)"
      "$CONTAINER_TOOL" build --build-arg "BASE=${BASE_IMAGE:-python:3.11-slim-bookworm}" "${args[@]}" \
        --secret "id=ca-bundle,src=$(ca_bundle)" \
        -f "$IMAGES_DIR/Containerfile" -t "$IMAGE" "$REPO_ROOT"
      log "built $IMAGE in $(elapsed_since "$t0")"
      "$CONTAINER_TOOL" image ls "$IMAGE"
      ;;
    *) die "CONTAINER_TOOL must be buildah, docker or podman" ;;
  esac
}

# An OCI archive (skopeo, umoci, podman load), and a docker archive (docker load), which alone keeps the
# HEALTHCHECK: the OCI image format has no field for it.
cmd_export() {
  need_root
  local oci="$ARTIFACTS/careloop-$(version).oci.tar" docker="$ARTIFACTS/careloop-$(version).docker.tar"
  mkdir -p "$ARTIFACTS"
  rm -f "$oci" "$docker"
  bah push --quiet "$IMAGE" "oci-archive:$oci:$(version)" >/dev/null
  bah push --quiet "$IMAGE" "docker-archive:$docker:$IMAGE" >/dev/null
  log "exported $oci and $docker ($(du -h "$oci" | cut -f1) each)"
}

cmd_test() {
  need_tools umoci
  cmd_build
  cmd_export
  local infra_env
  infra_env="$("$REPO_ROOT/deploy/local/infra.sh" env)"
  eval "$infra_env"
  [[ -x "$REPO_ROOT/.venv/bin/python" ]] || die "no .venv: run 'make install' first"
  "$REPO_ROOT/.venv/bin/python" "$IMAGES_DIR/smoke.py" --archive "$ARTIFACTS/careloop-$(version).oci.tar" --tag "$(version)" --logs "$ARTIFACTS/logs"
}

cmd_size() { echo "$IMAGE $(image_size "$IMAGE")"; }

cmd_clean() {
  need_root
  local driver
  for driver in overlay vfs; do
    [[ -d "$CACHE/storage-$driver" ]] || continue
    DRIVER=$driver bah rm --all >/dev/null 2>&1 || true
    DRIVER=$driver bah rmi --all --force >/dev/null 2>&1 || true
  done
  rm -rf "$CACHE"
  log "removed $CACHE"
}

[[ "$(id -u)" == 0 && "$CONTAINER_TOOL" == buildah ]] && DRIVER="$(storage_driver)"

case "${1:-}" in
  base) cmd_base ;;
  build) cmd_build ;;
  export) cmd_export ;;
  test) cmd_test ;;
  size) cmd_size ;;
  clean) cmd_clean ;;
  *)
    echo "usage: $0 base|build|export|test|size|clean" >&2
    exit 2
    ;;
esac
