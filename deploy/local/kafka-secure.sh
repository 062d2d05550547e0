#!/usr/bin/env bash
# A local single-node Apache Kafka 4.x broker (KRaft) secured like the Strimzi cluster the Helm chart asks
# for: SASL_SSL with SCRAM-SHA-512 on one listener, TLS with a required client certificate (mTLS) on
# another, ACLs enforced by the StandardAuthorizer. Beside the dev broker and the three-node cluster.
# Usage: deploy/local/kafka-secure.sh up|down|status|env|clean
#   up      make certificates and SCRAM users and format (first time), start the broker, wait until ready
#   down    stop it (SIGTERM, SIGKILL past the stop timeout); data and certificates are kept
#   env     the admin's variables (a super user over SASL_SSL), for eval "$(... env)"
#   clean   down, then delete the broker's data, certificates and passwords
# Users (each a SCRAM password and a client certificate CN=<user>): $CARELOOP_KAFKA_SECURE_USERS, default
# the chart's KafkaUser names for a release called careloop; fixed when the storage is first formatted.
# State in $RUN_DIR/kafka-secure: certs/ca.crt, certs/users/<user>/{password,user.crt,user.key,ca.crt}
# (the keys of Strimzi's user Secrets), admin-password. No ACL is made here: whoever runs it applies them.
set -euo pipefail

LOG_TAG=kafka-secure
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
# shellcheck source=deploy/local/_kafka.sh
source "$LOCAL_DIR/_kafka.sh"

SCRAM_PORT="${CARELOOP_KAFKA_SECURE_PORT:-29092}"
MTLS_PORT=$((SCRAM_PORT + 1))
CONTROLLER_PORT=$((SCRAM_PORT + 2))
READY_TIMEOUT="${CARELOOP_KAFKA_READY_TIMEOUT:-120}"
STOP_TIMEOUT="${CARELOOP_KAFKA_STOP_TIMEOUT:-20}"
ADMIN_USER="admin"
BROKER_CN=careloop-kafka-broker
read -r -a USERS <<<"${CARELOOP_KAFKA_SECURE_USERS:-careloop-intake careloop-careplan careloop-referral careloop-followup careloop-record}"
PYTHON_BIN="${PYTHON:-$REPO_ROOT/.venv/bin/python}"

HOME_DIR="$RUN_DIR/kafka-secure"
CERT_DIR="$HOME_DIR/certs"
DATA_DIR="$HOME_DIR/data"
CONF_FILE="$HOME_DIR/server.properties"
PID_FILE="$HOME_DIR/kafka.pid"
LOG_FILE="$HOME_DIR/kafka.log"
CMD_MARK="kafka.Kafka $CONF_FILE"

kafka_broker_opts 384m log4j2-secure.properties

broker_pid() { kafka_pid "$PID_FILE" "$CMD_MARK"; }

render_config() {
  kafka_render "$KAFKA_SRC_DIR/secure.properties.template" "$CONF_FILE" \
    "SCRAM_PORT=$SCRAM_PORT" "MTLS_PORT=$MTLS_PORT" "CONTROLLER_PORT=$CONTROLLER_PORT" "CERT_DIR=$CERT_DIR" \
    "DATA_DIR=$DATA_DIR" "ADMIN_USER=$ADMIN_USER" "BROKER_CN=$BROKER_CN"
}

