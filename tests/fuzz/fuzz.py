"""Fuzz every service's HTTP API from its OpenAPI document with Schemathesis, as each role.

    python -m tests.fuzz.fuzz [--examples N] [--services intake,referral] [--roles care-manager]

For every service and role it runs ``st run`` (the example, coverage, fuzzing and stateful phases; the
stateful phase follows the links the documents declare, so it gets past registration) with a token of
a fresh agency, so the fuzz never touches anyone's caseload. The checks: no 5xx, every status and
content type documented, every body and header as documented, schema-violating input refused,
nothing usable after a delete, a created resource readable, no route that ignores authentication.

Not checked: that every schema-valid request is accepted. Some rules need the data (a referral to a
program that exists, a code the rules know, a birth date not in the future): those refusals are 4xx
by design, documented as such. Text with NUL is generated too and must be refused with a 422.

Writes ``<out>/<service>-<role>.json`` (Schemathesis' run report) and ``.txt`` (its console output),
and ``<out>/summary.json``; exits 1 when any run found a failure or an error.
URLs: ``<SERVICE>_URL`` or the ``make up`` ports.

``--parallel N`` (default 2) runs N of them at a time, never two against the same service at once: a
run is one Schemathesis process waiting on one service at a time, so on two cores two runs take about
half the time of one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from careloop_shared.auth import SERVICE_ROLE, issue_token
from careloop_shared.settings import DEV_JWT_SECRET

SERVICES = ("intake", "careplan", "referral", "followup", "record")
PORTS = {"intake": 8001, "careplan": 8002, "referral": 8003, "followup": 8004, "record": 8005}
ROLES = ("care-manager", "supervisor", "provider", "analyst", "admin", "service")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
)


def service_url(service: str) -> str:
    return os.environ.get(f"{service.upper()}_URL") or f"http://127.0.0.1:{PORTS[service]}"


def st_command(url: str, token: str, examples: int, report: Path, seed: int | None) -> list[str]:
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(examples),
        # One worker: two share Hypothesis' caches across threads, which trips it now and then.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    return command


def run_one(
    service: str, role: str, agency: str, examples: int, out: Path, seed: int | None
) -> dict[str, Any]:
    # As a service, one intake's key-release rules name: the fuzz gets past that refusal to the patients.
    subject = "careplan" if role == SERVICE_ROLE else f"fuzz-{role}"
    token = issue_token(DEV_JWT_SECRET, agency=agency, role=role, subject=subject)
    report = out / f"{service}-{role}.json"
    report.unlink(missing_ok=True)
    started = time.monotonic()
    with (out / f"{service}-{role}.txt").open("wb") as console:
        exit_code = subprocess.call(
            st_command(service_url(service), token, examples, report, seed),
            stdout=console,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks"},
        )
    result: dict[str, Any] = {"service": service, "role": role, "exit_code": exit_code}
    result["seconds"] = round(time.monotonic() - started, 1)
    if not report.exists():
        result["errors"] = [{"title": "no report: schemathesis did not run to the end", "count": 1}]
        result["failures"] = []
        return result
    data = json.loads(report.read_text())
    if not data.get("operations") or not data.get("test_cases"):  # the schema could not be loaded
        result["errors"] = data.get("errors") or [
            {"title": "the report names no operation tested", "count": 1}
        ]
        result["failures"] = []
        return result
    result["generated"] = data["test_cases"]["generated"]
    result["operations"] = data["operations"]["tested"]
    result["failures"] = [
        {"code": f["code"], "title": f["title"], "count": f["count"], "operations": f["operations"]}
        for f in data["failures"]
    ]
    result["errors"] = data["errors"]
    result["phases"] = {name: phase["status"] for name, phase in data["phases"].items()}
    return result


def run_and_say(pair: tuple[str, str], agency: str, args: argparse.Namespace) -> dict[str, Any]:
    result = run_one(*pair, agency, args.examples, args.out, args.seed)
    found = ", ".join(f"{f['code']} {f['title']} x{f['count']}" for f in result["failures"])
    errors = ", ".join(f"{e['title']} x{e['count']}" for e in result["errors"])
    print(
        f"[fuzz] {pair[0]:9} {pair[1]:13} {result.get('generated', 0):6} cases"
        f" {result['seconds']:6.1f} s  {found or 'no failures'}",
        f"; errors: {errors}" if errors else "",
        flush=True,
    )
    return result


def run_side_by_side(
    pairs: list[tuple[str, str]], parallel: int, run: Callable[[tuple[str, str]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """``run`` over (service, role) pairs, ``parallel`` at a time, never two on one service at once;
    the results in the pairs' order."""
    pending = list(pairs)
    busy: set[str] = set()
    done: dict[tuple[str, str], dict[str, Any]] = {}
    changed = threading.Condition()

    def worker() -> None:
        while True:
            with changed:
                while pending and all(service in busy for service, _ in pending):
                    changed.wait()
                if not pending:
                    return
                pair = next(p for p in pending if p[0] not in busy)
                pending.remove(pair)
                busy.add(pair[0])
            try:
                done[pair] = run(pair)
            finally:
                with changed:
                    busy.discard(pair[0])
                    changed.notify_all()

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for future in [pool.submit(worker) for _ in range(parallel)]:
            future.result()
    return [done[pair] for pair in pairs]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=100, help="examples per operation and phase")
    p.add_argument("--services", default=",".join(SERVICES))
    p.add_argument("--roles", default=",".join(ROLES))
    p.add_argument("--agency", default=None, help="the agency the tokens name (default: a fresh one)")
    p.add_argument("--out", type=Path, default=Path(".artifacts/fuzz"))
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--parallel", type=int, default=2, help="runs at a time, each on a different service")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    agency = args.agency or f"fuzz-{secrets.token_hex(4)}"
    pairs = [(s, r) for r in args.roles.split(",") for s in args.services.split(",")]
    results = run_side_by_side(pairs, max(1, args.parallel), lambda pair: run_and_say(pair, agency, args))
    summary = {"agency": agency, "examples": args.examples, "checks": list(CHECKS), "runs": results}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    bad = [r for r in results if r["failures"] or r["errors"]]
    total = sum(r.get("generated", 0) for r in results)
    print(
        f"[fuzz] {total} cases over {len(results)} runs; {len(bad)} with failures or errors; see {args.out}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
