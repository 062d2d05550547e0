"""``careloop export``, against fake services: every ``next`` page is followed, the directory
resources that referrals point at are read by id, and the result is one valid R4B collection; and the
permission the export expects each search to need is the one the service's route names.
(``test_fhir_export_platform.py`` runs it against the real services.)"""

import importlib
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from careloop_cli.fhir_export import SEARCHES, export
from careloop_shared import fhir_bundle
from careloop_shared.fhir import PREFIX
from careloop_shared.fhir_bundle import unresolved
from careloop_shared.testing import route_permissions

BASES = {s: f"http://{s}/fhir/R4" for s in SEARCHES}
PATIENT = "p1"


def _searchset(base: str, resources: list[dict], next_url: str | None = None) -> dict:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    entries = [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def _request(rid: str, **extra: Any) -> dict:
    return {"resourceType": "ServiceRequest", "id": rid, "status": "active", "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT}"}, **extra}  # fmt: skip


def fake_services() -> tuple[dict[str, dict], list[str]]:
    careplan, referral = BASES["careplan"], BASES["referral"]
    second = f"{referral}/ServiceRequest?patient={PATIENT}&_offset=1"
    intake = BASES["intake"]
    answers = {
        f"{intake}/Patient": _searchset(intake, [{"resourceType": "Patient", "id": PATIENT}]),
        f"{careplan}/ServiceRequest": _searchset(careplan, [_request("s1")]),
        f"{referral}/ServiceRequest": _searchset(referral, [_request("s1")], next_url=second),
        second: _searchset(referral, [_request("s2", performer=[{"reference": "Organization/o1"}])]),
        f"{referral}/Organization/o1": {"resourceType": "Organization", "id": "o1", "name": "Food bank"},
    }
    return answers, []


def test_export_follows_next_links_reads_targets_and_resolves_everything():
    answers, asked = fake_services()

    def get(url: str, params: dict[str, Any] | None) -> dict[str, Any]:
        asked.append(url)
        return answers.get(url) or {"resourceType": "Bundle", "type": "searchset", "entry": []}

    bundle = export(get, PATIENT, BASES)

    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert f"{BASES['referral']}/ServiceRequest/s2" in urls  # from the second page
    assert f"{BASES['referral']}/Organization/o1" in urls  # read by id
    assert f"{BASES['careplan']}/ServiceRequest/s1" in urls  # two services, one id: two entries
    assert f"{BASES['referral']}/ServiceRequest/s1" in urls
    assert len(urls) == len(set(urls)) == 5
    assert unresolved(bundle) == []
    Bundle.model_validate(bundle)


def test_each_search_names_the_permission_its_services_route_needs():
    """The export asks a role only for what it may: the kernel's table must say what the routes check."""
    routes = {
        service: route_permissions(importlib.import_module(f"{service}.main").build_app(), PREFIX)
        for service in fhir_bundle.SERVICES
    }
    for search in fhir_bundle.SEARCHES:
        assert routes[search.service][("get", f"{PREFIX}/{search.kind}")] == search.permission, search
    for kind, service in fhir_bundle.READ_BY_ID.items():
        [by_id] = [p for (m, path), p in routes[service].items() if path.startswith(f"{PREFIX}/{kind}/{{")]
        assert by_id == fhir_bundle.DIRECTORY, kind
