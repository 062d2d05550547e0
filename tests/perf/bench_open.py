"""Open-loop HTTP load: assessments at a fixed arrival rate, latency from each request's scheduled time.

Patients (and their referral consents) are registered first, untimed, with bounded concurrency. Then
request i is started at ``start + i/R`` whatever happened to the ones before it (one asyncio task each,
no cap but a generous safety cap, reported when hit), so a slow platform cannot slow the load down and
hide its own queueing (coordinated omission). Two latencies, both from the scheduled time:

* accepted: until intake's 202;
* follow-up scheduled: until followup published the patient's plan-cadence FollowUpScheduled, taken
  from that Kafka record's timestamp (CreateTime, set by followup's outbox relay when it sends).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp

from careloop_shared.auth import issue_token
from careloop_shared.settings import DEV_JWT_SECRET
from tests.perf.bench_common import CADENCE_POLL_S, BenchConfig, cadence_done, latencies, poll, steady_state
from tests.perf.bench_kafka import end_offsets, settled
from tests.perf.bench_stages import hop_latencies, journey_topics, read_journeys, seen

ASSESSMENT = {"instrument": "phq-2", "answers": {"44250-9": 2, "44255-8": 2}}
CONSENT = {"purpose": "referral", "program_categories": ["behavioral-health"]}
RETRIES = 5


def _headers(agency: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(DEV_JWT_SECRET, agency=agency, role="care-manager")}


async def _post(http: aiohttp.ClientSession, path: str, body: Any, headers: Any, want: int) -> Any:
    """Untimed set-up request, retried while a restarting service refuses it, and after the wait a 429
    names when registering outpaces the per-token rate limit (a fast machine can)."""
    for attempt in range(RETRIES):
        wait = 0.5 * (attempt + 1)  # back-off between retries, not synchronisation
        try:
            async with http.post(path, json=body, headers=headers) as r:
                if r.status == want:
                    return await r.json()
                if r.status == 429:
                    wait = float(r.headers.get("Retry-After", "1"))
                elif r.status < 500:
                    raise RuntimeError(f"POST {path.split('/')[2]}: HTTP {r.status}")
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(wait)
    raise RuntimeError(f"POST {path}: no answer after {RETRIES} tries")


async def register(cfg: BenchConfig, http: aiohttp.ClientSession, agency: str, n: int) -> list[str]:
    headers = _headers(agency)
    ids: list[str] = []
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            patient = {
                "given_name": f"Bench{cfg.run}{agency[-6:]}-{i}",
                "family_name": "Load",
                "birth_date": "1980-01-01",
                "phone": "+1 555 0100",
            }
            created = await _post(http, "/v1/patients", patient, headers, 201)
            if cfg.consent:
                await _post(http, f"/v1/patients/{created['id']}/consents", CONSENT, headers, 201)
            ids.append(created["id"])

    await asyncio.gather(*(worker() for _ in range(cfg.register_concurrency)))
    return ids


async def fire(
    cfg: BenchConfig, http: aiohttp.ClientSession, agency: str, ids: list[str], rate: float
) -> Any:
    """Send one assessment per patient at ``rate`` per second; each result is (outcome, seconds from its
    scheduled time to its answer)."""
    headers = _headers(agency)
    loop = asyncio.get_running_loop()
    results: list[tuple[str, float] | None] = [None] * len(ids)
    inflight = 0
    capped = 0
    max_lag = 0.0
    failures: Counter[str] = Counter()  # what the client saw when a request failed, to tell causes apart

    async def one(i: int, due: float) -> None:
        nonlocal inflight
        try:
            path = f"/v1/patients/{ids[i]}/assessments"
            async with http.post(path, json=ASSESSMENT, headers=headers) as r:
                await r.read()
                results[i] = (str(r.status), loop.time() - due)
        except TimeoutError:
            results[i] = ("timeout", loop.time() - due)
        except aiohttp.ClientError as exc:
            results[i] = (type(exc).__name__, loop.time() - due)
            failures[f"{type(exc).__name__}: {exc}"[:160]] += 1
        finally:
            inflight -= 1

    tasks = []
    start_mono = loop.time() + 0.2
    start_wall = time.time() + (start_mono - loop.time())
    for i in range(len(ids)):
        due = start_mono + i / rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        max_lag = max(max_lag, loop.time() - due)
        if inflight >= cfg.inflight_cap:
            capped += 1
            results[i] = ("capped", 0.0)
            continue
        inflight += 1
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    return (
        results,
        start_wall,
        {
            "inflight_cap": cfg.inflight_cap,
            "capped": capped,
            "max_send_lag_s": max_lag,
            "failures": dict(failures.most_common(5)),
        },
    )


async def run_rate(
    cfg: BenchConfig, metrics: Any, http: aiohttp.ClientSession, rate: float
) -> dict[str, Any]:
    n = max(1, round(rate * cfg.duration))
    agency = cfg.agency(f"r{rate:g}")
    prep: dict[str, Any] = {}
    # Registration (a patient and, with --consent, a referral consent) is not timed as latency, but what
    # it costs the platform is measured: it is part of a patient's whole journey, and its events are
    # consumed downstream (until settled).
    await metrics.begin()
    t = time.monotonic()
    ids = await register(cfg, http, agency, n)
    prep["register_s"] = round(time.monotonic() - t, 2)
    prep["settle_before"] = await settled(cfg, cfg.settle_timeout)
    prep["registration"] = await metrics.end(len(ids))
    start = await end_offsets(cfg.bootstrap, journey_topics(cfg))

    await metrics.begin()
    results, start_wall, sender = await fire(cfg, http, agency, ids, rate)
    accepted = [i for i, r in enumerate(results) if r and r[0] == "202"]
    answered_at = max((start_wall + i / rate + results[i][1] for i in accepted), default=start_wall)
    result, done = await poll(
        lambda: cadence_done(cfg, agency), lambda r: r[0] >= len(accepted), cfg.stage_timeout, CADENCE_POLL_S
    )
    count = result[0] if result else 0
    prep["settle_after"] = await settled(cfg, cfg.settle_timeout)
    measured = await metrics.end(len(accepted))

    # Every request sent: one that timed out on our side may still have been taken, and its journey run.
    sent = [i for i, r in enumerate(results) if r and r[0] != "capped"]
    j, kafka_read = await read_journeys(cfg, start, [ids[i] for i in sent], cfg.stage_timeout)
    done_at = {i: j[ids[i]]["fu_plan"][1] for i in accepted if "fu_plan" in j.get(ids[i], {})}
    unanswered = set(sent) - set(accepted)
    late = {i: j[ids[i]]["fu_plan"][1] for i in unanswered if "fu_plan" in j.get(ids[i], {})}
    last_done = max(done_at.values(), default=start_wall)
    arrived = {i: start_wall + i / rate for i in sent}  # each request's scheduled time, latency's start
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r[0] if r else "none"] = outcomes.get(r[0] if r else "none", 0) + 1
    return {
        "rate": rate,
        "duration_s": cfg.duration,
        "requests": n,
        "agency": agency,
        "accepted": len(accepted),
        "completed": len(done_at),
        "completed_in_db": count,
        "completed_without_202": len(late),  # journeys of requests that timed out (or failed) here
        "complete": done and len(accepted) == n and len(done_at) == n,
        "errors": sum(
            v for k, v in outcomes.items() if k not in ("202", "timeout", "capped")
        ),  # sent, not 202
        "timeouts": outcomes.get("timeout", 0),
        "outcomes": outcomes,
        "accepted_rate_per_s": round(len(accepted) / max(answered_at - start_wall, 1e-9), 1),
        "completed_rate_per_s": round(len(done_at) / max(last_done - start_wall, 1e-9), 1),
        **steady_state(arrived, done_at, start_wall, n / rate),
        "latency_accepted": latencies(results[i][1] for i in accepted),
        "latency_follow_up_scheduled": latencies(done_at[i] - arrived[i] for i in done_at),
        "latency_follow_up_scheduled_without_202": latencies(late[i] - arrived[i] for i in late),
        "sender": sender,
        "events_seen": seen(j),
        "kafka_read": kafka_read,
        **hop_latencies(j),
        "prep": prep,
        "metrics": measured,
    }


async def run_open(cfg: BenchConfig, metrics: Any) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=cfg.inflight_cap, limit_per_host=cfg.inflight_cap)
    timeout = aiohttp.ClientTimeout(total=cfg.request_timeout)
    # aiohttp, not httpx: on this 2-core box httpx spent more CPU per request than intake itself.
    async with aiohttp.ClientSession(base_url=cfg.intake_url, connector=connector, timeout=timeout) as http:
        rates = []
        for rate in cfg.rates:
            try:
                rates.append(await run_rate(cfg, metrics, http, rate))
            except Exception as exc:  # one rate that broke must not lose the others' figures
                await metrics.abandon()
                rates.append({"rate": rate, "error": f"{type(exc).__name__}: {exc}", "complete": False})
    best = max(rates, key=lambda r: r.get("completed_rate_per_s", 0), default=None)
    return {
        "rates": rates,
        "best_completed_rate_per_s": best.get("completed_rate_per_s") if best else None,
        "complete": all(r["complete"] for r in rates),
    }
