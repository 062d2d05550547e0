"""A patient's export Bundle, assembled from hand-made searchset pages: one entry per resource, no
collision between two services' ids, every reference resolvable, and the unresolvable ones named."""

from fhir.resources.R4B.bundle import Bundle

from careloop_shared.fhir_bundle import collection, unresolved, wanted

INTAKE = "http://intake/fhir/R4"
CAREPLAN = "http://careplan/fhir/R4"
REFERRAL = "http://referral/fhir/R4"
NOW = "2026-11-30T18:00:00+00:00"


def page(base: str, *resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
    }


PATIENT = {"resourceType": "Patient", "id": "p1"}


def service_request(rid: str, **extra: object) -> dict:
    return {"resourceType": "ServiceRequest", "id": rid, "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}, **extra}  # fmt: skip


def test_same_page_twice_gives_each_resource_once():
    intake = page(INTAKE, PATIENT)
    bundle = collection([intake, intake], timestamp=NOW)
    assert [e["fullUrl"] for e in bundle["entry"]] == [f"{INTAKE}/Patient/p1"]
    Bundle.model_validate(bundle)


def test_two_services_same_type_and_id_are_two_entries_each_resolving_its_own():
    task = {"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order",
            "focus": {"reference": "ServiceRequest/s1"}, "for": {"reference": "Patient/p1"}}  # fmt: skip
    bundle = collection(
        [
            page(INTAKE, PATIENT),
            page(CAREPLAN, service_request("s1")),
            page(REFERRAL, service_request("s1"), task),
        ],
        timestamp=NOW,
    )
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert f"{CAREPLAN}/ServiceRequest/s1" in urls and f"{REFERRAL}/ServiceRequest/s1" in urls
    resolved_task = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task")
    assert resolved_task["focus"] == {"reference": f"{REFERRAL}/ServiceRequest/s1"}
    assert resolved_task["for"] == {"reference": f"{INTAKE}/Patient/p1"}
    assert unresolved(bundle) == []
    Bundle.model_validate(bundle)


def test_missing_targets_are_listed_and_reading_them_resolves_them():
    sr = service_request("s1", performer=[{"reference": "Organization/o1"}])
    sr["requester"] = {"identifier": {"system": "urn:agency", "value": "A"}}
    pages = [page(INTAKE, PATIENT), page(REFERRAL, sr)]
    partial = collection(pages, timestamp=NOW)
    assert unresolved(partial) == ["Organization/o1"]
    assert wanted(partial, ["Organization", "Location"]) == ["Organization/o1"]
    org = {"resourceType": "Organization", "id": "o1", "name": "Food bank"}
    whole = collection(pages, [(REFERRAL, org)], timestamp=NOW)
    assert unresolved(whole) == []
    Bundle.model_validate(whole)


def test_a_patient_reference_without_the_patient_is_unresolved():
    bundle = collection([page(CAREPLAN, service_request("s1"))], timestamp=NOW)
    assert unresolved(bundle) == ["Patient/p1"]


def test_an_ambiguous_reference_is_left_unresolved_not_guessed():
    other = {"resourceType": "Patient", "id": "p1"}
    bundle = collection(
        [page(INTAKE, PATIENT), page(REFERRAL, other), page(CAREPLAN, service_request("s1"))], timestamp=NOW
    )
    assert unresolved(bundle) == ["Patient/p1"]
