#!/usr/bin/env bash
# Local careloop infrastructure (Kafka + PostgreSQL) in one command.
# Usage: deploy/local/infra.sh up|down|status|env
# A service is skipped when its env var (KAFKA_BOOTSTRAP_SERVERS, CARELOOP_PG_URL) already points elsewhere.
set -euo pipefail

LOG_TAG=infra
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

KAFKA_PORT="${CARELOOP_KAFKA_PORT:-9092}"
PG_PORT="${CARELOOP_PG_PORT:-55432}"
LOCAL_KAFKA="127.0.0.1:$KAFKA_PORT"
LOCAL_PG_TCP_URL="postgresql://careloop@127.0.0.1:$PG_PORT"

# Byte by byte, everything but RFC 3986's unreserved characters as %XX (a path as a URL's host).
percent_encode() {
  local LC_ALL=C s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9._~-]) out+="$c" ;;
      *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  printf '%s' "$out"
}

# Clients on this machine reach the local server through its Unix socket: a round trip there cost about
# a third of the CPU of one over loopback TCP (README, Performance). It listens on 127.0.0.1 as well, which
# is the URL while its socket is not there (not started yet, or started from another CARELOOP_RUN_DIR).
PG_SOCKET_DIR="$("$LOCAL_DIR/postgres.sh" socket-dir)"
LOCAL_PG_SOCKET_URL="postgresql://careloop@$(percent_encode "$PG_SOCKET_DIR"):$PG_PORT"
if [[ -S "$PG_SOCKET_DIR/.s.PGSQL.$PG_PORT" ]]; then
  LOCAL_PG_URL="$LOCAL_PG_SOCKET_URL"
else
  LOCAL_PG_URL="$LOCAL_PG_TCP_URL"
fi

# Provided = set and not just our own local address (so `eval "$(infra.sh env)"; infra.sh up` still starts ours).
external_kafka() { [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" && "$KAFKA_BOOTSTRAP_SERVERS" != "$LOCAL_KAFKA" ]]; }
external_pg() {
  local url="${CARELOOP_PG_URL:-}" own
  [[ -n "$url" ]] || return 1
  for own in "$LOCAL_PG_SOCKET_URL" "$LOCAL_PG_TCP_URL"; do
    [[ "$url" == "$own" || "$url" == "$own/"* ]] && return 1
  done
  return 0
}

cmd_up() {
  local t0 rc=0 pg_job=""
  t0="$(now_ms)"
  # Postgres starts in the background while Kafka (the slow one) starts in the foreground.
  if external_pg; then
    log "CARELOOP_PG_URL is set; using the provided PostgreSQL ($CARELOOP_PG_URL), not starting one"
  else
    "$LOCAL_DIR/postgres.sh" start &
    pg_job=$!
  fi
  if external_kafka; then
    log "KAFKA_BOOTSTRAP_SERVERS is set; using the provided Kafka ($KAFKA_BOOTSTRAP_SERVERS), not starting one"
  else
    "$LOCAL_DIR/kafka.sh" start || rc=1
  fi
  if [[ -n "$pg_job" ]]; then
    wait "$pg_job" || rc=1
  fi
  ((rc == 0)) || die "some services failed to start (see above)"
  log "up in $(elapsed_since "$t0"); for the environment run: eval \"\$($0 env)\""
}

# Stop both local services regardless of env vars: stopping one that is not running is a no-op.
cmd_down() {
  local rc=0
  "$LOCAL_DIR/kafka.sh" stop || rc=1
  "$LOCAL_DIR/postgres.sh" stop || rc=1
  return "$rc"
}

cmd_status() {
  local rc=0
  if external_kafka; then
    log "kafka: provided externally ($KAFKA_BOOTSTRAP_SERVERS)"
  else
    "$LOCAL_DIR/kafka.sh" status || rc=1
  fi
  if external_pg; then
    log "postgres: provided externally ($CARELOOP_PG_URL)"
  else
    "$LOCAL_DIR/postgres.sh" status || rc=1
  fi
  return "$rc"
}

# Shell lines for eval; provided values win, so `env` always matches what `up` used.
cmd_env() {
  printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "${KAFKA_BOOTSTRAP_SERVERS:-$LOCAL_KAFKA}"
  printf 'export CARELOOP_PG_URL=%q\n' "${CARELOOP_PG_URL:-$LOCAL_PG_URL}"
  # A superuser, for the tests that play one (rewriting the record) and the bench's statistics;
  # only known for the local server unless given.
  if [[ -n "${CARELOOP_PG_ADMIN_URL:-}" ]]; then
    printf 'export CARELOOP_PG_ADMIN_URL=%q\n' "$CARELOOP_PG_ADMIN_URL"
  elif ! external_pg; then
    printf 'export CARELOOP_PG_ADMIN_URL=%q\n' "postgresql://postgres@127.0.0.1:$PG_PORT"
  fi
  # Clients reach the local server over loopback without TLS: it trusts every loopback connection
  # (postgres.sh), so TLS there protects nothing, and it cost about a tenth of the CPU of a journey
  # (README, Performance). A value given, or a provided server, is left as it is.
  if [[ -n "${CARELOOP_PG_SSLMODE:-}" ]]; then
    printf 'export CARELOOP_PG_SSLMODE=%q\n' "$CARELOOP_PG_SSLMODE"
  elif ! external_pg; then
    printf 'export CARELOOP_PG_SSLMODE=disable\n'
  fi
  # One local broker on one machine: 2 partitions a topic, where the services' own default (6) leaves
  # room for replicas on a cluster. Each fetch and its answer carry every partition a consumer reads,
  # so fewer cost less CPU at every rate (README, Performance). A value given, or a provided Kafka, is
  # left as it is. Topics that exist keep their partitions.
  if [[ -n "${CARELOOP_TOPIC_PARTITIONS:-}" ]]; then
    printf 'export CARELOOP_TOPIC_PARTITIONS=%q\n' "$CARELOOP_TOPIC_PARTITIONS"
  elif ! external_kafka; then
    printf 'export CARELOOP_TOPIC_PARTITIONS=2\n'
  fi
  # The local server's CA (it takes TLS too), for the test that connects with verify-full.
  if [[ -n "${CARELOOP_PG_TLS_CA:-}" ]]; then
    printf 'export CARELOOP_PG_TLS_CA=%q\n' "$CARELOOP_PG_TLS_CA"
  elif ! external_pg; then
    printf 'export CARELOOP_PG_TLS_CA=%q\n' "$("$LOCAL_DIR/postgres.sh" ca-file)"
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 up|down|status|env" >&2
    exit 2
    ;;
esac
