#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x (KRaft, broker+controller in one JVM) for careloop dev and tests.
# Usage: deploy/local/kafka.sh start|stop|status|clean
# Jars come from Maven Central via deploy/local/kafka/pom.xml; all state lives in $RUN_DIR/kafka.
set -euo pipefail

LOG_TAG=kafka
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
# shellcheck source=deploy/local/_kafka.sh
source "$LOCAL_DIR/_kafka.sh"

KAFKA_PORT="${CARELOOP_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${CARELOOP_KAFKA_CONTROLLER_PORT:-9093}"
READY_TIMEOUT="${CARELOOP_KAFKA_READY_TIMEOUT:-120}"
STOP_TIMEOUT="${CARELOOP_KAFKA_STOP_TIMEOUT:-60}"

POM="$KAFKA_SRC_DIR/pom.xml"
KAFKA_HOME="$RUN_DIR/kafka"
DATA_DIR="$KAFKA_HOME/data"
CONF_FILE="$KAFKA_HOME/server.properties"
PID_FILE="$KAFKA_HOME/kafka.pid"
LOG_FILE="$KAFKA_HOME/kafka.log"
# Unique enough to identify our broker among other JVMs on the box.
CMD_MARK="kafka.Kafka $CONF_FILE"

kafka_broker_opts 512m log4j2-broker.properties
# Optional extra JVM flags for experiments (word-split on purpose).
read -r -a EXTRA_OPTS <<<"${CARELOOP_KAFKA_JVM_OPTS:-}"

# Print the pid of our broker if it is alive (pid file first, then a scan in case the file was lost).
broker_pid() { kafka_pid "$PID_FILE" "$CMD_MARK"; }

