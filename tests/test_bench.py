"""`make bench` at its tiny size, against five services of this test's own (fresh topic prefix and
databases): every stage runs to the end and is written down. No timing thresholds: a 2-core box shared
with other work makes any of them flaky; the figures are for people to read."""

import json

import pytest

from tests.conftest import SERVICES, platform_env, run_module
from tests.perf import bench_machine
from tests.perf.bench_metrics import batches_between
from tests.perf.bench_open import _post
from tests.perf.bench_summary import summary

pytestmark = pytest.mark.integration


async def test_the_tiny_bench_runs_every_stage_to_the_end(platform, tmp_path):
    _, svc = platform
    # The platform of `make up` may run beside these services: name ours by pid, not by command line.
    pids = ",".join(f"{name}={process.proc.pid}" for name, process in svc.items())
    code, log = await run_module(
        "tests.perf.bench", "--tiny", "--out", str(tmp_path), "--pids", pids,
        log_path=tmp_path / "bench.log", timeout=150, env=platform_env(platform),
    )  # fmt: skip
    assert code == 0, log[-4000:]

    results = json.loads((tmp_path / "results.json").read_text())
    stages = results["stages"]
    assert set(stages) == {"raw", "chain", "open", "scheduler"}
    assert not [name for name, stage in stages.items() if "error" in stage], log[-4000:]
    assert (stages["raw"]["completed"], stages["chain"]["completed"]) == (200, 200)
    assert stages["chain"]["events_seen"]["fu_plan"] == 200  # every journey read back from Kafka
    (rate,) = stages["open"]["rates"]
    assert rate["requests"] == rate["accepted"] == rate["completed"] == 60
    assert (rate["errors"], rate["timeouts"], rate["sender"]["capped"]) == (0, 0, 0)
    assert rate["latency_follow_up_scheduled"]["count"] == 60
    assert sum(q["count"] for q in rate["latency_by_quarter"]) == 60
    # What registering the stage's patients (and their consents) cost, per patient, downstream included.
    registration = rate["prep"]["registration"]
    assert registration["cpu_ms_per_journey"]["intake"] > 0
    assert registration["batches"]["careplan"]["batches"] > 0  # their PatientRegistered consumed downstream
    scheduler = stages["scheduler"]
    assert (scheduler["due_events"], scheduler["duplicates"], scheduler["missing"]) == (500, 0, 0)
    assert scheduler["cleanup"]["follow_ups_deleted"] == 500
    ratios = results["ratios"]
    assert {"chain_over_raw", "open_loop_completed_over_raw"} <= set(ratios)
    assert all(isinstance(v, float) and v > 0 for v in ratios.values())
    assert stages["chain"]["metrics"]["cpu_s"].keys() >= {*SERVICES, "kafka", "postgres"}
    if results["meta"]["pg_stat_statements"] == "ok":  # a server without it preloaded has no counts
        assert stages["chain"]["metrics"]["statements"]["_total_per_journey"] > 0
        # Where the statement time went, and the pages each call read (a plan gone wrong shows there).
        costliest = stages["chain"]["metrics"]["statements"]["careplan"]["costliest"]
        assert costliest and costliest[0]["ms"] >= costliest[-1]["ms"]
        assert all(c["calls"] > 0 and c["pages_per_call"] >= 0 for c in costliest)
    # careplan consumed every PatientAssessed of the chain in batches, and its relay published plans.
    careplan = stages["chain"]["metrics"]["batches"]["careplan"]
    assert careplan["batches"] * careplan["records_per_batch"] >= 200
    assert careplan["relay_cycles"] > 0
    # The machine's own figures: busy at least as long as the chain's groups were, a reference loop timed
    # before and after the stages.
    machine = stages["chain"]["metrics"]["machine"]
    assert machine["busy_s"] >= sum(stages["chain"]["metrics"]["cpu_s"].values()) - 0.5
    assert machine["outside_groups_s"] >= 0 and machine["steal_s"] >= 0
    assert all(results["machine"]["reference_loop_us"][k] > 0 for k in ("before", "after"))
    assert "sum(range(1000)) in this Python" in log
    png = tmp_path / "bench.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_windows_batches_leave_out_a_service_restarted_or_not_read_at_its_start():
    start = {
        "careplan": {"batches": 10.0, "records": 40.0, "relay_cycles": 5.0},
        "referral": {"batches": 50.0, "records": 60.0, "relay_cycles": 9.0},
        "followup": {"batches": 7.0, "records": 7.0, "relay_cycles": 2.0},
    }
    end = {
        "careplan": {"batches": 14.0, "records": 52.0, "relay_cycles": 8.0},
        "referral": {"batches": 3.0, "records": 3.0, "relay_cycles": 1.0},  # restarted: counters anew
        "followup": {"batches": 7.0, "records": 7.0, "relay_cycles": 2.0},  # idle in the window
        "record": {"batches": 5.0, "records": 9.0, "relay_cycles": 0.0},  # not read at the start
    }
    assert batches_between(start, end) == {
        "careplan": {"batches": 4, "records_per_batch": 3.0, "relay_cycles": 3},
        "followup": {"batches": 0, "records_per_batch": None, "relay_cycles": 0},
    }


