"""referral's FHIR mappers, pure: every resource validates as FHIR (``fhir.resources``, R4B: the nearest
to R4 it ships), a referral's Task follows the Gravity referral Task profile for every status careloop
has, and the directory's entries carry their codes only where the reference gives them."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B import get_fhir_model_class

from careloop_shared.fhir import SDOH_CATEGORY
from careloop_shared.rules import load_rules
from referral.directory.store import service_out
from referral.domain.directory import DIRECTORY_FILE, SeedDirectory
from referral.domain.lifecycle import NEEDS_REASON, STATUSES
from referral.fhir import directory, resources
from referral.fhir.codes import fhir_codes

CODES = fhir_codes()
AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SEED = load_rules(SeedDirectory, DIRECTORY_FILE)
REASON_OF = {
    "rejected": "no-capacity",
    "cancelled": "client-declined",
    "on-hold": "waitlist",
    "failed": "unable-to-contact",
    "draft": "awaiting-consent",
}
# fhir.resources checks structure, not required bindings: the value sets, from domain.md 1.1 and 1.2.
GRAVITY_TASK_STATUS = {
    "draft",
    "requested",
    "accepted",
    "rejected",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
}
REQUEST_STATUS = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}


def valid(resource: dict) -> dict:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def referral_row(status: str = "requested", **changed) -> dict:
    row = {
        "id": uuid.uuid4(),
        "service_request_id": uuid.uuid4(),
        "patient_id": uuid.uuid4(),
        "referring_agency_id": "agency-home",
        "need": "food-insecurity",
        "program_category": "food-assistance",
        "program_id": "prg-food-bank-central",
        "receiving_agency_id": "agency-food-bank",
        "status": status,
        "status_reason": REASON_OF.get(status),
        "priority": "urgent",
        "consent_id": uuid.uuid4(),
        "outcome": {"service_delivered": True, "enrollment_status": "enrolled"}
        if status == "completed"
        else None,
        "made_at": None if status == "draft" else AT,
        "created_at": AT - timedelta(minutes=5),
        "updated_at": AT + timedelta(days=1),
        "accepted_at": AT + timedelta(hours=3)
        if status in ("accepted", "in-progress", "completed")
        else None,
        "outcome_due_at": AT + timedelta(days=14),
    }
    return {**row, **changed}


@pytest.mark.parametrize("status", STATUSES)
def test_a_referral_in_every_status_is_a_valid_task_on_its_service_request(status):
    row = referral_row(status)
    task = valid(resources.task(row, "org-food-bank", CODES))
    request = valid(resources.service_request(row, "org-food-bank", CODES))
    assert task["status"] == status  # careloop's statuses are the Gravity referral Task's
    assert task["status"] in GRAVITY_TASK_STATUS and request["status"] in REQUEST_STATUS
    assert (task["intent"], task["code"]["coding"][0]["code"]) == ("order", "fulfill")
    assert task["focus"] == {"reference": f"ServiceRequest/{request['id']}"}
    assert request["id"] == str(row["service_request_id"])
    assert task["for"] == request["subject"] == {"reference": f"Patient/{row['patient_id']}"}
    assert task["owner"] == {"reference": "Organization/org-food-bank"} == request["performer"][0]
    assert task["requester"]["identifier"] == {"system": resources.AGENCY, "value": "agency-home"}
    assert task["authoredOn"] == (row["made_at"] or row["created_at"]).isoformat()
    assert task["businessStatus"]["coding"][0] == {"system": resources.REFERRAL_STATUS, "code": status}
    assert request["status"] == resources.REQUEST_STATUS[status]
    if status in NEEDS_REASON:
        assert task["statusReason"]["text"]


def test_a_reason_the_profile_requires_is_given_in_words_even_when_careloop_kept_no_code():
    for status in sorted(NEEDS_REASON):
        task = valid(resources.task(referral_row(status, status_reason=None), None, CODES))
        assert task["statusReason"] == {"text": resources.words(status)}
    rejected = resources.task(referral_row("rejected"), None, CODES)
    assert rejected["statusReason"] == {
        "coding": [{"system": resources.REFERRAL_REASON, "code": "no-capacity"}],
        "text": "No capacity",
    }
    assert "statusReason" not in resources.task(referral_row("accepted"), None, CODES)


def test_only_a_completed_referral_has_outputs_the_resulting_activity_and_enrollment():
    done = valid(resources.task(referral_row("completed"), "org-food-bank", CODES))
    [activity, enrollment] = done["output"]
    assert activity["type"]["coding"][0] == {
        "system": SDOH_CATEGORY,
        "code": "resulting-activity",
        "display": "Resulting Activity",
    }
    assert activity["valueCodeableConcept"] == {"text": "Service delivered"}
    assert enrollment["valueCodeableConcept"]["coding"][0]["code"] == "is-enrolled"
    not_served = {"service_delivered": False, "reason": "client-unavailable"}
    [only] = valid(resources.task(referral_row("completed", outcome=not_served), None, CODES))["output"]
    assert only["valueCodeableConcept"] == {"text": "Service not delivered: client unavailable"}
    failed = referral_row("failed", outcome={"service_delivered": False, "reason": "unable-to-contact"})
    assert "output" not in resources.task(failed, None, CODES)


def test_business_status_names_the_finer_status_of_the_reference_where_the_referral_says_it():
    def finer(row: dict) -> str | None:
        codings = resources.task(row, None, CODES)["businessStatus"]["coding"]
        return next((c["code"] for c in codings if c["system"] == resources.BUSINESS_STATUS), None)

    assert finer(referral_row("requested")) == "awaiting-response"
    assert finer(referral_row("on-hold")) == "waitlisted"
    assert finer(referral_row("completed")) == "service-delivered"
    assert finer(referral_row("cancelled", status_reason="referred-elsewhere")) == "rerouted"
    assert finer(referral_row("accepted")) is None


def test_a_need_is_an_sdoh_category_only_where_the_gravity_codes_have_it():
    food = valid(resources.service_request(referral_row(), None, CODES))
    assert food["category"] == [{"coding": [{"system": SDOH_CATEGORY, "code": "food-insecurity"}]}]
    assert food["code"] == {
        "coding": [{"system": resources.PROGRAM_CATEGORY, "code": "food-assistance"}],
        "text": "Food assistance",
    }
    depression = valid(resources.service_request(referral_row(need="depression"), None, CODES))
    assert "category" not in depression
    assert depression["reasonCode"] == [
        {"coding": [{"system": resources.NEED, "code": "depression"}], "text": "Depression"}
    ]
    # A program no longer in the directory: the receiving agency, by its identifier.
    assert depression["performer"] == [resources.agency("agency-food-bank")]


def service_row(service, **changed) -> dict:
    row = {k: v for k, v in service.model_dump().items() if k != "capacity"}
    row |= {"capacity_status": service.capacity.status, "capacity_notes": service.capacity.notes}
    return service_out({**row, "updated_at": AT, **changed})


def test_every_seed_directory_entry_validates_and_references_what_the_directory_has():
    organizations = [valid(directory.organization(o.model_dump())) for o in SEED.organizations]
    locations = [
        valid(directory.location(loc.model_dump(), o.id)) for o in SEED.organizations for loc in o.locations
    ]
    services = [valid(directory.healthcare_service(service_row(s), CODES)) for s in SEED.services]
    known = {f"{r['resourceType']}/{r['id']}" for r in (*organizations, *locations)}
    for resource in (*locations, *services):
        refs = [
            resource.get("managingOrganization"),
            resource.get("providedBy"),
            *resource.get("location", []),
        ]
        assert {r["reference"] for r in refs if r} <= known, resource["id"]


def test_a_program_shows_its_capacity_languages_eligibility_and_hours():
    seed = next(s for s in SEED.services if s.hours and s.eligibility.description)
    service = service_row(
        seed,
        capacity_status="waitlist",
        capacity_notes="About 15 waiting",
        eligibility={
            "description": "City residents.",
            "min_age": 18,
            "max_age": 64,
            "postal_prefixes": ["941"],
            "requirements": ["medicaid"],
        },
        hours=[
            *seed.model_dump()["hours"],
            {"freq": "MONTHLY", "byday": "SA", "opens_at": "10:00", "closes_at": "12:00"},
        ],
    )
    shown = valid(directory.healthcare_service(service, CODES))
    [capacity] = shown["extension"]
    assert capacity["url"] == directory.CAPACITY_EXTENSION
    assert capacity["extension"] == [
        {
            "url": "capacityStatus",
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": SDOH_CATEGORY,
                        "code": "no-capacity-has-waitlist",
                        "display": "No Capacity - Has Waitlist",
                    }
                ],
                "text": "Waitlist",
            },
        },
        {"url": "capacityNotes", "valueString": "About 15 waiting"},
    ]
    assert [c["coding"][0]["code"] for c in shown["communication"]] == seed.languages
    assert shown["eligibility"][0]["comment"] == (
        "City residents. Ages 18 to 64. Postal codes starting 941. Requires: medicaid."
    )
    first = seed.hours[0]
    assert shown["availableTime"][0]["availableStartTime"] == f"{first.opens_at}:00"
    assert shown["availabilityExceptions"] == "Monthly on SA, 10:00-12:00."
    unknown = service_row(seed, capacity_status="additional-assessment-required", capacity_notes=None)
    [assessed] = valid(directory.healthcare_service(unknown, CODES))["extension"][0]["extension"]
    assert assessed["valueCodeableConcept"] == {"text": "Additional assessment required"}


def test_a_virtual_location_has_no_address():
    place = {"id": "loc-online", "name": "Online", "location_type": "virtual", "postal_code": None}
    shown = valid(directory.location(place, "org-x"))
    assert "address" not in shown and shown["type"] == [{"text": "Virtual"}]
