"""`make fuzz` at a bounded size, against five services of this test's own: Schemathesis walks every
service's OpenAPI document as a care manager, a supervisor and a provider (coverage, fuzzing and
stateful phases) and finds no 5xx, no undocumented status, no body or header unlike its schema, and no
schema-violating input accepted. Then the workspace, which has no OpenAPI document, is walked as every
role and as nobody (tests/fuzz/workspace.py), and every consumer is fed events drawn from their
contracts, one at a time and as patients' sequences in drawn orders (tests/fuzz/events.py). `make fuzz`
runs every role at a large size."""

import json

import pytest
import pytest_asyncio

from careloop_shared.contracts import PlanUpdated
from tests.conftest import platform_env, run_module, start_workspace
from tests.fuzz.events import refusals_by_rule

pytestmark = pytest.mark.integration

EXAMPLES = 6  # per operation and phase; at 10, five services x three roles took over 400 s on a slow machine
ROLES = "care-manager,supervisor,provider"


@pytest.mark.timeout(600)  # above the fuzzer's own bound; a slow machine took 322 s of fuzzing at 6 examples
async def test_the_fuzzer_finds_nothing_wrong_at_any_door(platform, tmp_path):
    code, log = await run_module(
        "tests.fuzz.fuzz", "--examples", str(EXAMPLES), "--roles", ROLES, "--out", str(tmp_path),
        "--seed", "20261130", log_path=tmp_path / "fuzz.log", timeout=520, env=platform_env(platform),
    )  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    runs = summary["runs"]
    assert len(runs) == 5 * 3, log[-3000:]
    found = {
        (r["service"], r["role"]): r["failures"] + r["errors"] for r in runs if r["failures"] or r["errors"]
    }
    details = "\n".join((tmp_path / f"{s}-{r}.txt").read_text(errors="replace")[-3000:] for s, r in found)
    assert not found, f"{found}\n{details}"
    assert code == 0, log[-3000:]
    # Every operation of every document was exercised, with more than a token number of cases.
    assert all(r["operations"] > 0 and r["generated"] >= 100 for r in runs), runs


@pytest_asyncio.fixture(scope="module")
async def workspace(platform, database_factory, log_dir):
    """The workspace, in front of this module's five services."""
    env, processes = platform
    process = start_workspace(
        {**env, "WORKSPACE_DATABASE_URL": await database_factory("workspace")}, processes, log_dir
    )
    try:
        await process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.mark.timeout(420)
async def test_the_workspace_walk_finds_nothing_wrong_on_any_page(platform, workspace, tmp_path):
    env = {**platform_env(platform), "WORKSPACE_URL": workspace.url}
    code, log = await run_module(
        "tests.fuzz.workspace", "--cases", "4", "--out", str(tmp_path), "--seed", "20261206",
        log_path=tmp_path / "walk.log", timeout=360, env=env,
    )  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert not summary["failures"], (tmp_path / "failures.txt").read_text()[-4000:]
    assert code == 0, log[-3000:]
    # Every route answered, and the care manager's pages offered forms that were sent.
    assert summary["routes_walked"] and len(summary["routes_walked"]) == summary["routes"], summary
    care_manager = next(forms for who, forms in summary["forms"].items() if who.startswith("care-manager@"))
    assert len(care_manager) >= 8, care_manager
    sent = [s for route, s in summary["statuses"].items() if route.startswith("POST /patients/")]
    assert sum(s.get("303", 0) for s in sent) > 0, summary["statuses"]  # some got all the way through
    # The workspace logged no unhandled error, and no call of its own with the URL it called.
    logged = workspace.log_path.read_text(errors="replace")
    assert '"unhandled error"' not in logged and "HTTP Request:" not in logged, workspace.tail(40)
    # What the walk typed and registered about people is in no log: names, phones, e-mail, birth dates.
    typed = (
        "Fuzz-Own",
        "Zarathustra-",
        "Lee-Walker",
        "555 0142",
        "555 0100",
        "ann@example.org",
        "1971-04-05",
        "1980-05-17",
    )
    for process in (*platform[1].values(), workspace):
        logged = process.log_path.read_text(errors="replace")
        assert not [t for t in typed if t in logged], (process.service, [t for t in typed if t in logged])


@pytest.mark.timeout(300)
async def test_every_consumer_keeps_or_refuses_each_event_drawn_from_the_contracts(platform, tmp_path):
    _, processes = platform
    code, log = await run_module(
        "tests.fuzz.events", "--examples", "8", "--sequences", "40", "--seed", "20261206",
        "--out", str(tmp_path),
        log_path=tmp_path / "events.log", timeout=240, env=platform_env(platform),
    )  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    shown = [{k: f.get(k) for k in ("problem", "type", "error_type", "error")} for f in summary["findings"]]
    assert not shown, shown[:20]
    assert code == 0, log[-3000:]
    # Events of every consumed type went out; some were kept and applied, some refused, at once, as invalid.
    outcomes = {o for by_outcome in summary["outcomes"].values() for o in by_outcome}
    assert {"allowed: applied", "refused: dead-lettered (ValidationError)"} <= outcomes, outcomes
    assert summary["sent"] >= 8 * 20 and summary["settled"]["settled"], summary["settled"]
    assert summary["records_verified"] >= 10, summary["records_verified"]  # and each held (no finding)
    # Forty patients' events in drawn orders, some twice, a few naming another agency: each patient's case
    # record read, every event kept in it once (no finding), the other agency's refused by name.
    assert summary["sequences"] == {"patients": 40, "records_read": 40}, summary["sequences"]
    # Then the services' reads of those patients and their lists, none a 5xx (no finding), some a 200.
    reads = summary["reads_after_sequences"]
    assert reads.get("careplan 200") and reads.get("record 200"), reads
    assert summary["outcomes"].get(f"{PlanUpdated.type} -> record", {}).get("allowed: applied"), summary
    # No handler failed on any of them: nothing was dead-lettered after retries but by a rule's refusal.
    rules = refusals_by_rule()
    for name, process in processes.items():
        for line in process.log_path.read_text(errors="replace").splitlines():
            if "event failed after retries" in line:
                error = json.loads(line)["error"]["exception"][0]["type"]
                assert error.rsplit(".", 1)[-1] in rules, (name, line[:2000])