def test_the_summary_puts_each_stages_cpu_per_journey_side_by_side():
    chain = {"cpu_s": {"careplan": 4.0, "kafka": 3.0}, "cpu_ms_per_journey": {"careplan": 0.4, "kafka": 0.3}}
    raw = {
        "cpu_s": {"kafka": 2.0, "raw-hop1": 1.0, "raw-hop2": 1.5},
        "cpu_ms_per_journey": {"kafka": 0.2, "raw-hop1": 0.1, "raw-hop2": 0.15},
    }
    text = summary({"stages": {"raw": {"metrics": raw}, "chain": {"metrics": chain}}})
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("CPU ms per journey"))
    raw_row, chain_row = lines[header + 2].split(), lines[header + 3].split()
    # A group the window did not measure is a dash; the raw hops come before the window's total.
    assert raw_row == ["raw", "-", "-", "-", "-", "-", "0.20", "-", "-", "0.25,", "0.45"]
    assert chain_row == ["chain", "-", "0.40", "-", "-", "-", "0.30", "-", "-", "0.70"]
    # Results written before the figure existed have no such table.
    assert "CPU ms per journey" not in summary({"stages": {"chain": {"metrics": {"cpu_s": {"kafka": 1.0}}}}})


async def test_a_set_up_request_refused_by_the_rate_limit_is_sent_again_after_the_wait_it_names():
    """Registering on a fast machine can outpace the per-token limit: the bench waits and goes on."""
    from aiohttp import ClientSession, web
    from aiohttp.test_utils import TestServer

    answers = [web.json_response({"detail": "too many"}, status=429, headers={"Retry-After": "0"})]
    seen: list[dict] = []

    async def patients(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return answers.pop(0) if answers else web.json_response({"id": "p-1"}, status=201)

    app = web.Application()
    app.router.add_post("/v1/patients", patients)
    async with TestServer(app) as server, ClientSession(str(server.make_url(""))) as http:
        assert await _post(http, "/v1/patients", {"n": 1}, {}, 201) == {"id": "p-1"}
        assert seen == [{"n": 1}, {"n": 1}]
        answers.append(web.json_response({"detail": "no"}, status=422))
        with pytest.raises(RuntimeError, match="HTTP 422"):
            await _post(http, "/v1/patients", {"n": 2}, {}, 201)


def test_a_stage_kept_up_is_told_from_one_falling_behind_by_its_middle_half_and_its_quarters():
    from tests.perf.bench_common import steady_state

    rate, duration = 100, 20.0
    sent = {i: i / rate for i in range(round(rate * duration))}
    # Kept up: every follow-up 0.1 s after its request; behind: served at 80 a second, so the queue grows.
    kept = steady_state(sent, {i: t + 0.1 for i, t in sent.items()}, 0.0, duration)
    behind = steady_state(sent, {i: 0.05 + i / 80 for i in sent}, 0.0, duration)

    assert kept["sustained_rate_per_s"] == 100.0
    assert behind["sustained_rate_per_s"] == 80.0
    assert [q["count"] for q in kept["latency_by_quarter"]] == [500, 500, 500, 500]
    assert all(q["p50_ms"] == pytest.approx(100, abs=0.5) for q in kept["latency_by_quarter"])
    p50s = [q["p50_ms"] for q in behind["latency_by_quarter"]]
    assert p50s == sorted(p50s) and p50s[-1] > p50s[0] + 2000  # 1.25 s behind a second of arrivals at the end
    # The drain after the last arrival, which a rate over the whole stage counts, is left out of both.
    text = summary({"stages": {"open": {"rates": [{"rate": 100, "complete": True, **kept}]}}})
    assert "open 100/s   100/s; p50 100, 100, 100, 100; p99 100, 100, 100, 100" in text


def test_a_windows_machine_figures_set_what_no_measured_group_used_apart():
    before = {"user": 100.0, "system": 20.0, "idle": 500.0, "iowait": 1.0, "softirq": 2.0, "steal": 3.0}
    after = {"user": 130.0, "system": 26.0, "idle": 510.0, "iowait": 1.5, "softirq": 4.0, "steal": 3.5}
    # 38 s busy (user, system and softirq; idle, iowait and steal are not), 35 of them the groups'.
    window = bench_machine.window(before, after, {"careplan": 20.0, "postgres": 15.0})
    assert window == {"busy_s": 38.0, "outside_groups_s": 3.0, "steal_s": 0.5}
    # Sampled a little apart, the groups can add up to more than the machine: never a negative figure.
    assert bench_machine.window(before, after, {"careplan": 40.0})["outside_groups_s"] == 0.0
    assert bench_machine.reference_loop_us(rounds=2, number=100) > 0


def test_the_summary_shows_the_machine_of_the_run_and_of_each_window():
    chain = {"cpu_s": {"careplan": 4.0}, "machine": {"busy_s": 9.5, "outside_groups_s": 1.25, "steal_s": 0.0}}
    machine = {"cores": 2, "reference_loop_us": {"before": 14.1, "after": 16.7}}
    lines = summary({"stages": {"chain": {"metrics": chain}}, "machine": machine}).splitlines()
    assert lines[lines.index(next(x for x in lines if x.startswith("machine CPU seconds"))) + 1].split() == [
        "chain", "9.5", "1.2", "0.0",
    ]  # fmt: skip
    assert (
        lines[-1]
        == "machine: 2 cores; sum(range(1000)) in this Python 14.1 µs before, 16.7 µs after (lower is faster)"
    )
    # Results written before these figures existed print without them.
    assert "machine" not in summary({"stages": {"chain": {"metrics": {"cpu_s": {"kafka": 1.0}}}}})
