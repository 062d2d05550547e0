"""One benchmark of the running platform (``make up``): the raw ceiling, the event chain, open-loop
HTTP load at fixed arrival rates and the follow-up scheduler, in one run.

    .venv/bin/python -m tests.perf.bench [--tiny] [--stages raw,chain,open,scheduler] [--events N]
        [--rates 50,100,250,500] [--duration S] [--followups K] [--out DIR]

Writes ``<out>/results.json`` (after every stage, so a failed run keeps what it measured) and
``<out>/bench.png``, and prints a summary. Kafka, PostgreSQL, the topic prefix and the services come from
the environment as for the load scripts (KAFKA_BOOTSTRAP_SERVERS, CARELOOP_PG_URL,
CARELOOP_TOPIC_PREFIX, <SERVICE>_DATABASE_URL, INTAKE_URL or --intake). Every wait is a poll with a
deadline: a stage that cannot finish reports what it counted. Exit status 1 when a stage failed, or
when the raw, chain or scheduler stage is incomplete (an open-loop rate beyond capacity is reported).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.perf import bench_machine
from tests.perf.bench_chart import draw
from tests.perf.bench_common import BenchConfig, config_from_env
from tests.perf.bench_kafka import close_offset_readers
from tests.perf.bench_metrics import Metrics, Sampler, pgss_prepare
from tests.perf.bench_open import run_open
from tests.perf.bench_scheduler import run_scheduler
from tests.perf.bench_stages import run_chain
from tests.perf.bench_summary import summary
from tests.perf.raw_chain import REPO, run_raw

STAGES: dict[str, Callable[[BenchConfig, Metrics], Awaitable[dict[str, Any]]]] = {
    "raw": run_raw,
    "chain": run_chain,
    "open": run_open,
    "scheduler": run_scheduler,
}
TINY = {"events": 200, "rates": "20", "duration": 3.0, "followups": 500, "window": 3.0, "lead": 2.0}
# 100,000 follow-ups falling due over a minute (about 1,700 a second, each with its task and two events).
FULL = {
    "events": 10_000,
    "rates": "50,100,250,500",
    "duration": 20.0,
    "followups": 100_000,
    "window": 60.0,
    "lead": 10.0,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.perf.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="seconds, not minutes: 200 events, 20/s for 3 s, 500")
    p.add_argument("--stages", default="raw,chain,open,scheduler")
    p.add_argument("--events", type=int, help="N for the raw and chain stages (10000; tiny 200)")
    p.add_argument("--rates", help="open-loop arrival rates per second (50,100,250,500; tiny 20)")
    p.add_argument("--duration", type=float, help="seconds per open-loop rate (20; tiny 3)")
    p.add_argument("--followups", type=int, help="K for the scheduler stage (100000; tiny 500)")
    p.add_argument("--window", type=float, help="seconds the follow-ups fall due over (60; tiny 3)")
    p.add_argument("--lead", type=float, help="seconds from the insert to the first due (10; tiny 2)")
    p.add_argument("--out", type=Path, default=REPO / ".artifacts" / "bench")
    p.add_argument("--intake", default=None, help="intake's URL (INTAKE_URL; http://127.0.0.1:8001)")
    p.add_argument("--no-consent", action="store_true", help="no referral consents: referrals stay drafts")
    p.add_argument(
        "--pids",
        default=os.environ.get("BENCH_PIDS", ""),
        help="process groups by pid, not by command line: intake=12,kafka=34,postgres=56 (BENCH_PIDS)",
    )
    p.add_argument("--stage-timeout", type=float, help="bound on each stage's waits (300; tiny 60)")
    p.add_argument("--settle-timeout", type=float, help="bound on waiting for the platform to go idle")
    p.add_argument(
        "--inflight-cap", type=int, default=5000, help="open loop's safety cap on requests in flight"
    )
    return p.parse_args(argv)


def configure(args: argparse.Namespace) -> BenchConfig:
    sizes: dict[str, Any] = {**FULL, **(TINY if args.tiny else {})}
    cfg = config_from_env(args.out)
    cfg.events = args.events or sizes["events"]
    cfg.rates = [float(r) for r in (args.rates or sizes["rates"]).split(",") if r.strip()]
    cfg.duration = args.duration or sizes["duration"]
    cfg.followups = args.followups or sizes["followups"]
    cfg.sched_window = args.window or sizes["window"]
    cfg.sched_lead = args.lead if args.lead is not None else sizes["lead"]
    cfg.consent = not args.no_consent
    cfg.stage_timeout = args.stage_timeout or (60.0 if args.tiny else 300.0)
    cfg.settle_timeout = args.settle_timeout or (20.0 if args.tiny else 120.0)
    cfg.inflight_cap = args.inflight_cap
    if args.intake:
        cfg.service_urls["intake"] = args.intake.rstrip("/")
    for item in filter(None, args.pids.split(",")):
        group, _, pid = item.partition("=")
        cfg.pids.setdefault(group.strip(), []).append(int(pid))
    return cfg


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def metadata(cfg: BenchConfig, stages: list[str], tiny: bool) -> dict[str, Any]:
    return {
        "run": cfg.run,
        "time": datetime.now(UTC).isoformat(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "host": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "tiny": tiny,
        "stages": stages,
        "sizes": {
            "events": cfg.events,
            "rates": cfg.rates,
            "duration_s": cfg.duration,
            "followups": cfg.followups,
            "sched_window_s": cfg.sched_window,
            "sched_lead_s": cfg.sched_lead,
            "partitions": cfg.partitions,
        },
        "consent": cfg.consent,
        "topic_prefix": cfg.prefix,
        "bootstrap": cfg.bootstrap,
        "service_urls": cfg.service_urls,
        "databases": {s: u.rsplit("/", 1)[-1] for s, u in cfg.db_urls.items()},
        "pids_override": cfg.pids,
        "time_sources": {
            "hops": "ce_time header differences (each service's decision time)",
            "follow_up_scheduled": "Kafka record timestamp (CreateTime, set by the outbox relay at send)",
            "scheduler_lateness": "FollowUpDue Kafka record timestamp minus due_at",
        },
    }


async def intake_ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(f"{url}/readyz") as r:
                return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def ratios(stages: dict[str, Any]) -> dict[str, Any]:
    raw = (stages.get("raw") or {}).get("throughput_per_s")
    chain = (stages.get("chain") or {}).get("throughput_per_s")
    open_ = stages.get("open") or {}
    out: dict[str, Any] = {}
    if raw:
        if chain:
            out["chain_over_raw"] = round(chain / raw, 4)
        if open_.get("best_completed_rate_per_s"):
            out["open_loop_completed_over_raw"] = round(open_["best_completed_rate_per_s"] / raw, 4)
        for r in open_.get("rates", []):
            if r.get("completed_rate_per_s"):
                out[f"open_loop_{r['rate']:g}_completed_over_raw"] = round(r["completed_rate_per_s"] / raw, 4)
    return out


def write(cfg: BenchConfig, results: dict[str, Any]) -> Path:
    cfg.out.mkdir(parents=True, exist_ok=True)
    path = cfg.out / "results.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(path)
    return path


async def idle(cfg: BenchConfig, seconds: float) -> dict[str, Any]:
    """What the platform burns doing nothing (periodic ticks, polls), to read the stages' CPU against."""
    sampler = Sampler(cfg)
    sampler.start()
    await asyncio.sleep(seconds)  # a measuring window, not a wait for anything
    out = await sampler.stop()
    out["cpu_s_per_s"] = {g: round(v / out["wall_s"], 3) for g, v in out["cpu_s"].items()}
    return out


