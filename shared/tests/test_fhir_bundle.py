"""A patient's export Bundle, assembled from hand-made searchset pages: one entry per resource, no
collision between two services' ids, every reference resolvable, and the unresolvable ones named; and the
export's searches through a fake ``get``: what a role may not is not asked, failures, next links."""

import asyncio
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from careloop_shared import fhir_bundle
from careloop_shared.fhir_bundle import (
    SEARCHES,
    SERVICES,
    NotPermitted,
    PatientNotFound,
    UnusableAnswer,
    collection,
    export,
    unresolved,
    wanted,
)

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


# -- export: the searches, made through a fake ``get`` --------------------------------------------------

BASES = {s: f"http://{s}/fhir/R4" for s in SERVICES}


class FakeServices:
    """Answers ``get(service, url, params)`` from ``answers`` by URL (an empty searchset otherwise)."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        found = {f"{BASES['intake']}/Patient": page(BASES["intake"], PATIENT)}
        self.answers = found if answers is None else answers
        self.asked: list[str] = []

    async def get(self, service: str, url: str, params: object) -> dict:
        self.asked.append(url)
        answer = self.answers.get(url, page(BASES[service]))
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_export_asks_only_what_the_role_may_and_names_the_rest_left_out():
    fake = FakeServices()
    analyst = {"patient:read-id", "directory:read"}
    result = await export(fake.get, "p1", BASES, may=analyst.__contains__)
    assert fake.asked == [f"{BASES['intake']}/Patient"]
    assert [e["resource"]["resourceType"] for e in result.bundle["entry"]] == ["Patient"]
    assert result.left_out == SEARCHES[1:]


async def test_a_role_that_may_not_read_the_patient_gets_no_export_and_nothing_is_asked():
    fake = FakeServices()
    with pytest.raises(NotPermitted):
        await export(fake.get, "p1", BASES, may=lambda p: p != fhir_bundle.PATIENT.permission)
    assert fake.asked == []


async def test_no_patient_found_means_no_other_service_is_asked():
    fake = FakeServices({})
    with pytest.raises(PatientNotFound):
        await export(fake.get, "p1", BASES)
    assert fake.asked == [f"{BASES['intake']}/Patient"]


async def test_a_search_its_service_refuses_is_left_out_and_the_rest_exported():
    fake = FakeServices()
    fake.answers[f"{BASES['careplan']}/CareTeam"] = NotPermitted()
    result = await export(fake.get, "p1", BASES)
    assert [(s.service, s.kind) for s in result.left_out] == [("careplan", "CareTeam")]
    assert len(fake.asked) == len(SEARCHES)


async def test_one_failing_call_fails_the_export_and_the_calls_still_waiting_are_cancelled():
    fake = FakeServices()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def get(service: str, url: str, params: object) -> dict:
        if url == f"{BASES['followup']}/Task":
            started.set()
            try:
                await asyncio.Event().wait()  # never answers
            finally:
                cancelled.set()
        if url == f"{BASES['referral']}/Task":
            await started.wait()
            raise RuntimeError("referral is down")
        return await fake.get(service, url, params)

    with pytest.raises(RuntimeError, match="referral is down"):
        await asyncio.wait_for(export(get, "p1", BASES), timeout=5)
    assert cancelled.is_set()


async def test_a_next_link_to_another_address_or_in_a_loop_is_not_followed():
    elsewhere = "http://elsewhere/fhir/R4/Task?patient=p1&_offset=1"
    for next_url in (elsewhere, f"{BASES['followup']}/Task?_offset=0"):
        fake = FakeServices()
        fake.answers[f"{BASES['followup']}/Task"] = {**page(BASES["followup"]), "link": [
            {"relation": "next", "url": next_url}]}  # fmt: skip
        fake.answers[next_url] = fake.answers[f"{BASES['followup']}/Task"]
        with pytest.raises(UnusableAnswer):
            await export(fake.get, "p1", BASES)
        assert elsewhere not in fake.asked
