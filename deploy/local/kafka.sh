#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x (KRaft, broker+controller in one JVM) for careloop dev and tests.
# Usage: deploy/local/kafka.sh start|stop|status|clean
# Jars come from Maven Central via deploy/local/kafka/pom.xml; all state lives in $RUN_DIR/kafka.
set -euo pipefail

LOG_TAG=kafka
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

KAFKA_PORT="${CARELOOP_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${CARELOOP_KAFKA_CONTROLLER_PORT:-9093}"
READY_TIMEOUT="${CARELOOP_KAFKA_READY_TIMEOUT:-120}"
STOP_TIMEOUT="${CARELOOP_KAFKA_STOP_TIMEOUT:-60}"

SRC_DIR="$LOCAL_DIR/kafka"
POM="$SRC_DIR/pom.xml"
KAFKA_HOME="$RUN_DIR/kafka"
LIB_DIR="$KAFKA_HOME/lib"
DATA_DIR="$KAFKA_HOME/data"
CONF_FILE="$KAFKA_HOME/server.properties"
PID_FILE="$KAFKA_HOME/kafka.pid"
LOG_FILE="$KAFKA_HOME/kafka.log"
READY_LINE='Kafka Server started'
# Unique enough to identify our broker among other JVMs on the box.
CMD_MARK="kafka.Kafka $CONF_FILE"

# Serial GC + C1 only: least CPU and RSS on a 2-core box; throughput is irrelevant for tests.
JVM_COMMON=(-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)
# Tools log WARN to stderr so captured stdout (the cluster id) stays clean.
TOOL_OPTS=(-Xmx256m "${JVM_COMMON[@]}" "-Dlog4j2.configurationFile=$SRC_DIR/log4j2-tools.properties")
# ExitOnOutOfMemoryError: die visibly instead of limping on with a broken broker.
BROKER_OPTS=(-Xms128m -Xmx512m "${JVM_COMMON[@]}" -XX:+ExitOnOutOfMemoryError
  "-Dlog4j2.configurationFile=$SRC_DIR/log4j2-broker.properties")
# Optional extra JVM flags for experiments (word-split on purpose).
read -r -a EXTRA_OPTS <<<"${CARELOOP_KAFKA_JVM_OPTS:-}"

# Print the pid of our broker if it is alive (pid file first, then a scan in case the file was lost).
broker_pid() {
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(<"$PID_FILE")"
  if pid_matches "$pid" "$CMD_MARK"; then echo "$pid"; return 0; fi
  for pid in $(pgrep -f 'kafka\.Kafka' || true); do
    if pid_matches "$pid" "$CMD_MARK"; then echo "$pid"; return 0; fi
  done
  return 1
}

