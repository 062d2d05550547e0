"""bench.png: throughput per stage against the raw ceiling (left); open-loop latency from the scheduled
send to the follow-up being scheduled, against the arrival rate (right, log scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def draw(results: dict[str, Any], path: Path) -> None:
    stages = results.get("stages", {})
    raw = (stages.get("raw") or {}).get("throughput_per_s")
    bars = [
        ("raw", raw),
        ("chain", (stages.get("chain") or {}).get("throughput_per_s")),
        ("open loop\n(best completed)", (stages.get("open") or {}).get("best_completed_rate_per_s")),
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    names = [b[0] for b in bars]
    values = [b[1] or 0 for b in bars]
    drawn = left.bar(names, values, color=["#888888", "#1f77b4", "#2ca02c"])
    for bar, (_, measured), value in zip(drawn, bars, values, strict=True):
        label = f"{value:.0f}/s" if measured is not None else "not run"
        if raw and value:
            label += f"\n{value / raw:.2f}x raw"
        left.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    left.set_ylabel("journeys (events) per second")
    left.set_title("Throughput")
    left.set_ylim(0, max([*values, 1]) * 1.25)

    rates = (stages.get("open") or {}).get("rates") or []
    points = [(r["rate"], r.get("latency_follow_up_scheduled") or {}) for r in rates]
    points = [(x, s) for x, s in points if s.get("count")]
    for key, style in (("p50_ms", "o-"), ("p99_ms", "s-"), ("max_ms", "^--")):
        if points:
            right.plot([x for x, _ in points], [s[key] for _, s in points], style, label=key[:-3])
    right.set_yscale("log")
    right.set_xlabel("arrival rate (assessments/s)")
    right.set_ylabel("ms from scheduled send")
    right.set_title("Open loop: accepted -> follow-up scheduled")
    if points:
        right.legend()
        right.set_xticks([x for x, _ in points])
    right.grid(True, which="both", alpha=0.3)
    meta = results.get("meta", {})
    fig.suptitle(f"careloop bench {meta.get('run', '')} ({meta.get('git_commit', '')[:10]})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
