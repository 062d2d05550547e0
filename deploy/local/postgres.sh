#!/usr/bin/env bash
# Local PostgreSQL 15 cluster for careloop dev and tests, from the machine's binaries.
# Usage: deploy/local/postgres.sh start|stop|status|clean|ca-file|socket-dir
# State lives in $RUN_DIR/pg; the server runs as an unprivileged user (postgres refuses root).
set -euo pipefail

LOG_TAG=postgres
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

PG_BIN="${CARELOOP_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${CARELOOP_PG_PORT:-55432}"
READY_TIMEOUT="${CARELOOP_PG_READY_TIMEOUT:-60}"
STOP_TIMEOUT="${CARELOOP_PG_STOP_TIMEOUT:-60}"

# Every ancestor of $1 (or of its nearest existing parent) lets "others" through (o+x).
others_can_reach() {
  local dir="$1"
  while [[ ! -e "$dir" ]]; do dir="$(dirname "$dir")"; done
  while [[ "$dir" != "/" && "$dir" != "." ]]; do
    (( 8#$(stat -c %a "$dir") & 1 )) || return 1
    dir="$(dirname "$dir")"
  done
}

# As root the server runs as another user, who may not reach the run dir (a private temp dir, /root):
# then the cluster lives in a fixed place under /var/tmp derived from the run dir.
if [[ -n "${CARELOOP_PG_DIR:-}" ]]; then
  PG_DIR="$CARELOOP_PG_DIR"
elif [[ "$(id -u)" -eq 0 ]] && ! others_can_reach "$RUN_DIR"; then
  PG_DIR="/var/tmp/careloop-pg-$(printf %s "$RUN_DIR" | sha1sum | cut -c1-12)"
else
  PG_DIR="$RUN_DIR/pg"
fi
DATA_DIR="$PG_DIR/data"
SOCK_DIR="$PG_DIR/sock"
LOG_FILE="$PG_DIR/postgres.log"
# Bootstrap superuser stays "postgres"; the app role below is what services connect as.
ADMIN_ROLE=postgres
APP_ROLE=careloop
DATABASES=(careloop_intake careloop_careplan careloop_referral careloop_followup careloop_record careloop_workspace)

[[ -x "$PG_BIN/pg_ctl" ]] || die "PostgreSQL binaries not found in $PG_BIN (set CARELOOP_PG_BIN)"

# Root: run the server as a system user; otherwise as whoever calls us.
if [[ "$(id -u)" -eq 0 ]]; then
  OS_USER="${CARELOOP_PG_OS_USER:-careloop}"
  as_pg() { runuser -u "$OS_USER" -- "$@"; }
else
  OS_USER="$(id -un)"
  as_pg() { "$@"; }
fi
# The server user may not be able to read the caller's cwd (e.g. /root); all paths here are absolute.
cd /

pg() { as_pg "$PG_BIN/$1" "${@:2}"; }

# psql as the bootstrap superuser over TCP (trust auth, loopback only); SQL comes on stdin.
psql_admin() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$ADMIN_ROLE" -d postgres
}

is_running() { [[ -f "$DATA_DIR/PG_VERSION" ]] && pg pg_ctl status -D "$DATA_DIR" >/dev/null 2>&1; }
is_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; }

ensure_os_user() {
  [[ "$(id -u)" -eq 0 ]] || return 0
  id -u "$OS_USER" >/dev/null 2>&1 && return 0
  log "creating system user $OS_USER to run the server"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$OS_USER"
}

