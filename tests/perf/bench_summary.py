"""The bench's short human summary: throughput and latency per stage, CPU per process group (in all and
per journey), statements per journey."""

from __future__ import annotations

from typing import Any

from tests.perf.bench_machine import describe

GROUPS = ("intake", "careplan", "referral", "followup", "record", "kafka", "postgres", "bench")


def _ms(s: dict[str, Any] | None, key: str) -> str:
    value = (s or {}).get(key)
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}"


def _rows(stages: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    raw = (stages.get("raw") or {}).get("throughput_per_s")

    def ratio(v: Any) -> str:
        return f"{v / raw:.3f}" if raw and v else "-"

    rows = []
    for name in ("raw", "chain"):
        s = stages.get(name)
        if s:
            done = f"{s.get('completed', 0)}/{s.get('events', '?')}"
            e2e = (s.get("hops_ce_time") or {}).get("assessed->follow_up_scheduled(plan-cadence)")
            t = s.get("throughput_per_s")
            rows.append((name, _rate(t), ratio(t), _ms(e2e, "p50_ms"), _ms(e2e, "p99_ms"), done))
    for r in (stages.get("open") or {}).get("rates", []):
        lat = r.get("latency_follow_up_scheduled")
        done = (
            f"{r.get('completed')}/{r.get('accepted')}/{r.get('requests')}" if "error" not in r else "ERROR"
        )
        t = r.get("completed_rate_per_s")
        rows.append(
            (f"open {r['rate']:g}/s", _rate(t), ratio(t), _ms(lat, "p50_ms"), _ms(lat, "p99_ms"), done)
        )
    s = stages.get("scheduler")
    if s and "lateness" in s:
        late = s["lateness"]
        done = f"{s['due_events']}/{s['follow_ups']} dup {s['duplicates']} miss {s['missing']}"
        rows.append(("scheduler", "-", "-", _ms(late, "p50_ms"), _ms(late, "p99_ms"), done))
    return rows


def _windows(stages: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name in ("raw", "chain", "open", "scheduler"):
        if name == "open":
            for r in (stages.get("open") or {}).get("rates", []):
                if registration := (r.get("prep") or {}).get("registration"):  # its patients, set up first
                    out.append((f"register {r['rate']:g}/s", registration))
                if "metrics" in r:
                    out.append((f"open {r['rate']:g}/s", r["metrics"]))
        elif m := (stages.get(name) or {}).get("metrics"):
            out.append((name, m))
    return out


def _cells(values: dict[str, float], spec: str) -> str:
    """One column per process group, a dash where the window did not measure it."""
    return "".join(f"{values[g]:>9{spec}}" if g in values else f"{'-':>9}" for g in GROUPS)


def _raw_hops(values: dict[str, float]) -> float:
    return sum(v for g, v in values.items() if g.startswith("raw-hop"))


def _foreign(stages: dict[str, Any]) -> list[tuple[str, int]]:
    parts = [(n, stages.get(n) or {}) for n in ("chain", "scheduler")]
    parts += [(f"open {r['rate']:g}/s", r) for r in (stages.get("open") or {}).get("rates", [])]
    return [(n, f) for n, s in parts if (f := (s.get("kafka_read") or {}).get("foreign_records"))]


def summary(results: dict[str, Any]) -> str:
    stages = results.get("stages", {})
    lines = [
        "",
        "stage            per s   x raw   p50 ms   p99 ms  done",
        "                                 (chain, open: to follow-up scheduled; scheduler: lateness)",
    ]
    for row in _rows(stages):
        lines.append(f"{row[0]:<14} {row[1]:>7} {row[2]:>7} {row[3]:>8} {row[4]:>8}  {row[5]}")
    for name, s in stages.items():
        if "error" in s:
            lines.append(f"{name}: ERROR {s['error']}")
        for r in s.get("rates", []):
            if "error" in r:
                lines.append(f"{name} {r['rate']:g}/s: ERROR {r['error']}")
            elif not r.get("complete"):
                lines.append(
                    f"{name} {r['rate']:g}/s: incomplete (overloaded?): {r['timeouts']} timeouts,"
                    f" {r['errors']} errors, {r['sender']['capped']} not sent (in-flight cap"
                    f" {r['sender']['inflight_cap']} reached), {r['completed']} of {r['requests']} completed"
                )
                for failure, count in r["sender"].get("failures", {}).items():
                    lines.append(f"  {count} x {failure}")
    kept = [
        f"open {r['rate']:g}/s   {r['sustained_rate_per_s']:.0f}/s; p50 "
        + ", ".join(_ms(q, "p50_ms") for q in r["latency_by_quarter"])
        + "; p99 "
        + ", ".join(_ms(q, "p99_ms") for q in r["latency_by_quarter"])
        for r in (stages.get("open") or {}).get("rates", [])
        if "sustained_rate_per_s" in r
    ]
    if kept:  # kept up: the middle half served at the arrival rate, the latency flat quarter by quarter
        heading = "kept up: follow-ups a second in the middle half; latency (ms) by quarter of arrivals"
        lines += ["", heading, *kept]
    windows = _windows(stages)
    if windows:
        lines += ["", "CPU seconds        " + "".join(f"{g:>9}" for g in GROUPS) + "   raw hops"]
        if base := (results.get("idle_baseline") or {}).get("cpu_s_per_s"):
            lines.append("idle, per s        " + "".join(f"{base.get(g, 0):>9.2f}" for g in GROUPS))
        for name, m in windows:
            cpu = m.get("cpu_s", {})
            hops = _raw_hops(cpu)
            cells = _cells(cpu, ".1f")
            lines.append(f"{name:<18} {cells}   {hops:.1f}" if hops else f"{name:<18} {cells}")
        per_journey = [(name, cpu) for name, m in windows if (cpu := m.get("cpu_ms_per_journey"))]
        if per_journey:  # what one journey costs each group: stages of different sizes side by side
            lines += ["", "CPU ms per journey " + "".join(f"{g:>9}" for g in GROUPS) + "   raw hops, all"]
            lines.append("(scheduler: per due follow-up; register: per patient registered, with its consent)")
            for name, cpu in per_journey:
                hops, total = _raw_hops(cpu), sum(cpu.values())
                tail = (f"{hops:.2f}, " if hops else "") + f"{total:.2f}"
                lines.append(f"{name:<18} {_cells(cpu, '.2f')}   {tail}")
        lines += ["", "statements per journey (pg_stat_statements calls / N, incl. BEGIN/COMMIT)"]
        for name, m in windows:
            st = m.get("statements") or {}
            cells = ", ".join(
                f"{db}={v['per_journey']}"
                for db, v in st.items()
                if isinstance(v, dict) and "per_journey" in v
            )
            if cells:
                lines.append(f"{name:<16} total {st.get('_total_per_journey')}: {cells}")
        costliest = [
            f"{name:<16} {db}: {c['ms']:.0f} ms, {c['calls']} calls, {c['mean_ms']} ms and"
            f" {c['pages_per_call']} pages a call: {c['query'][:60]}"
            for name, m in windows
            for db, c in _costliest(m.get("statements") or {}, 3)
        ]
        if costliest:
            heading = "costliest statements per window (statement time; mean and pages a call)"
            lines += ["", heading, *costliest]
        batches = [
            f"{name:<16} "
            + ", ".join(
                f"{svc}={v['batches']} ({v['records_per_batch']}) {v['relay_cycles']}" for svc, v in b.items()
            )
            for name, m in windows
            if (b := m.get("batches"))
        ]
        if batches:  # results written before batches were counted have none
            lines += ["", "batches consumed (records per batch) and relay cycles, per service", *batches]
        machine = [
            f"{name:<18} {w['busy_s']:>9.1f} {w['outside_groups_s']:>9.1f} {w['steal_s']:>9.1f}"
            for name, m in windows
            if (w := m.get("machine"))
        ]
        if machine:  # the same code has cost more CPU on some hours than others: read the runs with these
            lines += [
                "",
                "machine CPU seconds     busy   outside    stolen  (outside: no measured group's)",
                *machine,
            ]
    if results.get("machine"):
        lines += ["", describe(results["machine"])]
    for name, foreign in _foreign(stages):
        lines.append(
            f"WARNING {name}: {foreign} records of other traffic on its topics; its cost figures include it"
        )
    if results.get("ratios"):
        lines += ["", "ratios: " + ", ".join(f"{k}={v}" for k, v in results["ratios"].items())]
    return "\n".join(lines)


def _costliest(statements: dict[str, Any], n: int) -> list[tuple[str, dict[str, Any]]]:
    """The window's ``n`` statements with the most time, over every database."""
    found = [
        (db, c)
        for db, v in statements.items()
        if isinstance(v, dict)
        for c in v.get("costliest") or []
        if c.get("calls")
    ]
    return sorted(found, key=lambda item: item[1]["ms"], reverse=True)[:n]
