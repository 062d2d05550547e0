# shellcheck shell=bash
# Shared helpers for deploy/local/*.sh; sourced, never executed.

# Repo root is two levels up from this file, so the scripts work from any cwd.
LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
# All runtime state (jars, data, logs, pids) lives outside git under one folder.
# shellcheck disable=SC2034  # used by the scripts that source this file
RUN_DIR="${CARELOOP_RUN_DIR:-$REPO_ROOT/.run}"
# A relative run dir is the caller's (CARELOOP_RUN_DIR=.run): absolute before any script changes directory,
# and so for the scripts this one starts.
if [[ "$RUN_DIR" != /* ]]; then
  RUN_DIR="$PWD/$RUN_DIR"
  export CARELOOP_RUN_DIR="$RUN_DIR"
fi

log() { printf '[%s] %s\n' "${LOG_TAG:-local}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Milliseconds since the epoch, from bash's own clock (no date fork).
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# "12.3s" for a start timestamp taken with now_ms.
elapsed_since() { local d=$(($(now_ms) - $1)); printf '%d.%01ds' $((d / 1000)) $((d % 1000 / 100)); }

# True if something accepts TCP connections on 127.0.0.1:$1 (bash /dev/tcp, no nc needed).
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# True if pid $1 is alive and its command line contains $2 (guards against recycled pids).
pid_matches() {
  local pid=$1 needle=$2
  local cmd
  [[ -n "$pid" ]] || return 1
  # No pipe into grep -q here: under pipefail an early grep exit makes tr's SIGPIPE fail the check.
  cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmd" == *"$needle"* ]]
}
