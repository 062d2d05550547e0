#!/usr/bin/env bash
# A local three-node Apache Kafka 4.x cluster (KRaft, each JVM broker+controller) with SASL/SCRAM-SHA-512
# for clients: what a Strimzi cluster gives careloop, on one machine, beside the single dev broker.
# Usage: deploy/local/kafka-cluster.sh up|down|status|env|clean|kill <node>
#   up      format (first time) and start every node that is not running; wait until all are ready
#   down    stop every node (SIGTERM, SIGKILL past the stop timeout); data is kept
#   env     the variables a service needs to use the cluster (eval "$(... env)")
#   clean   down, then delete the cluster's data (the jars are kept)
#   kill N  SIGKILL node N (1-3), as a crash would; `up` starts it again
# Jars: the ones deploy/local/kafka.sh fetched ($RUN_DIR/kafka/lib); state in $RUN_DIR/kafka-cluster.
set -euo pipefail

LOG_TAG=kafka-cluster
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
# shellcheck source=deploy/local/_kafka.sh
source "$LOCAL_DIR/_kafka.sh"

NODES=(1 2 3)
CLIENT_BASE="${CARELOOP_KAFKA_CLUSTER_PORT:-19092}"
CONTROLLER_BASE="${CARELOOP_KAFKA_CLUSTER_CONTROLLER_PORT:-19192}"
INTERNAL_BASE="${CARELOOP_KAFKA_CLUSTER_INTERNAL_PORT:-19292}"
READY_TIMEOUT="${CARELOOP_KAFKA_READY_TIMEOUT:-180}"
STOP_TIMEOUT="${CARELOOP_KAFKA_STOP_TIMEOUT:-30}"
SASL_USER=careloop

HOME_DIR="$RUN_DIR/kafka-cluster"
PASSWORD_FILE="$HOME_DIR/sasl-password"
CLUSTER_ID_FILE="$HOME_DIR/cluster-id"

# Three of these share two cores and 24 GiB with everything else: modest heaps.
kafka_broker_opts 384m log4j2-broker.properties

client_port() { echo $((CLIENT_BASE + $1 - 1)); }
controller_port() { echo $((CONTROLLER_BASE + $1 - 1)); }
internal_port() { echo $((INTERNAL_BASE + $1 - 1)); }
node_dir() { echo "$HOME_DIR/node-$1"; }
conf_file() { echo "$(node_dir "$1")/server.properties"; }
pid_file() { echo "$(node_dir "$1")/kafka.pid"; }
log_file() { echo "$(node_dir "$1")/kafka.log"; }
# Unique to this node among the JVMs on the box (the single broker's config lives elsewhere).
cmd_mark() { echo "kafka.Kafka $(conf_file "$1")"; }

bootstrap() {
  local n out=""
  for n in "${NODES[@]}"; do out+="${out:+,}127.0.0.1:$(client_port "$n")"; done
  echo "$out"
}

node_pid() { kafka_pid "$(pid_file "$1")" "$(cmd_mark "$1")"; }

render_config() {
  local n=$1 voters="" v
  for v in "${NODES[@]}"; do voters+="${voters:+,}$v@127.0.0.1:$(controller_port "$v")"; done
  mkdir -p "$(node_dir "$n")"
  kafka_render "$KAFKA_SRC_DIR/cluster-node.properties.template" "$(conf_file "$n")" \
    "NODE_ID=$n" "VOTERS=$voters" "CLIENT_PORT=$(client_port "$n")" "INTERNAL_PORT=$(internal_port "$n")" \
    "CONTROLLER_PORT=$(controller_port "$n")" "DATA_DIR=$(node_dir "$n")/data"
}

# One cluster id and one SCRAM user for all three; each node's storage is formatted once.
format_storage() {
  local n=$1 data
  data="$(node_dir "$n")/data"
  [[ -f "$data/meta.properties" ]] && return 0
  [[ -s "$CLUSTER_ID_FILE" ]] || kafka_storage_tool random-uuid >"$CLUSTER_ID_FILE"
  [[ -s "$PASSWORD_FILE" ]] || kafka_secret "$PASSWORD_FILE"
  local cluster_id password
  cluster_id="$(<"$CLUSTER_ID_FILE")"
  password="$(<"$PASSWORD_FILE")"
  kafka_valid_cluster_id "$cluster_id" || die "unexpected cluster id in $CLUSTER_ID_FILE"
  mkdir -p "$data"
  # The SCRAM credentials go into the metadata log at format time, so clients can authenticate from the
  # first start.
  kafka_format "$cluster_id" "$(conf_file "$n")" "$(node_dir "$n")/format.log" "storage format of node $n failed" \
    --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$password]"
}

