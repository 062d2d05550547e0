"""careloop's FHIR resources are valid FHIR R4 (4.0.1), as HAPI FHIR's instance validator checks them
offline (tests/fhir_r4.py), not only R4B as ``fhir.resources`` parses them: every resource type each
service serves, built by its own mappers the way its unit tests build them, each service's
CapabilityStatement as its app answers it, and the Bundles careloop makes of them. Broken copies of
those resources (a bad code, a missing element, a wrong type, ...) prove the validator catches what
matters, so a clean result cannot be vacuous. One JVM validates the whole module's resources at once
(5 to 15 s on two cores once the validator is built; building it the first time takes up to a minute).

CARELOOP_SKIP_FHIR_VALIDATOR=1 skips these tests; otherwise a machine without Java 17 or Maven fails
them with run.sh's word on what to install.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from careloop_shared.audit_api import audit_event
from careloop_shared.fhir import LOINC, SNOMED, searchset
from careloop_shared.fhir_bundle import collection
from careloop_shared.rules import load_rules
from careloop_shared.testing import bearer, client_of
from careplan.domain.necessity import DEFAULT_CRITERIA, NecessityCriteria
from careplan.domain.planning import DEFAULT_LIBRARY, PlanLibrary
from followup.domain.rules import PRIORITIES, RULES_FILE, FollowUpRules
from intake.domain.scoring import RULES_FILE as SCREENING_RULES_FILE
from intake.domain.scoring import ScreeningRules
from tests.fhir_r4 import Issue, ValidatorUnavailable, validate_r4

pytestmark = [
    pytest.mark.timeout(900),  # the first run on a machine builds the validator with Maven
    pytest.mark.skipif(
        os.environ.get("CARELOOP_SKIP_FHIR_VALIDATOR") == "1", reason="CARELOOP_SKIP_FHIR_VALIDATOR=1"
    ),
]

FHIR_SERVICES = ("intake", "careplan", "referral", "followup")
NOW = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def unit_tests(service: str) -> ModuleType:
    """A service's FHIR mapper unit tests (services/<s>/tests/test_<s>_fhir.py), for the rows and
    helpers they build resources with; loaded by path, as the services' tests are no packages."""
    path = ROOT / "services" / service / "tests" / f"test_{service}_fhir.py"
    spec = importlib.util.spec_from_file_location(f"fhir_r4_cases_{service}", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


intake_cases = unit_tests("intake")
careplan_cases = unit_tests("careplan")
referral_cases = unit_tests("referral")
followup_cases = unit_tests("followup")


# -- what the services make, as their unit tests make it ---------------------------------------------


def intake_resources() -> list[dict[str, Any]]:
    rules = load_rules(ScreeningRules, SCREENING_RULES_FILE)
    made = [
        intake_cases.resources.patient(intake_cases.PATIENT_ROW, identifying=True),
        intake_cases.resources.patient(intake_cases.PATIENT_ROW, identifying=False),
    ]
    consent_row = {
        "id": uuid.uuid4(),
        "patient_id": intake_cases.PATIENT_ID,
        "purpose": "referral",
        "agencies": ["agency-b"],
        "program_categories": ["food"],
        "period_start": NOW,
        "period_end": NOW + timedelta(days=365),
        "status": "active",
        "recorded_at": NOW,
    }
    made += [
        intake_cases.resources.consent({**consent_row, "status": s}, "agency-a")
        for s in ("active", "revoked")
    ]
    for instrument, answers in intake_cases.every_instrument(rules):
        made += intake_cases.made_of(rules, intake_cases.assessment_row(rules, instrument, answers))
    return made


def intake_questionnaires() -> list[dict[str, Any]]:
    """Each instrument as the Questionnaire intake serves (``intake.fhir.questionnaires``, read only
    once intake's CapabilityStatement says it serves them)."""
    rules = load_rules(ScreeningRules, SCREENING_RULES_FILE)
    questionnaires = importlib.import_module("intake.fhir.questionnaires")
    return [questionnaires.questionnaire(rules, instrument) for instrument in rules.instruments]


def careplan_resources() -> list[dict[str, Any]]:
    library = load_rules(PlanLibrary, DEFAULT_LIBRARY)
    criteria = load_rules(NecessityCriteria, DEFAULT_CRITERIA)
    ctx = SimpleNamespace(library=library, criteria=criteria)  # what made_of reads of the service's context
    resources = careplan_cases.resources
    made = careplan_cases.made_of(ctx)
    made += [
        resources.service_request(careplan_cases.request_row(service_code=code), spec)
        for code, spec in criteria.services.items()
    ]
    made.append(resources.service_request(careplan_cases.request_row(service_code="gone"), None))
    refused = careplan_cases.request_row(
        met=False,
        failed_criteria=["risk-at-least-high"],
        alternatives=["telehealth-check-ins"],
        chosen_alternative="telehealth-check-ins",
        chosen_at=NOW,
        chosen_by_subject="cm-bo",
    )
    made.append(resources.service_request(refused, criteria.services["home-health-visits"]))
    return made


def referral_resources() -> list[dict[str, Any]]:
    cases = referral_cases
    made = []
    for status in cases.STATUSES:
        row = cases.referral_row(status)
        made += [
            cases.resources.task(row, "org-food-bank", cases.CODES),
            cases.resources.service_request(row, "org-food-bank", cases.CODES),
        ]
    not_served = {"service_delivered": False, "reason": "client-unavailable"}
    made.append(cases.resources.task(cases.referral_row("completed", outcome=not_served), None, cases.CODES))
    made.append(cases.resources.service_request(cases.referral_row(need="depression"), None, cases.CODES))
    seed = cases.SEED
    made += [cases.directory.organization(o.model_dump()) for o in seed.organizations]
    made += [
        cases.directory.location(loc.model_dump(), o.id) for o in seed.organizations for loc in o.locations
    ]
    made.append(
        cases.directory.location(
            {"id": "loc-online", "name": "Online", "location_type": "virtual", "postal_code": None}, "org-x"
        )
    )
    made += [cases.directory.healthcare_service(cases.service_row(s), cases.CODES) for s in seed.services]
    for capacity in ("waitlist", "additional-assessment-required"):
        made.append(
            cases.directory.healthcare_service(
                cases.service_row(
                    seed.services[0], capacity_status=capacity, capacity_notes="About 15 waiting"
                ),
                cases.CODES,
            )
        )
    return made


def followup_resources() -> list[dict[str, Any]]:
    cases = followup_cases
    rules = load_rules(FollowUpRules, RULES_FILE)
    made = [
        cases.resources.follow_up(cases.follow_up_row(rules, reason, status, priority), cases.OUTCOME)
        for reason in cases.REASONS
        for status in cases.STATUSES
        for priority in PRIORITIES
    ]
    unassigned = cases.follow_up_row(rules, cases.PLAN_CADENCE, "due", assignee=None)
    made.append(cases.resources.follow_up(unassigned))
    reassessed = cases.follow_up_row(rules, cases.PLAN_CADENCE, "completed") | {"reassessment": "worsening"}
    made.append(cases.resources.follow_up(reassessed, cases.OUTCOME))
    made += [
        cases.resources.work_item(cases.task_row(kind, status))
        for kind in cases.TASK_RULES.kinds
        for status in cases.resources.TASK_STATUS
    ]
    return made


def audit_events(service: str) -> list[dict[str, Any]]:
    """The kernel's AuditEvents, as every FHIR service serves its audit log: a read shown (from an
    address, of one record), an attempt refused and a search that found nobody."""
    shown = {
        "id": uuid.UUID(int=7),
        "recorded_at": NOW,
        "action": "R",
        "outcome": "allowed",
        "outcome_detail": None,
        "subject": "cm-riverside-ana",
        "role": "care-manager",
        "agency_id": "agency-a",
        "network_address": "10.0.0.7",
        "source": service,
        "patient_id": intake_cases.PATIENT_ID,
        "patient_agency_id": "agency-a",
        "what": "assessment",
        "entity_id": str(uuid.UUID(int=9)),
        "route": "GET /v1/assessments/{assessment_id}",
    }
    nobody = shown | {  # a search by name that found nobody: no patient, no record
        "id": uuid.UUID(int=10),
        "outcome_detail": "none found",
        "patient_id": None,
        "patient_agency_id": None,
        "what": "patient",
        "entity_id": None,
        "route": "POST /v1/patients/search",
    }
    refused = shown | {
        "id": uuid.UUID(int=8),
        "outcome": "denied",
        "outcome_detail": "assessment:read",
        "role": "admin",
        "network_address": None,
        "entity_id": None,
    }
    return [audit_event(shown), audit_event(refused), audit_event(nobody)]


async def capability_statements() -> list[dict[str, Any]]:
    """``GET /fhir/R4/metadata`` of each service's own app (no database or broker is reached)."""
    statements = []
    for service in FHIR_SERVICES:
        app = importlib.import_module(f"{service}.main").build_app()
        app.state.runtime.audit = _Trail()
        async with client_of(app, f"http://{service}") as client:
            answer = await client.get("/fhir/R4/metadata", headers=bearer("agency-a", "analyst"))
        assert answer.status_code == 200, (service, answer.text)
        statements.append(answer.json())
    return statements


def served(statement: dict[str, Any]) -> set[str]:
    return {resource["type"] for resource in statement["rest"][0]["resource"]}


class _Trail:
    """Stands in for the audit trail."""

    async def record(self, entries: Any) -> None:
        return None


def search_page(service: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A searchset Bundle as ``careloop_shared.fhir.searchset`` answers a search on that service."""
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": (service, 80),
        "path": f"/fhir/R4/{resources[0]['resourceType']}",
        "query_string": f"patient={intake_cases.PATIENT_ID}".encode(),
        "headers": [(b"host", service.encode())],
    }
    return searchset(Request(scope), resources, next_offset=len(resources), total=len(resources) + 1)


def bundles(made: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each service's searchset of its first resource type, and one collection (the export's shape) of
    every page, its relative references made absolute."""
    pages = []
    for service, resources in made.items():
        of_first_type = {r["id"]: r for r in resources if r["resourceType"] == resources[0]["resourceType"]}
        pages.append(search_page(service, list(of_first_type.values())[:5]))
    return [*pages, collection(pages, timestamp=NOW.isoformat())]


# -- broken on purpose: what the validator must call an error -----------------------------------------


@dataclass
class Broken:
    why: str
    resource: dict[str, Any]
    location: str  # where the error must be found
    words: str  # what its message must say
    found: list[Issue] = field(default_factory=list)


def broken_copies(made: dict[str, list[dict[str, Any]]]) -> list[Broken]:
    def first(service: str, resource_type: str) -> dict[str, Any]:
        return copy.deepcopy(next(r for r in made[service] if r["resourceType"] == resource_type))

    bad_status = first("referral", "Task") | {"status": "bogus"}
    missing = first("intake", "Observation")
    del missing["status"]
    wrong_type = first("intake", "Patient") | {"active": "yes"}
    not_r4 = first("careplan", "CarePlan") | {"careloopVersion": 3}
    bad_priority = first("followup", "Task") | {"priority": "whenever"}
    in_bundle = collection([search_page("followup", [bad_priority])], timestamp=NOW.isoformat())
    not_a_language = first("intake", "Patient")
    not_a_language["communication"][0]["language"]["coding"][0]["code"] = "zz-not-a-tag"
    return [
        Broken("a code outside a required binding", bad_status, "Task.status", "bogus"),
        Broken(
            "a missing required element", missing, "Observation", "Observation.status: minimum required = 1"
        ),
        Broken("a wrong type", wrong_type, "Patient.active", "boolean"),
        Broken("an element R4 does not have", not_r4, "CarePlan", "careloopVersion"),
        Broken("a bad code inside a Bundle entry", in_bundle, "Bundle.entry[0].resource", "whenever"),
        Broken(
            "a language tag BCP-47 does not have", not_a_language, "Patient.communication[0]", "zz-not-a-tag"
        ),
    ]


# -- one validation run for the module -----------------------------------------------------------


@dataclass
class Validated:
    made: dict[str, list[dict[str, Any]]]  # by service, then "capabilities" and "bundles"
    broken: list[Broken]
    issues: dict[int, list[Issue]]  # by the resource's place in the list validated

    def of(self, group: str) -> Iterator[tuple[dict[str, Any], list[Issue]]]:
        start = 0
        for name, resources in self.made.items():
            if name == group:
                for offset, resource in enumerate(resources):
                    yield resource, self.issues.get(start + offset, [])
            start += len(resources)


@pytest.fixture(scope="module")
async def validated() -> Validated:
    made = {
        "intake": intake_resources(),
        "careplan": careplan_resources(),
        "referral": referral_resources(),
        "followup": followup_resources(),
    }
    for service in FHIR_SERVICES:  # each serves its audit log as AuditEvents (the kernel's)
        made[service] += audit_events(service)
    made["capabilities"] = await capability_statements()
    if "Questionnaire" in served(made["capabilities"][FHIR_SERVICES.index("intake")]):
        made["intake"] += intake_questionnaires()
    made["bundles"] = bundles({s: made[s] for s in FHIR_SERVICES})
    broken = broken_copies(made)
    resources = [r for group in made.values() for r in group] + [b.resource for b in broken]
    try:
        issues = validate_r4(resources)
    except ValidatorUnavailable as missing:
        pytest.fail(f"the FHIR R4 validator cannot run (make fhir-validator):\n{missing}")
    by_index: dict[int, list[Issue]] = {}
    for issue in issues:
        by_index.setdefault(issue.index, []).append(issue)
    first_broken = len(resources) - len(broken)
    for n, b in enumerate(broken):
        b.found = by_index.get(first_broken + n, [])
    return Validated(made, broken, by_index)


def _errors(found: list[tuple[dict[str, Any], list[Issue]]]) -> list[str]:
    return [str(i) for _, issues in found for i in issues if i.is_error]


@pytest.mark.parametrize("service", FHIR_SERVICES)
def test_every_resource_type_a_service_serves_is_valid_r4(validated, service):
    found = list(validated.of(service))
    types = served(validated.made["capabilities"][FHIR_SERVICES.index(service)])
    built = {r["resourceType"] for r, _ in found}
    assert built == types, f"{service} serves {sorted(types - built)}: build them in {__name__} too"
    assert _errors(found) == []


def test_every_services_capability_statement_is_valid_r4(validated):
    found = list(validated.of("capabilities"))
    assert [r["software"]["name"] for r, _ in found] == [f"careloop {s}" for s in FHIR_SERVICES]
    assert all(r["fhirVersion"] == "4.0.1" for r, _ in found)
    assert _errors(found) == []


def test_searchset_and_collection_bundles_are_valid_r4_with_their_entries(validated):
    found = list(validated.of("bundles"))
    assert [r["type"] for r, _ in found] == ["searchset"] * len(FHIR_SERVICES) + ["collection"]
    assert len(found[-1][0]["entry"]) == sum(len(r["entry"]) for r, _ in found[:-1])
    assert _errors(found) == []


def test_the_validator_calls_a_bad_code_a_missing_element_and_a_wrong_type_errors(validated):
    for broken in validated.broken:
        errors = [i for i in broken.found if i.is_error]
        assert any(i.location.startswith(broken.location) and broken.words in i.message for i in errors), (
            f"{broken.why}: {[str(i) for i in broken.found]}"
        )


def test_codes_the_validator_cannot_look_up_offline_are_never_errors(validated):
    """LOINC: a warning that the code system is unknown offline. SNOMED CT: not looked up at all (the
    validator leaves it alone without a terminology server). Neither is ever an error."""
    intake = list(validated.of("intake"))
    loinc = [
        i
        for _, issues in intake
        for i in issues
        if f"CodeSystem is unknown and can't be validated: {LOINC}" in i.message
    ]
    assert loinc and {i.severity for i in loinc} == {"warning"}
    assert {i.location.split("[")[0] for i in loinc} >= {"Observation.code", "QuestionnaireResponse.item"}
    with_snomed = [(r, issues) for r, issues in intake if SNOMED in json.dumps(r)]
    assert "Condition" in {r["resourceType"] for r, _ in with_snomed}
    assert _errors(with_snomed) == []