# Download the jars once; the stamp ties lib/ to the exact pom.xml that produced it.
fetch_jars() {
  local stamp t0
  stamp="$(sha256sum <"$POM" | cut -d' ' -f1)"
  if [[ -f "$KAFKA_LIB_DIR/.complete" && "$(<"$KAFKA_LIB_DIR/.complete")" == "$stamp" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  t0="$(now_ms)"
  log "fetching Kafka jars with Maven into $KAFKA_LIB_DIR (first run only)"
  # Copy into a temp dir and rename, so an interrupted fetch never looks complete.
  rm -rf "$KAFKA_LIB_DIR.tmp"
  mkdir -p "$KAFKA_HOME"
  # Output goes to a file (Maven 3.8 -q still prints colour codes); shown only on failure.
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    "-Dkafka.lib.dir=$KAFKA_LIB_DIR.tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
    tail -n 40 "$KAFKA_HOME/mvn.log" >&2 || true
    die "mvn dependency:copy-dependencies failed; full output in $KAFKA_HOME/mvn.log"
  fi
  # Without the slf4j 1.x binding the broker runs silently and never logs the ready line.
  local want
  for want in kafka_2.13- kafka-clients- kafka-server- log4j-core- log4j-slf4j-impl- slf4j-api-1.; do
    compgen -G "$KAFKA_LIB_DIR.tmp/$want*.jar" >/dev/null || die "jar $want* missing after Maven fetch"
  done
  if compgen -G "$KAFKA_LIB_DIR.tmp/slf4j-api-2.*.jar" >/dev/null \
    || compgen -G "$KAFKA_LIB_DIR.tmp/log4j-slf4j2-impl-*.jar" >/dev/null; then
    die "slf4j 2.x jars on the classpath; Kafka 4.x needs slf4j 1.7 + log4j-slf4j-impl"
  fi
  echo "$stamp" >"$KAFKA_LIB_DIR.tmp/.complete"
  rm -rf "$KAFKA_LIB_DIR"
  mv "$KAFKA_LIB_DIR.tmp" "$KAFKA_LIB_DIR"
  log "jars ready ($(find "$KAFKA_LIB_DIR" -name '*.jar' | wc -l) jars) in $(elapsed_since "$t0")"
}

# Write server.properties with absolute paths and the configured ports (rendered on every start).
render_config() {
  kafka_render "$KAFKA_SRC_DIR/server.properties.template" "$CONF_FILE" \
    "KAFKA_PORT=$KAFKA_PORT" "CONTROLLER_PORT=$CONTROLLER_PORT" "DATA_DIR=$DATA_DIR"
}

# Format once; meta.properties marks a formatted dir, so topics and offsets survive restarts.
format_storage() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local cluster_id
  mkdir -p "$DATA_DIR"
  cluster_id="$(kafka_storage_tool random-uuid)"
  kafka_valid_cluster_id "$cluster_id" || die "unexpected cluster id from StorageTool: $cluster_id"
  log "formatting $DATA_DIR (cluster id $cluster_id)"
  kafka_format "$cluster_id" "$CONF_FILE" "$KAFKA_HOME/format.log" "storage format failed"
}

# Start the JVM detached.
launch() {
  kafka_launch "$PID_FILE" "$LOG_FILE" careloop-kafka "$CONF_FILE" \
    "broker did not write its pid file $PID_FILE" "${EXTRA_OPTS[@]}"
}

# Ready = JVM alive, our ready line in the log, and the client port accepting connections.
wait_ready() {
  local pid deadline=$((SECONDS + READY_TIMEOUT))
  pid="$(<"$PID_FILE")"
  while :; do
    pid_matches "$pid" "$CMD_MARK" \
      || kafka_startup_failed "$LOG_FILE" 60 "broker JVM (pid $pid) exited during startup; log: $LOG_FILE"
    if kafka_logged_ready "$LOG_FILE" && port_open "$KAFKA_PORT"; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      tail -n 60 "$LOG_FILE" >&2 || true
      log "not ready after ${READY_TIMEOUT}s; stopping it"
      cmd_stop
      die "broker did not become ready; log: $LOG_FILE"
    fi
    sleep 0.25
  done
}

cmd_start() {
  local t0 t_jvm pid
  t0="$(now_ms)"
  if pid="$(broker_pid)"; then
    if port_open "$KAFKA_PORT"; then
      log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    # Alive but not answering yet: another start is in progress, so just wait for it.
    log "broker pid $pid is starting; waiting"
    echo "$pid" >"$PID_FILE"
    wait_ready
    log "ready on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  local p
  for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    port_open "$p" && die "port $p is already in use by another process (set CARELOOP_KAFKA_PORT / CARELOOP_KAFKA_CONTROLLER_PORT)"
  done
  kafka_need_java
  mkdir -p "$KAFKA_HOME"
  fetch_jars
  render_config
  format_storage
  t_jvm="$(now_ms)"
  launch
  wait_ready
  log "ready on 127.0.0.1:$KAFKA_PORT (pid $(<"$PID_FILE")): JVM start to ready $(elapsed_since "$t_jvm"), total $(elapsed_since "$t0"); log $LOG_FILE"
}

cmd_stop() {
  local pid
  if ! pid="$(broker_pid)"; then
    log "not running"
    rm -f "$PID_FILE"
    return 0
  fi
  log "stopping broker (pid $pid)"
  # SIGTERM runs Kafka's controlled shutdown, which flushes logs and closes segments cleanly.
  kill -TERM "$pid" 2>/dev/null || true
  kafka_reap "$pid" "$CMD_MARK" $((SECONDS + STOP_TIMEOUT)) "still alive after ${STOP_TIMEOUT}s; sending SIGKILL" \
    || die "broker pid $pid survived SIGKILL"
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if pid="$(broker_pid)"; then
    if port_open "$KAFKA_PORT"; then
      log "running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    log "process $pid alive but port $KAFKA_PORT not answering (starting or broken; see $LOG_FILE)"
    return 1
  fi
  log "not running"
  return 3
}

# Delete broker data and logs, keep the downloaded jars.
cmd_clean() {
  cmd_stop
  rm -rf "$DATA_DIR" "$CONF_FILE" "$LOG_FILE" "$LOG_FILE.prev" "$KAFKA_HOME/format.log" "$PID_FILE"
  log "data removed ($DATA_DIR); jars kept in $KAFKA_LIB_DIR"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  clean) cmd_clean ;;
  *)
    echo "usage: $0 start|stop|status|clean" >&2
    exit 2
    ;;
esac
