"""``careloop export PATIENT``: the patient's FHIR ``Bundle`` (collection), from every service's
``/fhir/R4/`` searches (every ``next`` page followed) and the directory resources they point at."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from careloop_cli.client import dev_token, service_url
from careloop_shared.fhir import FHIR_JSON, PREFIX
from careloop_shared.fhir_bundle import collection, unresolved, wanted

# What each service serves by patient; the search parameter is ``patient`` everywhere but Patient.
SEARCHES = {
    "intake": ("Patient", "Consent", "QuestionnaireResponse", "Observation", "Condition"),
    "careplan": ("CarePlan", "Goal", "CareTeam", "ServiceRequest"),
    "referral": ("ServiceRequest", "Task"),
    "followup": ("Task",),
}
# Resources read by id when something in the bundle points at them, and who serves them.
READ_BY_ID = {"Organization": "referral", "HealthcareService": "referral", "Location": "referral"}

Get = Callable[[str, dict[str, Any] | None], dict[str, Any]]


def pages(get: Get, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """A search and every page its ``next`` links lead to."""
    found = [get(url, params)]
    while nxt := next((ln["url"] for ln in found[-1].get("link", []) if ln.get("relation") == "next"), None):
        found.append(get(nxt, None))
    return found


def export(get: Get, patient_id: str, bases: dict[str, str]) -> dict[str, Any]:
    searchsets: list[dict[str, Any]] = []
    for service, types in SEARCHES.items():
        for kind in types:
            params = {"_id": patient_id} if kind == "Patient" else {"patient": patient_id}
            # Each search's own page size: not every one pages (a Consent search answers all at once and
            # refuses _count), and every one that does links to its next page.
            searchsets += pages(get, f"{bases[service]}/{kind}", params)
    read: list[tuple[str, dict[str, Any]]] = []
    stamp = datetime.now(UTC).isoformat()
    bundle = collection(searchsets, read, timestamp=stamp)
    for ref in wanted(bundle, READ_BY_ID):
        kind, _, rid = ref.partition("/")
        base = bases[READ_BY_ID[kind]]
        read.append((base, get(f"{base}/{kind}/{rid}", None)))
    return collection(searchsets, read, timestamp=stamp) if read else bundle


def cmd_export(args: argparse.Namespace) -> int:
    token = dev_token(args.agency, args.role, args.person)
    headers = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}
    with httpx.Client(timeout=30.0, headers=headers) as http:

        def get(url: str, params: dict[str, Any] | None) -> dict[str, Any]:
            response = http.get(url, params=params)
            response.raise_for_status()
            return dict(response.json())

        bases = {s: service_url(s) + PREFIX for s in SEARCHES}
        bundle = export(get, args.patient_id, bases)
    text = json.dumps(bundle, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    missing = unresolved(bundle)
    for ref in missing:
        print(f"unresolved reference: {ref}", file=sys.stderr)
    return 1 if missing else 0


def add_parser(sub: Any, agency: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[agency], help="a patient's FHIR R4 Bundle (collection), as JSON")
    p.add_argument("patient_id")
    p.add_argument("--out", help="write the bundle to this file (default: standard output)")
    p.set_defaults(run=cmd_export)
