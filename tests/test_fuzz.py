"""`make fuzz` at a bounded size, against five services of this test's own: Schemathesis walks every
service's OpenAPI document as a care manager, a supervisor and a provider (coverage, fuzzing and
stateful phases) and finds no 5xx, no undocumented status, no body or header unlike its schema, and no
schema-violating input accepted. `make fuzz` runs every role at a large size."""

import asyncio
import json
import sys

import pytest

from careloop_shared.testing import REPO_ROOT

pytestmark = pytest.mark.integration

EXAMPLES = 10
ROLES = "care-manager,supervisor,provider"


async def test_the_fuzzer_finds_nothing_wrong_at_any_door(platform, tmp_path):
    env, svc = platform
    fuzz_env = {**svc["intake"].env, **env}
    fuzz_env.update({f"{name.upper()}_URL": process.url for name, process in svc.items()})
    log_path = tmp_path / "fuzz.log"
    with log_path.open("wb") as log_file:
        fuzz = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fuzz.fuzz", "--examples", str(EXAMPLES), "--roles", ROLES,
            "--out", str(tmp_path), "--seed", "20261130",
            cwd=REPO_ROOT, env=fuzz_env, stdout=log_file, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            await asyncio.wait_for(fuzz.wait(), 400)
        except TimeoutError:
            fuzz.kill()
            await fuzz.wait()
    log = log_path.read_text(errors="replace")
    summary = json.loads((tmp_path / "summary.json").read_text())
    runs = summary["runs"]
    assert len(runs) == 5 * 3, log[-3000:]
    found = {
        (r["service"], r["role"]): r["failures"] + r["errors"] for r in runs if r["failures"] or r["errors"]
    }
    details = "\n".join((tmp_path / f"{s}-{r}.txt").read_text(errors="replace")[-3000:] for s, r in found)
    assert not found, f"{found}\n{details}"
    assert fuzz.returncode == 0, log[-3000:]
    # Every operation of every document was exercised, with more than a token number of cases.
    assert all(r["operations"] > 0 and r["generated"] >= 100 for r in runs), runs