async def run(cfg: BenchConfig, stages: list[str], tiny: bool) -> tuple[dict[str, Any], bool]:
    results: dict[str, Any] = {"meta": metadata(cfg, stages, tiny), "stages": {}, "ratios": {}}
    why_not = await pgss_prepare(cfg)
    results["meta"]["pg_stat_statements"] = why_not or "ok"
    metrics = Metrics(cfg, pgss=why_not is None)
    try:
        results["idle_baseline"] = await idle(cfg, 1.0 if tiny else 3.0)
        results["machine"] = bench_machine.about()  # while the platform is idle, before the stages
        write(cfg, results)
        ok = await _stages(cfg, stages, metrics, results)
        results["machine"]["reference_loop_us"]["after"] = bench_machine.reference_loop_us()
        write(cfg, results)
        return results, ok
    finally:
        await close_offset_readers()


async def _stages(cfg: BenchConfig, stages: list[str], metrics: Metrics, results: dict[str, Any]) -> bool:
    ok = True
    for stage in stages:
        print(f"[bench] {stage} ...", flush=True)
        started = time.monotonic()
        bound = 4 * cfg.stage_timeout + 4 * cfg.settle_timeout + len(cfg.rates) * (cfg.duration + 120) + 300
        try:
            result = await asyncio.wait_for(STAGES[stage](cfg, metrics), bound)
        except Exception as exc:  # one broken stage must not lose the others' figures
            traceback.print_exc()
            await metrics.abandon()
            result = {"error": f"{type(exc).__name__}: {exc}", "complete": False}
        result["stage_wall_s"] = round(time.monotonic() - started, 1)
        # An open-loop rate beyond capacity (timeouts, the in-flight cap) is a finding, not a failure.
        broken = "error" in result or any("error" in r for r in result.get("rates", []))
        ok = ok and not broken and (stage == "open" or bool(result.get("complete")))
        results["stages"][stage] = result
        results["ratios"] = ratios(results["stages"])
        write(cfg, results)
        print(
            f"[bench] {stage} done in {result['stage_wall_s']}s, complete={result.get('complete')}",
            flush=True,
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cfg = configure(args)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        print(f"unknown stages: {', '.join(sorted(unknown))}; known: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    if "open" in stages and not asyncio.run(intake_ready(cfg.intake_url)):
        print(
            f"intake is not reachable at {cfg.intake_url}/readyz: start the platform with `make up`"
            " (or point INTAKE_URL / --intake at it)",
            file=sys.stderr,
        )
        return 2
    results, ok = asyncio.run(run(cfg, stages, args.tiny))
    draw(results, cfg.out / "bench.png")
    print(summary(results))
    print(f"[bench] wrote {cfg.out / 'results.json'} and {cfg.out / 'bench.png'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
