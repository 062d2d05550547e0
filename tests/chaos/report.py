"""A chaos run's report: ``results.json``, ``report.md`` and ``timeline.png`` (the faults against the
assessments accepted and the case-record entries written each second)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"intake": "tab:blue", "careplan": "tab:green", "referral": "tab:purple", "followup": "tab:orange",
           "record": "tab:brown"}  # fmt: skip
SPANS = {"broker-restart": "tab:red", "database-restart": "tab:gray", "pause": "tab:olive"}


def write(out: Path, results: dict[str, Any], watch: Any, load: Any) -> None:
    results["series"] = {"accepted_at": load.accepted_at, "record_entries": watch.appended}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    redraw(out)


def redraw(out: Path) -> None:
    """The chart and the Markdown again from ``results.json``: ``python -m tests.chaos.report <dir>``."""
    results = json.loads((out / "results.json").read_text())
    _timeline(out / "timeline.png", results)
    (out / "report.md").write_text(markdown(results))


def _timeline(path: Path, results: dict[str, Any]) -> None:
    fig, ax = plt.subplots(figsize=(12, 4.5))
    accepted = Counter(int(t) for t in results["series"]["accepted_at"])
    appended = [tuple(p) for p in results["series"]["record_entries"]]
    end = int(max([*accepted, *(t for t, _ in appended), 1])) + 1
    ax.plot(
        range(end),
        [accepted.get(s, 0) for s in range(end)],
        label="assessments accepted / s",
        lw=1.2,
        color="black",
    )
    rate = [(t1, (n1 - n0) / max(t1 - t0, 1e-3)) for (t0, n0), (t1, n1) in itertools.pairwise(appended)]
    if rate:
        ax.plot(
            [t for t, _ in rate],
            [r for _, r in rate],
            label="case-record entries / s",
            lw=1,
            color="tab:cyan",
        )
    for fault in results["faults"]:
        kind = fault["kind"]
        if kind == "kill":
            ax.axvline(fault["at"], color=COLOURS.get(fault["target"], "k"), lw=0.6, alpha=0.6)
        elif kind in SPANS:
            ax.axvspan(fault["at"], fault["ended_at"] or fault["at"], color=SPANS[kind], alpha=0.25,
                       label=f"{kind} ({fault['target']})")  # fmt: skip
        elif kind == "database-crash":  # a moment: the server recovers on its own
            ax.axvline(fault["at"], color="tab:pink", lw=1.5, label="database crash (a backend SIGKILLed)")
        elif kind == "poison":
            ax.axvline(fault["at"], color="k", ls="--", lw=1, label="poison sent")
    for service, colour in COLOURS.items():
        ax.plot([], [], color=colour, lw=1, label=f"SIGKILL {service}")
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("per second")
    ax.set_title(f"chaos run: {results['accepted']} assessments accepted, {len(results['faults'])} faults")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(r: dict[str, Any]) -> str:
    cfg = r["config"]
    faults = r["faults"]
    by_kind = Counter(f["kind"] for f in faults)
    lines = [
        "# Chaos run",
        "",
        f"{cfg['assessments']} assessment journeys started at {cfg['rate']} a second;"
        f" {r['accepted']} accepted (202). Faults: {by_kind.get('kill', 0)} SIGKILLs"
        f" ({_pairs(r['kills_per_service'])}),"
        f" {by_kind.get('broker-restart', 0)} broker restarts, {by_kind.get('database-restart', 0)} database"
        f" restarts, {by_kind.get('database-crash', 0)} database crashes (a backend SIGKILLed"
        f"{_undone(faults)}),"
        f" {by_kind.get('pause', 0)} SIGSTOP of {cfg['pause_s']} s, poison of every kind on every"
        f" consumed topic. Settled: {r['settled']} (load done at {r['loaded_at']:.0f} s, counted at"
        f" {r['settled_at']:.0f} s). Client retries: {r['load']['retries']}; answered 500:"
        f" {r['load']['internal_errors']}.",
        "",
        "## Goals",
        "",
        *[f"- {'met' if met else '**MISSED**'}: {goal}" for goal, met in r["goals"].items()],
        "",
        "## Accepted against applied",
        "",
        "| effect | count | accepted | short by |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {k} | {v} | {r['accepted']} | {max(0, r['accepted'] - v)} |" for k, v in r["applied"].items()],
        "",
        f"Events on a topic that a consuming service never took in: {_lost(r['lost_events'])}."
        f" Events committed to an outbox and never published: {_pairs(r.get('waiting', {}))}.",
        "",
        "Every effect counted: " + _pairs(r["effects"]["counts"]) + ".",
        "",
        "Effects made twice for one cause: " + _pairs(r["effects"]["doubled"]) + ".",
        "",
        "| topic | records | events | re-sent (same id, applied once) |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {t.split('.', 1)[1]} | {v['records']} | {v['events']} | {v['resent']} |"
            for t, v in r["published"].items()
        ],
        "",
        "## Dead letters",
        "",
        "| service | poison received | dead-lettered | without a reason |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {s} | {d['sent']} | {d['dead_lettered']} | {d['without_reason']} |"
            for s, d in r["dead_letters"].items()
        ],
        "",
        "Reasons given (record):",
        "",
        *[
            f"- {kind}: {reason}"
            for kind, reason in r["dead_letters"].get("record", {}).get("reasons", {}).items()
        ],
        "",
        "## Recovery",
        "",
        _recovery(faults),
        "",
        f"Longest stall of a partition (work waiting, committed offset not moving): {r['longest_stall']}.",
        "",
        f"Peak memory per service (MiB): {_pairs(r['peak_rss_mb'])}.",
        "",
        f"Services that stopped without being killed (started again by the run): {r['exits'] or 'none'}.",
        "",
        f"Case records verified: {r['verify']['verified']}, failed: {r['verify']['failed']}.",
        "",
        "![faults against throughput](timeline.png)",
        "",
    ]
    return "\n".join(lines)


def _pairs(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def _lost(lost: dict[str, dict[str, int]]) -> str:
    found = [f"{s}: {n} on {t}" for s, topics in lost.items() for t, n in topics.items()]
    return "; ".join(found) or "none"


def _undone(faults: list[dict[str, Any]]) -> str:
    """Why a database crash was not done, if one was not (another fault had the server down)."""
    crashes = [f.get("detail") or {} for f in faults if f["kind"] == "database-crash"]
    undone = [str(d["error"]) for d in crashes if d.get("error")]
    return f"; not done: {'; '.join(undone)}" if undone else ""


def _recovery(faults: list[dict[str, Any]]) -> str:
    rows = [
        "| fault | count | recovery median (s) | max (s) | not recovered |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind in ("kill", "broker-restart", "database-restart", "database-crash", "pause"):
        mine = [f for f in faults if f["kind"] == kind]
        if not mine:
            continue
        times = sorted(f["recovery_s"] for f in mine if f["recovery_s"] is not None)
        median = times[len(times) // 2] if times else "-"
        rows.append(f"| {kind} | {len(mine)} | {median} | {times[-1] if times else '-'} |"
                    f" {sum(1 for f in mine if f['recovery_s'] is None)} |")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    redraw(Path(sys.argv[1]))
