"""What the machine itself did during a window, and how fast it ran Python, so that runs of different
hours can be read side by side.

The same code on the same machine has cost up to half as much CPU again a journey on some hours as on others
(README, Performance), with no time stolen by the hypervisor counted. A stage's CPU per process group cannot
tell such an hour from a change in the code; these figures can:

- the reference loop: the time this Python takes for ``sum(range(1000))`` (best of five rounds), before the
  stages (the platform idle) and after the last one; lower is faster;
- per window: the machine's busy CPU seconds (every core, from ``psutil.cpu_times``), the part of them no
  measured group used (other processes, and interrupt work the kernel charges to no process), and the time
  the hypervisor gave to others while this machine wanted to run (``steal``; Linux only).
"""

from __future__ import annotations

import os
import timeit
from typing import Any

import psutil

_IDLE = ("idle", "iowait", "steal", "guest", "guest_nice")  # guest time is counted in user time already
REFERENCE = "sum(range(1000))"


def reference_loop_us(rounds: int = 5, number: int = 2000) -> float:
    """Microseconds this interpreter takes for ``REFERENCE``, the best of ``rounds`` (lower is faster)."""
    return round(min(timeit.repeat(REFERENCE, number=number, repeat=rounds)) / number * 1e6, 2)


def cpu_times() -> dict[str, float]:
    """The machine's CPU seconds so far, summed over its cores, by kind."""
    return dict(psutil.cpu_times()._asdict())


def busy_s(times: dict[str, float]) -> float:
    return sum(v for k, v in times.items() if k not in _IDLE)


def window(
    before: dict[str, float], after: dict[str, float], groups_cpu_s: dict[str, float]
) -> dict[str, Any]:
    """The machine between two ``cpu_times`` readings, against the CPU the window's groups used."""
    busy = busy_s(after) - busy_s(before)
    return {
        "busy_s": round(busy, 2),
        "outside_groups_s": round(max(0.0, busy - sum(groups_cpu_s.values())), 2),
        "steal_s": round(after.get("steal", 0.0) - before.get("steal", 0.0), 2),
    }


def describe(machine: dict[str, Any]) -> str:
    """One line for the summary."""
    loop = machine.get("reference_loop_us") or {}
    timings = ", ".join(f"{v} µs {k}" for k, v in loop.items())
    return f"machine: {machine.get('cores')} cores; {REFERENCE} in this Python {timings} (lower is faster)"


def about() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "reference_loop_us": {"before": reference_loop_us()}}
