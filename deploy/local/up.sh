#!/usr/bin/env bash
# Run the whole platform on this machine: infrastructure (unless provided) and the four services.
# Ctrl-C stops the services, then the local infrastructure this script started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${CARELOOP_RUN_DIR:-$ROOT/.run}"
LOG_DIR="$RUN_DIR/logs"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SERVICES=(intake careplan referral followup)
declare -A PORTS=([intake]="${INTAKE_PORT:-8001}" [careplan]="${CAREPLAN_PORT:-8002}"
                  [referral]="${REFERRAL_PORT:-8003}" [followup]="${FOLLOWUP_PORT:-8004}")
PIDS=()

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "[up] stopping services..."
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  "$ROOT/deploy/local/infra.sh" down
  echo "[up] everything stopped."
}

"$ROOT/deploy/local/infra.sh" up
eval "$("$ROOT/deploy/local/infra.sh" env)"
trap stop_all EXIT
trap 'stop_all; exit 0' INT TERM

mkdir -p "$LOG_DIR"
for svc in "${SERVICES[@]}"; do
  upper="$(echo "$svc" | tr '[:lower:]' '[:upper:]')"
  env "${upper}_PORT=${PORTS[$svc]}" "$PYTHON" -m "$svc" >>"$LOG_DIR/$svc.log" 2>&1 &
  PIDS+=("$!")
done

deadline=$((SECONDS + 90))
for svc in "${SERVICES[@]}"; do
  until curl -fsS "http://127.0.0.1:${PORTS[$svc]}/readyz" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "[up] $svc did not become ready; last log lines:" >&2
      tail -n 30 "$LOG_DIR/$svc.log" >&2
      exit 1
    fi
    sleep 0.3
  done
done

TOKEN="$("$PYTHON" -m careloop_shared.devtoken --agency agency-demo --role care-manager 2>/dev/null)"
cat <<MSG

careloop is running. Logs: $LOG_DIR/<service>.log
  intake    http://127.0.0.1:${PORTS[intake]}/docs
  careplan  http://127.0.0.1:${PORTS[careplan]}/docs
  referral  http://127.0.0.1:${PORTS[referral]}/docs
  followup  http://127.0.0.1:${PORTS[followup]}/docs

Development token (agency-demo, care-manager):
  export TOKEN=$TOKEN

Try it:
  curl -s -XPOST localhost:${PORTS[intake]}/v1/patients -H "Authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' \\
       -d '{"given_name":"Ann","family_name":"Example","birth_date":"1970-01-02","preferred_language":"en","phone":"+1 555 0100"}'
  curl -s -XPOST localhost:${PORTS[intake]}/v1/patients/<id>/assessments -H "Authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' -d '{"instrument":"phq-2","answers":{"44250-9":2,"44255-8":2}}'
  curl -s "localhost:${PORTS[followup]}/v1/follow-ups?patient_id=<id>" -H "Authorization: Bearer \$TOKEN"

Press Ctrl-C to stop everything.
MSG

# Stay up until interrupted or until a service dies.
wait -n "${PIDS[@]}" || true
echo "[up] a service exited; see $LOG_DIR" >&2
exit 1