# pg dir owned by the server user, and every parent traversable by it.
prepare_dirs() {
  mkdir -p "$PG_DIR"
  [[ "$(id -u)" -eq 0 ]] && chown "$OS_USER:" "$PG_DIR"
  as_pg test -w "$PG_DIR" \
    || die "user $OS_USER cannot write $PG_DIR (a parent dir is not traversable?); set CARELOOP_PG_DIR elsewhere"
  as_pg mkdir -p "$SOCK_DIR"
  # Unix socket paths are limited to 107 bytes by the kernel.
  local sock_path="$SOCK_DIR/.s.PGSQL.$PG_PORT"
  ((${#sock_path} < 107)) || die "socket path too long (${#sock_path} bytes): $sock_path; use a shorter CARELOOP_RUN_DIR"
}

init_cluster() {
  [[ -f "$DATA_DIR/PG_VERSION" ]] && return 0
  local locale_opts=(--no-locale)
  # C.UTF-8 gives byte-order collation plus proper UTF-8 ctype; plain C if the OS lacks it.
  if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale_opts=(--locale=C.UTF-8); fi
  log "initdb $DATA_DIR"
  # --auth=trust is acceptable only because the server listens on 127.0.0.1 and a private socket dir.
  pg initdb -D "$DATA_DIR" --username="$ADMIN_ROLE" --auth=trust --encoding=UTF8 "${locale_opts[@]}" \
    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  # Our settings live in one include file so postgresql.conf stays stock.
  printf "\n# careloop local settings (deploy/local/postgres.sh)\ninclude_if_exists = 'careloop.conf'\n" \
    | as_pg tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

# A local CA and a certificate for 127.0.0.1 and localhost, made once: the server takes TLS as well
# as plain connections, so CARELOOP_PG_SSLMODE=verify-full with CARELOOP_PG_SSLROOTCERT=<tls>/ca.crt
# is tried here as on a real cluster.
ensure_tls() {
  local tls="$PG_DIR/tls"
  [[ -f "$tls/server.crt" && -f "$tls/server.key" ]] && return 0
  as_pg mkdir -p "$tls"
  as_pg openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=careloop local CA" -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  as_pg openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' | as_pg tee "$tls/san.ext" >/dev/null
  as_pg openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 3650 -extfile "$tls/san.ext" -out "$tls/server.crt" 2>/dev/null
  as_pg chmod 600 "$tls/server.key" "$tls/ca.key"
  as_pg chmod 644 "$tls/ca.crt"
}

# Rewritten on each start so changed ports or paths take effect.
write_conf() {
  local sock_sql="${SOCK_DIR//\'/\'\'}"
  as_pg tee "$DATA_DIR/careloop.conf" >/dev/null <<EOF
# Managed by deploy/local/postgres.sh; rewritten on every start. Local dev/tests only.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock_sql'
# Five services and the workspace plus per-test throwaway databases, each with its own pool.
max_connections = 300
# Sized for a machine that runs everything (see README, Performance): every service's hot indexes stay
# in PostgreSQL's own cache, and backends do not have to write dirty pages out themselves.
shared_buffers = ${CARELOOP_PG_SHARED_BUFFERS:-1GB}
effective_cache_size = 4GB
# Every service's tables and indexes live in shared buffers, so reading a page at random costs about what
# reading the next one does. With the default (4) the planner joined a batch's few hundred keys to a
# table of tens of thousands of rows by scanning all of it (README, Performance).
random_page_cost = 1.1
wal_buffers = 64MB
bgwriter_lru_maxpages = 1000
# Checkpoints by time, not forced by WAL volume: each one makes the next change of every page write
# the whole page to WAL again (random uuid keys touch many pages).
max_wal_size = 8GB
min_wal_size = 1GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
# Statistics soon after a fresh platform's tables fill: until autovacuum first visits a database the
# planner has none and guesses (followup's task look-up walked every open task of a kind for each
# batch), and with the default one-minute naptime that first visit came about four minutes after start.
# Every 30 s, not 10: the first visits come 20-35 s after start, and under load the ten-second round of
# analyzes over this server's eight databases took CPU the two cores did not have (README, Performance).
autovacuum_naptime = ${CARELOOP_PG_AUTOVACUUM_NAPTIME:-30s}
# Statistics from a sample of 3,000 rows a table (target 10), not PostgreSQL's 30,000 (100). Under load autovacuum
# analyzes each table that grew a tenth since its last analyze; over this server's eight databases that came to about
# 4.5 s of CPU in a make bench (0.5 s with 10), in bursts that the open loop's latency felt on two busy cores.
# careloop's statements find rows by key, state or time: ten most common values and ten histogram buckets a column
# plan them as well (tests/test_plans_as_tables_grow.py; README, Performance).
default_statistics_target = ${CARELOOP_PG_STATISTICS_TARGET:-10}
# Durability matters even locally: tests exercise real commit semantics.
fsync = on
synchronous_commit = on
full_page_writes = on
# Statements per event are what the benchmark counts (make bench reads pg_stat_statements).
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = 'top'
pg_stat_statements.max = 5000
log_line_prefix = '%m [%p] %q%u@%d '
ssl = on
ssl_cert_file = '$PG_DIR/tls/server.crt'
ssl_key_file = '$PG_DIR/tls/server.key'
log_timezone = 'UTC'
timezone = 'UTC'
EOF
}

# Role and databases are created only when missing, so every start can run this.
ensure_databases() {
  local db_list
  db_list="$(printf "'%s'," "${DATABASES[@]}")"
  db_list="${db_list%,}"
  psql_admin <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_ROLE') THEN
    CREATE ROLE $APP_ROLE LOGIN;
  END IF;
  -- The services' role, as on a real cluster: row-level security holds for it (no SUPERUSER, no
  -- BYPASSRLS). CREATEDB: tests create and drop throwaway databases. Set on every start, so a data
  -- folder made when this role was a superuser is brought in line.
  ALTER ROLE $APP_ROLE NOSUPERUSER NOBYPASSRLS CREATEDB;
END
\$\$;
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8''', d, '$APP_ROLE')
FROM unnest(ARRAY[$db_list]) AS d
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)
\gexec
SQL
}

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until is_ready; do
    if ! is_running; then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "server exited during startup; log: $LOG_FILE"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "not ready after ${READY_TIMEOUT}s; log: $LOG_FILE"
    fi
    sleep 0.25
  done
}

cmd_start() {
  local t0
  t0="$(now_ms)"
  ensure_os_user
  if is_running; then
    wait_ready
    # Settings that a reload applies (TLS among them) take effect without a restart.
    ensure_tls
    write_conf
    pg pg_ctl reload -D "$DATA_DIR" -s
    ensure_databases
    log "already running on 127.0.0.1:$PG_PORT"
    return 0
  fi
  port_open "$PG_PORT" && die "port $PG_PORT is already in use by another process (set CARELOOP_PG_PORT)"
  prepare_dirs
  init_cluster
  ensure_tls
  write_conf
  # pg_ctl detaches the postmaster into its own session; -w waits until it accepts connections.
  pg pg_ctl start -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$READY_TIMEOUT" -s \
    || { tail -n 40 "$LOG_FILE" >&2 || true; die "pg_ctl start failed; log: $LOG_FILE"; }
  wait_ready
  ensure_databases
  log "ready on 127.0.0.1:$PG_PORT in $(elapsed_since "$t0") (url postgresql://$APP_ROLE@127.0.0.1:$PG_PORT/<db>); log $LOG_FILE"
}

cmd_stop() {
  if ! is_running; then
    log "not running"
    return 0
  fi
  # fast = roll back open transactions and shut down cleanly (checkpoint), without waiting for clients.
  if pg pg_ctl stop -D "$DATA_DIR" -m fast -w -t "$STOP_TIMEOUT" -s; then
    log "stopped"
    return 0
  fi
  # A fast shutdown asked for while the server recovers from a crash of one of its processes was seen
  # to hang for good (2026-12-06: the startup process gone, the postmaster "shutting down" with only its
  # checkpointer left). Immediate ends every process at once; the next start replays the WAL, so nothing
  # committed is lost.
  log "fast shutdown did not finish in ${STOP_TIMEOUT}s; stopping immediately (the next start recovers)"
  pg pg_ctl stop -D "$DATA_DIR" -m immediate -w -t "$STOP_TIMEOUT" -s || die "pg_ctl stop failed; log: $LOG_FILE"
  log "stopped"
}

cmd_status() {
  if is_running && is_ready; then
    log "running on 127.0.0.1:$PG_PORT"
    return 0
  fi
  if is_running; then
    log "postmaster alive but not accepting connections (see $LOG_FILE)"
    return 1
  fi
  log "not running"
  return 3
}

cmd_clean() {
  cmd_stop
  rm -rf "$DATA_DIR" "$SOCK_DIR" "$LOG_FILE" "$PG_DIR/initdb.log"
  log "data removed ($DATA_DIR)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  clean) cmd_clean ;;
  ca-file) echo "$PG_DIR/tls/ca.crt" ;;  # the local CA, for clients that verify the server
  socket-dir) echo "$SOCK_DIR" ;;        # where clients on this machine reach it (infra.sh env)
  *)
    echo "usage: $0 start|stop|status|clean|ca-file|socket-dir" >&2
    exit 2
    ;;
esac
