#!/usr/bin/env bash
# Run the whole platform on this machine: infrastructure (unless provided), the five services and the
# workspace (the web application over them).
# Ctrl-C stops the services, then the local infrastructure this script started (infrastructure that was
# running before it, from `make infra-up` or another run, is left running).
# It supervises what it runs, as Kubernetes would: a service that exits (a crash, SIGKILL, out of
# memory) is started again after a backoff (1 s, doubling up to 30 s; back to 1 s once it stayed up a
# minute), and each restart is reported here and in .run/restarts.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${CARELOOP_RUN_DIR:-$ROOT/.run}"
LOG_DIR="$RUN_DIR/logs"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SERVICES=(intake careplan referral followup record)
declare -A PORTS=([intake]="${INTAKE_PORT:-8001}" [careplan]="${CAREPLAN_PORT:-8002}"
                  [referral]="${REFERRAL_PORT:-8003}" [followup]="${FOLLOWUP_PORT:-8004}"
                  [record]="${RECORD_PORT:-8005}")
WORKSPACE_PORT="${WORKSPACE_PORT:-8000}"
declare -A PID_OF=() STARTED_AT=() RESTARTS=() BACKOFF=()
STOPPING=0

stop_all() {
  trap - INT TERM EXIT
  STOPPING=1
  echo
  echo "[up] stopping services..."
  local pids=("${PID_OF[@]}")
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if ((OWN_INFRA)); then
    "$ROOT/deploy/local/infra.sh" down
    echo "[up] everything stopped."
  else
    echo "[up] services stopped; Kafka and PostgreSQL were running before and keep running."
  fi
}

LOG_TAG=up
# shellcheck source=deploy/local/_common.sh
source "$ROOT/deploy/local/_common.sh"
# Who listens on a port, if this user may know: "pid 123 (python -m intake)".
holder_of() {
  local pid
  pid="$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)"
  [[ -n "$pid" ]] || return 0
  echo " by pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80))"
}

# A platform already listening here (another `make up`) is left alone: nothing is started or stopped.
for svc in "${SERVICES[@]}" workspace; do
  port="${PORTS[$svc]:-$WORKSPACE_PORT}"
  if port_open "$port"; then
    echo "[up] port $port ($svc) is already in use$(holder_of "$port"): is careloop already running" \
      "(make up in another terminal)? Stop that one first, or give this one other ports (${svc^^}_PORT)." \
      "Nothing was started or stopped." >&2
    exit 1
  fi
done
OWN_INFRA=1
if "$ROOT/deploy/local/infra.sh" status >/dev/null 2>&1; then
  OWN_INFRA=0
fi
"$ROOT/deploy/local/infra.sh" up
eval "$("$ROOT/deploy/local/infra.sh" env)"
trap stop_all EXIT
trap 'stop_all; exit 0' INT TERM

mkdir -p "$LOG_DIR"
RESTART_LOG="$RUN_DIR/restarts.log"
for svc in "${SERVICES[@]}"; do
  # The workspace calls each service where it listens.
  export "WORKSPACE_${svc^^}_URL=http://127.0.0.1:${PORTS[$svc]}"
done

launch() {
  local svc=$1
  # One process per service: a static member of its consumer group, so one started again takes its
  # partitions back at once instead of after the session timeout.
  env "${svc^^}_PORT=${PORTS[$svc]:-$WORKSPACE_PORT}" "${svc^^}_GROUP_INSTANCE_ID=${svc}-local" \
    "CARELOOP_INTAKE_URL=${CARELOOP_INTAKE_URL:-http://127.0.0.1:${PORTS[intake]}}" \
    "$PYTHON" -m "$svc" >>"$LOG_DIR/$svc.log" 2>&1 &
  PID_OF[$svc]=$!
  STARTED_AT[$svc]=$SECONDS
}

# How a process ended, from its wait status: "exit code 1" or "signal KILL".
ending() {
  if (($1 > 128)); then echo "signal $(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"; else echo "exit code $1"; fi
}