# Download the jars once; the stamp ties lib/ to the exact pom.xml that produced it.
fetch_jars() {
  local stamp t0
  stamp="$(sha256sum <"$POM" | cut -d' ' -f1)"
  if [[ -f "$LIB_DIR/.complete" && "$(<"$LIB_DIR/.complete")" == "$stamp" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  t0="$(now_ms)"
  log "fetching Kafka jars with Maven into $LIB_DIR (first run only)"
  # Copy into a temp dir and rename, so an interrupted fetch never looks complete.
  rm -rf "$LIB_DIR.tmp"
  mkdir -p "$KAFKA_HOME"
  # Output goes to a file (Maven 3.8 -q still prints colour codes); shown only on failure.
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    "-Dkafka.lib.dir=$LIB_DIR.tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
    tail -n 40 "$KAFKA_HOME/mvn.log" >&2 || true
    die "mvn dependency:copy-dependencies failed; full output in $KAFKA_HOME/mvn.log"
  fi
  # Without the slf4j 1.x binding the broker runs silently and never logs the ready line.
  local want
  for want in kafka_2.13- kafka-clients- kafka-server- log4j-core- log4j-slf4j-impl- slf4j-api-1.; do
    compgen -G "$LIB_DIR.tmp/$want*.jar" >/dev/null || die "jar $want* missing after Maven fetch"
  done
  if compgen -G "$LIB_DIR.tmp/slf4j-api-2.*.jar" >/dev/null \
    || compgen -G "$LIB_DIR.tmp/log4j-slf4j2-impl-*.jar" >/dev/null; then
    die "slf4j 2.x jars on the classpath; Kafka 4.x needs slf4j 1.7 + log4j-slf4j-impl"
  fi
  echo "$stamp" >"$LIB_DIR.tmp/.complete"
  rm -rf "$LIB_DIR"
  mv "$LIB_DIR.tmp" "$LIB_DIR"
  log "jars ready ($(find "$LIB_DIR" -name '*.jar' | wc -l) jars) in $(elapsed_since "$t0")"
}

# Write server.properties with absolute paths and the configured ports (rendered on every start).
render_config() {
  local text
  text="$(<"$SRC_DIR/server.properties.template")"
  # Quoted replacements: bash 5.2's patsub_replacement would otherwise expand '&'.
  text="${text//@KAFKA_PORT@/"$KAFKA_PORT"}"
  text="${text//@CONTROLLER_PORT@/"$CONTROLLER_PORT"}"
  text="${text//@DATA_DIR@/"$DATA_DIR"}"
  printf '%s\n' "$text" >"$CONF_FILE.tmp"
  mv "$CONF_FILE.tmp" "$CONF_FILE"
}

# Format once; meta.properties marks a formatted dir, so topics and offsets survive restarts.
format_storage() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local cluster_id
  mkdir -p "$DATA_DIR"
  # env -u COLUMNS: Kafka's tools misbehave with it set (Homebrew works around KAFKA-15413 the same way).
  cluster_id="$(env -u COLUMNS java "${TOOL_OPTS[@]}" -cp "$LIB_DIR/*" kafka.tools.StorageTool random-uuid)"
  [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "unexpected cluster id from StorageTool: $cluster_id"
  log "formatting $DATA_DIR (cluster id $cluster_id)"
  # Static quorum (controller.quorum.voters) => format WITHOUT --standalone.
  env -u COLUMNS java "${TOOL_OPTS[@]}" -cp "$LIB_DIR/*" kafka.tools.StorageTool \
    format -t "$cluster_id" -c "$CONF_FILE" >"$KAFKA_HOME/format.log" 2>&1 \
    || { cat "$KAFKA_HOME/format.log" >&2; die "storage format failed"; }
}

# Start the JVM detached; the inner bash writes its own pid and then becomes java via exec.
launch() {
  rm -f "$PID_FILE"
  # Keep the previous run's log for post-mortems; a fresh log also makes the ready-line check exact.
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
  # setsid: own session, so the broker survives the calling shell and its Ctrl-C/SIGHUP.
  # shellcheck disable=SC2016  # $$ and $@ must expand in the inner bash, not here
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' careloop-kafka "$PID_FILE" \
    java "${BROKER_OPTS[@]}" "${EXTRA_OPTS[@]}" -cp "$LIB_DIR/*" kafka.Kafka "$CONF_FILE" \
    </dev/null >>"$LOG_FILE" 2>&1 &
  local _
  for _ in $(seq 1 50); do
    [[ -s "$PID_FILE" ]] && return 0
    sleep 0.1
  done
  die "broker did not write its pid file $PID_FILE"
}

# Ready = JVM alive, our ready line in the log, and the client port accepting connections.
wait_ready() {
  local pid deadline=$((SECONDS + READY_TIMEOUT))
  pid="$(<"$PID_FILE")"
  while :; do
    if ! pid_matches "$pid" "$CMD_MARK"; then
      tail -n 60 "$LOG_FILE" >&2 || true
      die "broker JVM (pid $pid) exited during startup; log: $LOG_FILE"
    fi
    if grep -qF "$READY_LINE" "$LOG_FILE" && port_open "$KAFKA_PORT"; then
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
  command -v java >/dev/null || die "java not found (Java 17+ required)"
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
  local pid deadline
  if ! pid="$(broker_pid)"; then
    log "not running"
    rm -f "$PID_FILE"
    return 0
  fi
  log "stopping broker (pid $pid)"
  # SIGTERM runs Kafka's controlled shutdown, which flushes logs and closes segments cleanly.
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while pid_matches "$pid" "$CMD_MARK"; do
    if ((SECONDS >= deadline)); then
      log "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.25
  done
  pid_matches "$pid" "$CMD_MARK" && die "broker pid $pid survived SIGKILL"
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
  log "data removed ($DATA_DIR); jars kept in $LIB_DIR"
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