# Certificates, passwords and formatted storage, once: SCRAM credentials go into the metadata log at
# format time, so every user can authenticate from the first start.
prepare() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local user scram=()
  "$PYTHON_BIN" -c 'import cryptography' 2>/dev/null \
    || die "$PYTHON_BIN cannot import cryptography (run 'make install', or set PYTHON)"
  rm -rf "$CERT_DIR" "$DATA_DIR"
  mkdir -p "$CERT_DIR" "$DATA_DIR"
  "$PYTHON_BIN" "$KAFKA_SRC_DIR/secure_certs.py" "$CERT_DIR" "${USERS[@]}" || die "certificates not made"
  kafka_secret "$HOME_DIR/admin-password"
  scram+=(--add-scram "SCRAM-SHA-512=[name=$ADMIN_USER,password=$(<"$HOME_DIR/admin-password")]")
  for user in "${USERS[@]}"; do
    [[ "$user" =~ ^[a-z0-9][a-z0-9.-]*$ ]] || die "unexpected user name '$user'"
    kafka_secret "$CERT_DIR/users/$user/password"
    scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(<"$CERT_DIR/users/$user/password")]")
  done
  local cluster_id
  cluster_id="$(kafka_storage_tool random-uuid)"
  kafka_valid_cluster_id "$cluster_id" || die "unexpected cluster id '$cluster_id'"
  kafka_format "$cluster_id" "$CONF_FILE" "$HOME_DIR/format.log" "storage format failed" "${scram[@]}"
  rm -f "$HOME_DIR/format.log" # it lists the users' salted SCRAM keys; kept only when formatting fails
}

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until kafka_logged_ready "$LOG_FILE" && port_open "$SCRAM_PORT" && port_open "$MTLS_PORT"; do
    broker_pid >/dev/null || kafka_startup_failed "$LOG_FILE" 40 "the broker exited during startup; log: $LOG_FILE"
    ((SECONDS < deadline)) || die "the broker is not ready after ${READY_TIMEOUT}s; log: $LOG_FILE"
    sleep 0.25
  done
}

cmd_up() {
  local t0 p
  t0="$(now_ms)"
  kafka_need_java
  kafka_need_jars
  if broker_pid >/dev/null; then
    log "already running: SASL_SSL 127.0.0.1:$SCRAM_PORT, mTLS 127.0.0.1:$MTLS_PORT"
    return 0
  fi
  for p in "$SCRAM_PORT" "$MTLS_PORT" "$CONTROLLER_PORT"; do
    port_open "$p" && die "port $p is in use by another process (set CARELOOP_KAFKA_SECURE_PORT)"
  done
  mkdir -p "$HOME_DIR"
  render_config
  prepare
  kafka_launch "$PID_FILE" "$LOG_FILE" careloop-kafka-secure "$CONF_FILE" "the broker did not write its pid file"
  wait_ready
  log "ready: SASL_SSL/SCRAM-SHA-512 127.0.0.1:$SCRAM_PORT, mTLS 127.0.0.1:$MTLS_PORT in $(elapsed_since "$t0")"
}

cmd_down() {
  local pid deadline
  pid="$(broker_pid)" || { log "not running"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  until kafka_reap "$pid" "$CMD_MARK" "$deadline" "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"; do :; done
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  pid="$(broker_pid)" || { log "not running"; return 3; }
  port_open "$SCRAM_PORT" || { log "process $pid alive, port $SCRAM_PORT not answering"; return 1; }
  log "running (pid $pid): SASL_SSL 127.0.0.1:$SCRAM_PORT, mTLS 127.0.0.1:$MTLS_PORT"
}

cmd_env() {
  [[ -s "$HOME_DIR/admin-password" ]] || die "never started: run '$0 up' first"
  printf 'export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$SCRAM_PORT"
  printf 'export CARELOOP_KAFKA_SECURITY_PROTOCOL=SASL_SSL\n'
  printf 'export CARELOOP_KAFKA_SASL_MECHANISM=SCRAM-SHA-512\n'
  printf 'export CARELOOP_KAFKA_SASL_USERNAME=%q\n' "$ADMIN_USER"
  printf 'export CARELOOP_KAFKA_SASL_PASSWORD=%q\n' "$(<"$HOME_DIR/admin-password")"
  printf 'export CARELOOP_KAFKA_SSL_CA_FILE=%q\n' "$CERT_DIR/ca.crt"
  # Not settings: where the users' files and the mTLS listener are.
  printf 'export CARELOOP_KAFKA_SECURE_USERS_DIR=%q\n' "$CERT_DIR/users"
  printf 'export CARELOOP_KAFKA_SECURE_MTLS_BOOTSTRAP=127.0.0.1:%s\n' "$MTLS_PORT"
}

cmd_clean() {
  cmd_down
  rm -rf "$HOME_DIR"
  log "data and certificates removed ($HOME_DIR)"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  clean) cmd_clean ;;
  *)
    echo "usage: $0 up|down|status|env|clean" >&2
    exit 2
    ;;
esac