# One pass of the supervisor: every service that has exited is started again once its backoff is over.
declare -A DUE_AT=()
supervise() {
  local svc pid code uptime delay
  for svc in "${!PID_OF[@]}"; do
    pid=${PID_OF[$svc]}
    if [[ -n "$pid" ]]; then
      kill -0 "$pid" 2>/dev/null && continue
      code=0
      wait "$pid" 2>/dev/null || code=$?
      ((STOPPING)) && return
      uptime=$((SECONDS - STARTED_AT[$svc]))
      # A service that stayed up a minute starts over at 1 s; one that keeps dying waits longer each time.
      if ((uptime >= 60)); then BACKOFF[$svc]=1; else BACKOFF[$svc]=$((${BACKOFF[$svc]:-0} ? BACKOFF[$svc] * 2 : 1)); fi
      ((BACKOFF[$svc] > 30)) && BACKOFF[$svc]=30
      delay=${BACKOFF[$svc]}
      RESTARTS[$svc]=$((${RESTARTS[$svc]:-0} + 1))
      PID_OF[$svc]=""
      DUE_AT[$svc]=$((SECONDS + delay))
      echo "[up] $svc stopped ($(ending "$code")) after ${uptime}s; restart ${RESTARTS[$svc]} in ${delay}s; log $LOG_DIR/$svc.log" |
        tee -a "$RESTART_LOG" >&2
    elif ((SECONDS >= DUE_AT[$svc])); then
      launch "$svc"
      echo "[up] $svc started again (pid ${PID_OF[$svc]})" | tee -a "$RESTART_LOG" >&2
    fi
  done
}

for svc in "${SERVICES[@]}" workspace; do launch "$svc"; done

deadline=$((SECONDS + 90))
for svc in "${SERVICES[@]}" workspace; do
  port="${PORTS[$svc]:-$WORKSPACE_PORT}"
  until curl -fsS "http://127.0.0.1:${port}/readyz" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "[up] $svc did not become ready; last log lines:" >&2
      tail -n 30 "$LOG_DIR/$svc.log" >&2
      exit 1
    fi
    sleep 0.3
  done
done

for svc in "${SERVICES[@]}"; do export "CARELOOP_$(echo "$svc" | tr '[:lower:]' '[:upper:]')_URL=http://127.0.0.1:${PORTS[$svc]}"; done
if [[ "${CARELOOP_DEMO:-1}" != "0" ]]; then
  "$ROOT/.venv/bin/careloop" demo || echo "[up] the demo caseload did not load completely; the platform runs on" >&2
fi

TOKEN="$("$ROOT/.venv/bin/careloop" token --agency agency-riverside)"
DEMO_PEOPLE="$("$PYTHON" -m workspace.demo)"
cat <<MSG

careloop is running. Logs: $LOG_DIR/<service>.log

The workspace (the web application): http://127.0.0.1:${WORKSPACE_PORT}/
  Sign in there as one of the demo people (development sign-in, on this machine only):
$DEMO_PEOPLE

  API docs (OpenAPI)           event docs (AsyncAPI, generated by FastStream)
  intake    http://127.0.0.1:${PORTS[intake]}/docs     http://127.0.0.1:${PORTS[intake]}/asyncapi
  careplan  http://127.0.0.1:${PORTS[careplan]}/docs     http://127.0.0.1:${PORTS[careplan]}/asyncapi
  referral  http://127.0.0.1:${PORTS[referral]}/docs     http://127.0.0.1:${PORTS[referral]}/asyncapi
  followup  http://127.0.0.1:${PORTS[followup]}/docs     http://127.0.0.1:${PORTS[followup]}/asyncapi
  record    http://127.0.0.1:${PORTS[record]}/docs     http://127.0.0.1:${PORTS[record]}/asyncapi
  Event schemas for analytics: shared/careloop_shared/schemas/*.json

Development token (agency-riverside, care-manager):
  export TOKEN=$TOKEN

Try it (the demo agencies are agency-riverside, agency-northgate and agency-harbor):
  .venv/bin/careloop patients --agency agency-riverside
  .venv/bin/careloop timeline <patient-id> --agency agency-riverside
  .venv/bin/careloop referrals <patient-id> --agency agency-riverside
  .venv/bin/careloop due --agency agency-riverside
  .venv/bin/careloop verify <patient-id> --agency agency-riverside
  .venv/bin/careloop tasks --agency agency-riverside --as cm-riverside-ana      # her open tasks
  .venv/bin/careloop caseload --agency agency-riverside --as cm-riverside-ana   # her patients
  .venv/bin/careloop caseload --agency agency-riverside --role supervisor --as sv-riverside-sam --agency-wide
  curl -s -XPOST localhost:${PORTS[intake]}/v1/patients -H "Authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' \\
       -d '{"given_name":"Ann","family_name":"Example","birth_date":"1970-01-02","phone":"+1 555 0100"}'

A service that stops is started again (backoff 1-30 s); restarts are reported here and in
$RESTART_LOG. Press Ctrl-C to stop everything.
MSG

# Stay up until interrupted, starting again whatever stops. The sleep runs in the background so that
# Ctrl-C is handled at once.
while true; do
  supervise
  sleep 0.5 &
  wait $! || true
done
