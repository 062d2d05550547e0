# shellcheck shell=bash
# Shared helpers for the local Kafka scripts (kafka.sh, kafka-cluster.sh, kafka-secure.sh); sourced after
# _common.sh, never executed. What differs between the brokers (pid file, log, config, heap, ports) comes in
# as arguments.

KAFKA_SRC_DIR="$LOCAL_DIR/kafka"
# The jars kafka.sh fetches once with Maven; the cluster and the secure broker reuse them.
KAFKA_LIB_DIR="$RUN_DIR/kafka/lib"
KAFKA_READY_LINE='Kafka Server started'

# Serial GC + C1 only: least CPU and RSS on a 2-core box; throughput is irrelevant for tests.
KAFKA_JVM_COMMON=(-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)
# Tools log WARN to stderr so captured stdout (the cluster id) stays clean.
TOOL_OPTS=(-Xmx256m "${KAFKA_JVM_COMMON[@]}" "-Dlog4j2.configurationFile=$KAFKA_SRC_DIR/log4j2-tools.properties")
BROKER_OPTS=()

# Set BROKER_OPTS: $1 the maximum heap (e.g. 512m), $2 the log4j2 file name in deploy/local/kafka.
kafka_broker_opts() {
  # ExitOnOutOfMemoryError: die visibly instead of limping on with a broken broker.
  BROKER_OPTS=(-Xms128m "-Xmx$1" "${KAFKA_JVM_COMMON[@]}" -XX:+ExitOnOutOfMemoryError
    "-Dlog4j2.configurationFile=$KAFKA_SRC_DIR/$2")
}

kafka_need_java() { command -v java >/dev/null || die "java not found (Java 17+ required)"; }

kafka_need_jars() {
  [[ -f "$KAFKA_LIB_DIR/.complete" ]] \
    || die "no Kafka jars in $KAFKA_LIB_DIR: run 'deploy/local/kafka.sh start' (or 'make infra-up') once to fetch them"
}

# A random secret (32 hex digits) in file $1, readable by its owner only.
kafka_secret() { (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$1"); }

# Print the pid of the broker started with pid file $1 whose command line contains $2, if it is alive
# (the pid file first, then a scan in case the file was lost).
kafka_pid() {
  local file=$1 mark=$2 pid=""
  [[ -f "$file" ]] && pid="$(<"$file")"
  if pid_matches "$pid" "$mark"; then echo "$pid"; return 0; fi
  for pid in $(pgrep -f 'kafka\.Kafka' || true); do
    if pid_matches "$pid" "$mark"; then echo "$pid"; return 0; fi
  done
  return 1
}

# Write config $2 from template $1, replacing @NAME@ by value for each NAME=value argument, in order.
kafka_render() {
  local template=$1 conf=$2 pair text
  shift 2
  text="$(<"$template")"
  for pair in "$@"; do
    # Quoted replacements: bash 5.2's patsub_replacement would otherwise expand '&'.
    text="${text//"@${pair%%=*}@"/"${pair#*=}"}"
  done
  printf '%s\n' "$text" >"$conf.tmp"
  mv "$conf.tmp" "$conf"
}

# Kafka's StorageTool with the given arguments (random-uuid, format ...).
kafka_storage_tool() {
  # env -u COLUMNS: Kafka's tools misbehave with it set (Homebrew works around KAFKA-15413 the same way).
  env -u COLUMNS java "${TOOL_OPTS[@]}" -cp "$KAFKA_LIB_DIR/*" kafka.tools.StorageTool "$@"
}

kafka_valid_cluster_id() { [[ "$1" =~ ^[A-Za-z0-9_-]{22}$ ]]; }

# Format storage for config $2 with cluster id $1, the tool's output in $3; on failure show it and die with
# message $4. Further arguments go to the tool (--add-scram ...).
kafka_format() {
  local cluster_id=$1 conf=$2 out=$3 failure=$4
  shift 4
  # Static quorum (controller.quorum.voters) => format WITHOUT --standalone.
  kafka_storage_tool format -t "$cluster_id" -c "$conf" "$@" >"$out" 2>&1 \
    || { cat "$out" >&2; die "$failure"; }
}

# Start the broker for config $4 detached, named $3 (the process's $0), its pid in $1 and output in $2;
# die with message $5 if no pid shows up. Further arguments are extra JVM options.
# The inner bash writes its own pid and then becomes java via exec.
kafka_launch() {
  local pid_path=$1 log_path=$2 name=$3 conf=$4 failure=$5
  shift 5
  rm -f "$pid_path"
  # Keep the previous run's log for post-mortems; a fresh log also makes the ready-line check exact.
  [[ -f "$log_path" ]] && mv -f "$log_path" "$log_path.prev"
  # setsid: own session, so the broker survives the calling shell and its Ctrl-C/SIGHUP.
  # shellcheck disable=SC2016  # $$ and $@ must expand in the inner bash, not here
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' "$name" "$pid_path" \
    java "${BROKER_OPTS[@]}" "$@" -cp "$KAFKA_LIB_DIR/*" kafka.Kafka "$conf" \
    </dev/null >>"$log_path" 2>&1 &
  local _
  for _ in $(seq 1 50); do
    [[ -s "$pid_path" ]] && return 0
    sleep 0.1
  done
  die "$failure"
}

# True once log $1 holds the broker's ready line.
kafka_logged_ready() { grep -qF "$KAFKA_READY_LINE" "$1" 2>/dev/null; }

# Show the last $2 lines of log $1 and die with message $3.
kafka_startup_failed() {
  tail -n "$2" "$1" >&2 || true
  die "$3"
}

# Wait until pid $1 (its command line containing $2) has exited. Past $SECONDS deadline $3, log message
# $4 and SIGKILL it; false if it is still alive a second after that.
kafka_reap() {
  local pid=$1 mark=$2 deadline=$3 message=$4
  while pid_matches "$pid" "$mark"; do
    if ((SECONDS >= deadline)); then
      log "$message"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      ! pid_matches "$pid" "$mark"
      return
    fi
    sleep 0.25
  done
}