launch() {
  kafka_launch "$(pid_file "$1")" "$(log_file "$1")" "careloop-kafka-node-$1" "$(conf_file "$1")" \
    "node $1 did not write its pid file"
}

node_ready() { kafka_logged_ready "$(log_file "$1")" && port_open "$(client_port "$1")"; }

# Every node alive, its ready line logged and its client port open; a node that dies fails at once.
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) n waiting
  while :; do
    waiting=0
    for n in "${NODES[@]}"; do
      node_pid "$n" >/dev/null \
        || kafka_startup_failed "$(log_file "$n")" 40 "node $n exited during startup; log: $(log_file "$n")"
      node_ready "$n" || waiting=1
    done
    ((waiting == 0)) && return 0
    if ((SECONDS >= deadline)); then
      for n in "${NODES[@]}"; do node_ready "$n" || log "node $n not ready; log: $(log_file "$n")"; done
      die "cluster not ready after ${READY_TIMEOUT}s"
    fi
    sleep 0.25
  done
}

cmd_up() {
  local t0 n p started=()
  t0="$(now_ms)"
  kafka_need_java
  kafka_need_jars
  mkdir -p "$HOME_DIR"
  for n in "${NODES[@]}"; do
    node_pid "$n" >/dev/null && continue
    for p in "$(client_port "$n")" "$(controller_port "$n")" "$(internal_port "$n")"; do
      port_open "$p" && die "port $p (node $n) is in use by another process (set CARELOOP_KAFKA_CLUSTER_*PORT)"
    done
    render_config "$n"
    format_storage "$n"
    launch "$n"
    started+=("$n")
  done
  wait_ready
  log "ready: $(bootstrap) (started node(s) ${started[*]:-none}) in $(elapsed_since "$t0")"
}

stop_nodes() {
  local signal=$1 n pid deadline pids=()
  for n in "${NODES[@]}"; do
    pid="$(node_pid "$n")" || continue
    kill "-$signal" "$pid" 2>/dev/null || true
    pids+=("$n:$pid")
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for entry in "${pids[@]}"; do
    n="${entry%%:*}" pid="${entry#*:}"
    until kafka_reap "$pid" "$(cmd_mark "$n")" "$deadline" "node $n still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    do :; done
    rm -f "$(pid_file "$n")"
  done
}

cmd_down() {
  # All at once: stopped one by one, the last ones wait for a quorum that is already gone.
  stop_nodes TERM
  log "stopped"
}

cmd_kill() {
  local n=${1:-} pid
  [[ " ${NODES[*]} " == *" $n "* ]] || die "usage: $0 kill <node: ${NODES[*]}>"
  pid="$(node_pid "$n")" || die "node $n is not running"
  kill -KILL "$pid"
  while pid_matches "$pid" "$(cmd_mark "$n")"; do sleep 0.1; done
  log "node $n (pid $pid) killed"
}

cmd_status() {
  local n pid rc=0
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")"; then
      if port_open "$(client_port "$n")"; then
        log "node $n running (pid $pid) on 127.0.0.1:$(client_port "$n")"
      else
        log "node $n: process $pid alive, port $(client_port "$n") not answering"
        rc=1
      fi
    else
      log "node $n not running"
      rc=3
    fi
  done
  return "$rc"
}

cmd_env() {
  [[ -s "$PASSWORD_FILE" ]] || die "the cluster was never formatted: run '$0 up' first"
  printf 'export KAFKA_BOOTSTRAP_SERVERS=%s\n' "$(bootstrap)"
  printf 'export CARELOOP_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT\n'
  printf 'export CARELOOP_KAFKA_SASL_MECHANISM=SCRAM-SHA-512\n'
  printf 'export CARELOOP_KAFKA_SASL_USERNAME=%q\n' "$SASL_USER"
  printf 'export CARELOOP_KAFKA_SASL_PASSWORD=%q\n' "$(<"$PASSWORD_FILE")"
  printf 'export CARELOOP_TOPIC_REPLICATION_FACTOR=3\n'
  printf 'export CARELOOP_TOPIC_MIN_INSYNC_REPLICAS=2\n'
}

cmd_clean() {
  stop_nodes TERM
  rm -rf "$HOME_DIR"
  log "data removed ($HOME_DIR)"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  clean) cmd_clean ;;
  kill) cmd_kill "${2:-}" ;;
  *)
    echo "usage: $0 up|down|status|env|clean|kill <node>" >&2
    exit 2
    ;;
esac
