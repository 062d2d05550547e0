#!/usr/bin/env bash
# What the browser tests need: Debian's chromium (Playwright's own browser download is not used) and
# axe-core's axe.min.js from the npm registry, kept under $RUN_DIR/browser.
# Usage: deploy/local/browser.sh          install what is missing (chromium only as root, with apt)
#        deploy/local/browser.sh check    say what is missing, install nothing
# Missing and not installable: prints exactly what to run and fails, unless CARELOOP_SKIP_BROWSER=1
# (then the browser tests skip with the same message).
set -euo pipefail

LOG_TAG=browser
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

CHROMIUM="${CARELOOP_CHROMIUM:-/usr/bin/chromium}"
AXE_VERSION="${CARELOOP_AXE_CORE_VERSION:-4}"
AXE_DIR="$RUN_DIR/browser/axe-core"
AXE_JS="${CARELOOP_AXE_JS:-$AXE_DIR/axe.min.js}"
MODE="${1:-install}"
missing=()

install_chromium() {
  [[ -x "$CHROMIUM" ]] && return 0
  if [[ "$MODE" == install && "$(id -u)" == 0 && "$CHROMIUM" == /usr/bin/chromium ]] && command -v apt-get >/dev/null; then
    log "installing Debian's chromium (apt-get install chromium)"
    if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >&2; then
      [[ -x "$CHROMIUM" ]] && return 0
    fi
  fi
  missing+=("chromium at $CHROMIUM: run (as root) apt-get update && apt-get install -y --no-install-recommends chromium")
}

fetch_axe() {
  [[ -s "$AXE_JS" ]] && return 0
  if [[ "$MODE" == install && "$AXE_JS" == "$AXE_DIR/axe.min.js" ]] && command -v npm >/dev/null; then
    log "fetching axe-core@$AXE_VERSION from the npm registry (npm pack)"
    local work tarball
    work="$(mktemp -d)"
    if tarball="$(cd "$work" && npm pack --silent "axe-core@$AXE_VERSION" 2>/dev/null | tail -n 1)" \
      && tar -xzf "$work/$tarball" -C "$work" package/axe.min.js package/package.json; then
      mkdir -p "$AXE_DIR"
      mv "$work/package/axe.min.js" "$AXE_DIR/axe.min.js"
      mv "$work/package/package.json" "$AXE_DIR/package.json"
    fi
    rm -rf "$work"
    [[ -s "$AXE_JS" ]] && return 0
  fi
  missing+=("axe-core at $AXE_JS: run deploy/local/browser.sh (it needs npm: apt-get install -y npm)")
}

install_chromium
fetch_axe

if ((${#missing[@]} == 0)); then
  log "ready: $("$CHROMIUM" --version 2>/dev/null || echo chromium), axe-core $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$AXE_DIR/package.json" 2>/dev/null | head -n 1) at $AXE_JS"
  exit 0
fi
for what in "${missing[@]}"; do log "missing $what"; done
if [[ "${CARELOOP_SKIP_BROWSER:-0}" == 1 ]]; then
  log "CARELOOP_SKIP_BROWSER=1: the browser tests will be skipped"
  exit 0
fi
log "the browser tests need these; or set CARELOOP_SKIP_BROWSER=1 to skip them"
exit 1
