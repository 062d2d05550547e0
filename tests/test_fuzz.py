"""`make fuzz` at a bounded size, against five services of this test's own: Schemathesis walks every
service's OpenAPI document as a care manager, a supervisor and a provider (coverage, fuzzing and
stateful phases) and finds no 5xx, no undocumented status, no body or header unlike its schema, and no
schema-violating input accepted. `make fuzz` runs every role at a large size."""

import json

import pytest

from tests.conftest import platform_env, run_module

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
