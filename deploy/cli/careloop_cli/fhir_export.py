"""``careloop export PATIENT``: the patient's FHIR ``Bundle`` (collection), from every service's
``/fhir/R4/`` searches (every ``next`` page followed) and the directory resources they point at.

What is searched and how the Bundle is put together is the kernel's (``careloop_shared.fhir_bundle``),
shared with the workspace's download; the searches run at the same time, each in a thread of its own
(this client is synchronous). A search the role may not make is not asked, and is named on standard
error as left out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from careloop_cli.client import dev_token, service_url
from careloop_shared import fhir_bundle
from careloop_shared.fhir import FHIR_JSON, PREFIX
from careloop_shared.fhir_bundle import Export, NotPermitted, PatientNotFound, unresolved
from careloop_shared.permissions import load_matrix

# What each service is searched for by patient (the kernel's SEARCHES, by service).
SEARCHES = {
    service: tuple(s.kind for s in fhir_bundle.SEARCHES if s.service == service)
    for service in fhir_bundle.SERVICES
}

Get = Callable[[str, Mapping[str, str] | None], dict[str, Any]]


def exported(
    get: Get, patient_id: str, bases: dict[str, str], *, may: Callable[[str], bool] = fhir_bundle.everything
) -> Export:
    """The kernel's export, with ``get(url, params)`` called in threads so the searches overlap."""

    async def fetch(_service: str, url: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        return await asyncio.to_thread(get, url, params)

    return asyncio.run(fhir_bundle.export(fetch, patient_id, bases, may=may))


def export(get: Get, patient_id: str, bases: dict[str, str]) -> dict[str, Any]:
    """The Bundle alone, every search asked."""
    return exported(get, patient_id, bases).bundle


def cmd_export(args: argparse.Namespace) -> int:
    token = dev_token(args.agency, args.role, args.person)
    headers = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}
    matrix = load_matrix()
    with httpx.Client(timeout=30.0, headers=headers) as http:

        def get(url: str, params: Mapping[str, str] | None) -> dict[str, Any]:
            response = http.get(url, params=params)
            if response.status_code == 403:
                raise NotPermitted()
            response.raise_for_status()
            return dict(response.json())

        bases = {s: service_url(s) + PREFIX for s in SEARCHES}
        try:
            result = exported(
                get, args.patient_id, bases, may=lambda permission: matrix.allows(args.role, permission)
            )
        except NotPermitted:
            print(
                f"the role {args.role} may not export a patient's record (it needs patient:read-id)",
                file=sys.stderr,
            )
            return 2
        except PatientNotFound:
            print(f"no patient {args.patient_id} that {args.agency} may see", file=sys.stderr)
            return 2
    text = json.dumps(result.bundle, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    for search in result.left_out:
        print(f"left out: {search.kind} from {search.service} (needs {search.permission})", file=sys.stderr)
    missing = unresolved(result.bundle)
    for ref in missing:
        print(f"unresolved reference: {ref}", file=sys.stderr)
    return 1 if missing else 0


def add_parser(sub: Any, agency: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[agency], help="a patient's FHIR R4 Bundle (collection), as JSON")
    p.add_argument("patient_id")
    p.add_argument("--out", help="write the bundle to this file (default: standard output)")
    p.set_defaults(run=cmd_export)
