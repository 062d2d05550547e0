"""intake over HTTP against its real database and broker (in-process app, real runtime)."""

import io
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
import pytest_asyncio
import structlog

from careloop_shared.contracts import ReferralMade, ReferralStatusChanged
from careloop_shared.doors import NUL_MSG
from careloop_shared.events import REGISTRY, Event, new_message
from careloop_shared.logging import configure_logging
from careloop_shared.rules import load_rules
from careloop_shared.schemas import path_of
from careloop_shared.testing import bearer, eventually, publish_message, served, settings_for
from intake.domain.scoring import RULES_FILE, ScreeningRules
from intake.main import IntakeSettings, build_app

pytestmark = pytest.mark.integration

SCREENING_VERSION = load_rules(ScreeningRules, RULES_FILE).version

PATIENT = {
    "given_name": "Marisol",
    "family_name": "Etxeberria",
    "birth_date": "1958-03-14",
    "preferred_language": "es",
    "contact_preference": "text",
    "phone": "+1 555 0100",
    "postal_code": "94110",
}
PHI = ("Marisol", "Etxeberria", "1958-03-14", "555 0100", "94110")
REGISTERED = ["careloop.intake.patient_registered.v1", "careloop.intake.care_manager_assigned.v1"]
PHQ9_SEVERE = {
    "instrument": "phq-9",
    "answers": dict.fromkeys(
        ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"], 3
    ),
}


def auth(agency: str, role: str = "care-manager", subject: str = "dev-user") -> dict[str, str]:
    return {**bearer(agency, role, subject), "X-Agency": agency}


def agency_of(headers: dict[str, str]) -> str:
    return headers["X-Agency"]


@pytest_asyncio.fixture(scope="module")
async def intake(infra, database_factory):
    settings = settings_for(
        IntakeSettings, infra, await database_factory("intake_api"), consumer_backoff_s=0.01
    )
    app = build_app(settings)
    async with served(app, "http://intake") as (client, runtime):
        yield client, runtime


@pytest.fixture
def agency() -> dict[str, str]:
    return auth(f"agency-{uuid.uuid4().hex[:6]}")


async def outbox(runtime, patient_id: str) -> list[tuple[str, dict]]:
    rows = await runtime.pool.fetch(
        "SELECT event_type, payload FROM outbox WHERE key = $1 ORDER BY position", patient_id
    )
    return [(r["event_type"], json.loads(r["payload"])) for r in rows]


async def register(client, agency, **changes) -> str:
    r = await client.post("/v1/patients", json={**PATIENT, **changes}, headers=agency)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_registration_emits_patient_registered_without_identifying_details(intake, agency):
    client, runtime = intake
    patient_id = await register(client, agency)
    [(event_type, body), (assigned_type, assigned)] = await outbox(runtime, patient_id)
    assert [event_type, assigned_type] == REGISTERED
    assert body["postal_area"] == "941"
    assert body["contact_preference"] == "text"
    assert not any(p in json.dumps(body) + json.dumps(assigned) for p in PHI)
    got = (await client.get(f"/v1/patients/{patient_id}", headers=agency)).json()
    assert (got["given_name"], got["phone"]) == ("Marisol", "+1 555 0100")


async def test_likely_duplicate_is_refused_with_the_existing_id(intake, agency):
    client, _ = intake
    first = await register(client, agency)
    again = await client.post(
        "/v1/patients",
        headers=agency,
        json={**PATIENT, "given_name": " marisol ", "family_name": "ETXEBERRIA"},
    )
    assert again.status_code == 409
    assert again.json()["existing_id"] == first
    other_birth_date = await client.post(
        "/v1/patients", json={**PATIENT, "birth_date": "1958-03-15"}, headers=agency
    )
    assert other_birth_date.status_code == 201
    # Another agency may register the same person: duplicates are found within an agency only.
    assert (
        await client.post("/v1/patients", json=PATIENT, headers=auth("agency-elsewhere"))
    ).status_code in (201, 409)


async def test_retried_post_with_the_same_idempotency_key_returns_the_first_result(intake, agency):
    client, runtime = intake
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(
        "/v1/patients", json={**PATIENT, "given_name": "Idem"}, headers={**agency, **key}
    )
    retry = await client.post(
        "/v1/patients", json={**PATIENT, "given_name": "Idem"}, headers={**agency, **key}
    )
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    patient_id = first.json()["id"]
    assert [t for t, _ in await outbox(runtime, patient_id)] == REGISTERED

    assess_key = {"Idempotency-Key": "assess-1"}
    a1 = await client.post(
        f"/v1/patients/{patient_id}/assessments", json=PHQ9_SEVERE, headers={**agency, **assess_key}
    )
    a2 = await client.post(
        f"/v1/patients/{patient_id}/assessments", json=PHQ9_SEVERE, headers={**agency, **assess_key}
    )
    assert a1.json() == a2.json()
    history = (await client.get(f"/v1/patients/{patient_id}/assessments", headers=agency)).json()
    assert len(history["items"]) == 1
    assert [t for t, _ in await outbox(runtime, patient_id)].count("careloop.intake.patient_assessed.v1") == 1

    reused = await client.post(
        f"/v1/patients/{patient_id}/assessments",
        headers={**agency, **assess_key},
        json={"instrument": "phq-2", "answers": {"44250-9": 0, "44255-8": 0}},
    )
    assert reused.status_code == 422
    assert "different request" in reused.text


async def test_a_failed_request_stores_nothing_so_its_retry_runs(intake, agency):
    client, _ = intake
    key = {"Idempotency-Key": str(uuid.uuid4())}
    missing = await client.post(
        f"/v1/patients/{uuid.uuid4()}/assessments", json=PHQ9_SEVERE, headers={**agency, **key}
    )
    assert missing.status_code == 404
    patient_id = await register(client, agency, given_name="Retry")
    # Same key, different path: the failed attempt left no trace, so this runs.
    ok = await client.post(
        f"/v1/patients/{patient_id}/assessments", json=PHQ9_SEVERE, headers={**agency, **key}
    )
    assert ok.status_code == 202


@pytest.mark.parametrize(("key", "kind"), [("", "string_too_short"), ("k" * 201, "string_too_long")])
async def test_an_idempotency_key_too_short_or_too_long_is_refused_at_the_header(intake, agency, key, kind):
    """Not a 400 rewritten as "the body is not JSON text" (as it was): a 422 that says where, and
    nothing kept."""
    client, _ = intake
    name = f"Key{len(key)}"
    r = await client.post(
        "/v1/patients", json={**PATIENT, "given_name": name}, headers={**agency, "Idempotency-Key": key}
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [
        {
            "loc": ["header", "Idempotency-Key"],
            "type": kind,
            "msg": "Idempotency-Key must be 1 to 200 characters",
        }
    ]
    listed = await client.get("/v1/patients", headers=agency)  # the test's own agency: nothing registered
    assert listed.status_code == 200 and listed.json()["items"] == []


@pytest.mark.parametrize(
    ("body", "loc", "msg"),
    [
        ({"instrument": "phq-11", "answers": {}}, ["body", "instrument"], "unknown instrument"),
        ({"instrument": "phq-2", "answers": {"44250-9": 1}}, ["body", "answers", "44255-8"], "missing"),
        (
            {"instrument": "phq-2", "answers": {"44250-9": 1, "44255-8": 1, "Etxeberria": 2}},
            ["body", "answers", "<not a LOINC item code>"],
            "not an item of this instrument",
        ),
        (
            {"instrument": "phq-2", "answers": {"44250-9": 1, "44255-8": 1, "12345-6": 2}},
            ["body", "answers", "12345-6"],
            "not an item of this instrument",
        ),
        (
            {"instrument": "phq-2", "answers": {"44250-9": 7, "44255-8": 1}},
            ["body", "answers", "44250-9"],
            "must be between 0 and 3",
        ),
        (
            {"instrument": "phq-2", "answers": {"44250-9": "Marisol", "44255-8": 1}},
            ["body", "answers", "44250-9"],
            "must be an integer score",
        ),
        (
            {"instrument": "ahc-hrsn", "answers": {"93030-5": "1958-03-14"}},
            ["body", "answers", "93030-5"],
            "is not an answer code of this item",
        ),
    ],
)
async def test_bad_assessment_input_names_item_and_reason_and_stores_nothing(intake, agency, body, loc, msg):
    client, runtime = intake
    patient_id = await register(client, agency, given_name=f"Bad{uuid.uuid4().hex[:4]}")
    r = await client.post(f"/v1/patients/{patient_id}/assessments", json=body, headers=agency)
    assert r.status_code == 422
    assert {"loc": loc, "type": "invalid_answer", "msg": msg} in r.json()["detail"]
    assert not any(p in r.text for p in (*PHI, "Etxeberria", "Marisol"))
    assert [t for t, _ in await outbox(runtime, patient_id)] == REGISTERED
    assert (await client.get(f"/v1/patients/{patient_id}/assessments", headers=agency)).json()["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {**PATIENT, "birth_date": "not-a-date"},
        {**PATIENT, "birth_date": "2999-01-01"},
        {**PATIENT, "contact_preference": "email"},
        {**PATIENT, "contact_preference": "pigeon"},
        {**PATIENT, "phone": "call me maybe"},
        {**PATIENT, "nickname": "Mari"},
        {k: v for k, v in PATIENT.items() if k != "family_name"},
    ],
)
async def test_bad_patient_input_is_refused_without_echoing_it(intake, agency, body):
    client, _ = intake
    r = await client.post("/v1/patients", json=body, headers=agency)
    assert r.status_code == 422
    assert not any(p in r.text for p in (*PHI, "not-a-date", "call me maybe", "Mari"))


async def test_reassessment_keeps_history_and_emits_a_new_event(intake, agency):
    client, runtime = intake
    patient_id = await register(client, agency, given_name="History")
    for answers in ({"44250-9": 3, "44255-8": 3}, {"44250-9": 0, "44255-8": 1}):
        r = await client.post(
            f"/v1/patients/{patient_id}/assessments",
            headers=agency,
            json={"instrument": "phq-2", "answers": answers},
        )
        assert r.status_code == 202
    page = (await client.get(f"/v1/patients/{patient_id}/assessments?limit=1", headers=agency)).json()
    assert len(page["items"]) == 1 and page["next_offset"] == 1
    second = (
        await client.get(f"/v1/patients/{patient_id}/assessments?limit=1&offset=1", headers=agency)
    ).json()
    assert second["next_offset"] is None
    assert [p["interpretation"] for p in (page["items"][0], second["items"][0])] == ["positive", "negative"]
    one = (await client.get(f"/v1/assessments/{page['items'][0]['id']}", headers=agency)).json()
    assert (one["total_score"], one["risk_level"], one["rules_version"]) == (
        6,
        "moderate",
        SCREENING_VERSION,
    )
    assert one["recommended_instruments"] == ["phq-9"]
    events = [b for t, b in await outbox(runtime, patient_id) if t == "careloop.intake.patient_assessed.v1"]
    assert [e["total_score"] for e in events] == [6, 1]


async def test_a_query_parameter_the_route_does_not_take_or_given_twice_is_refused(intake, agency):
    client, _ = intake
    patient_id = await register(client, agency, given_name="Query")
    listing = f"/v1/patients/{patient_id}/assessments"
    assert (await client.get(f"{listing}?limit=1", headers=agency)).status_code == 200
    refusals = (("limt=1", "limt", "unknown_parameter"), ("limit=1&limit=2", "limit", "repeated"))
    for query, loc, kind in refusals:
        refused = await client.get(f"{listing}?{query}", headers=agency)
        assert refused.status_code == 422, refused.text
        assert [(d["loc"], d["type"]) for d in refused.json()["detail"]] == [(["query", loc], kind)]


async def test_urgent_phq9_carries_the_safety_flag_in_the_event(intake, agency):
    client, runtime = intake
    patient_id = await register(client, agency, given_name="Urgent")
    await client.post(f"/v1/patients/{patient_id}/assessments", json=PHQ9_SEVERE, headers=agency)
    [event] = [b for t, b in await outbox(runtime, patient_id) if t.endswith("patient_assessed.v1")]
    assert (event["risk_level"], event["urgent_flags"]) == ("urgent", ["suicidal-ideation"])
    assert {
        "code": "44261-6",
        "system": "http://loinc.org",
        "value": 27,
        "points": None,
        "interpretation": "severe",
    } in event["observations"]


async def test_update_emits_only_non_identifying_fields(intake, agency):
    client, runtime = intake
    patient_id = await register(client, agency, given_name="Update")
    r = await client.patch(
        f"/v1/patients/{patient_id}",
        headers=agency,
        json={"family_name": "Etxeberria-Ruiz", "preferred_language": "eu", "postal_code": "10001"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["family_name"] == "Etxeberria-Ruiz"
    _, updated = (await outbox(runtime, patient_id))[-1]
    assert updated["changed_fields"] == ["family_name", "postal_code", "preferred_language"]
    assert (updated["preferred_language"], updated["postal_area"]) == ("eu", "100")
    assert "Etxeberria" not in json.dumps(updated)
    cleared = await client.patch(f"/v1/patients/{patient_id}", json={"phone": None}, headers=agency)
    assert cleared.status_code == 422  # they prefer texts: a phone number is needed
    noop = await client.patch(f"/v1/patients/{patient_id}", json={"preferred_language": "eu"}, headers=agency)
    assert noop.status_code == 200
    assert len(await outbox(runtime, patient_id)) == 3


async def test_update_that_would_duplicate_another_patient_is_refused(intake, agency):
    client, _ = intake
    first = await register(client, agency, given_name="Twin")
    second = await register(client, agency, given_name="Twine")
    r = await client.patch(f"/v1/patients/{second}", json={"given_name": "TWIN"}, headers=agency)
    assert r.status_code == 409 and r.json()["existing_id"] == first
    assert (await client.get(f"/v1/patients/{second}", headers=agency)).json()["given_name"] == "Twine"


async def test_consent_is_recorded_and_revoked_with_events(intake, agency):
    client, runtime = intake
    patient_id = await register(client, agency, given_name="Consent")
    r = await client.post(
        f"/v1/patients/{patient_id}/consents",
        headers=agency,
        json={
            "purpose": "referral",
            "agencies": ["agency-food-bank"],
            "program_categories": ["food-assistance"],
            "period_end": "2027-12-31T00:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    consent_id = r.json()["id"]
    revoked = await client.post(f"/v1/patients/{patient_id}/consents/{consent_id}/revoke", headers=agency)
    again = await client.post(f"/v1/patients/{patient_id}/consents/{consent_id}/revoke", headers=agency)
    assert revoked.json()["status"] == again.json()["status"] == "revoked"
    types = [t for t, _ in await outbox(runtime, patient_id)]
    assert types[2:] == ["careloop.intake.consent_recorded.v1", "careloop.intake.consent_revoked.v1"]
    listed = (await client.get(f"/v1/patients/{patient_id}/consents", headers=agency)).json()
    assert [(c["id"], c["status"]) for c in listed] == [(consent_id, "revoked")]
    empty = await client.post(
        f"/v1/patients/{patient_id}/consents", json={"purpose": "referral"}, headers=agency
    )
    assert empty.status_code == 422


async def test_a_consents_period_is_kept_with_its_offset_and_within_the_years_kept(intake, agency):
    """Found by the workspace walk: a start without an offset and an end with one was a 500 (the two
    could not be compared), and a start of 0001-01-01T00:00Z was kept as -infinity and read back
    without an offset, which broke every page that showed it."""
    client, _ = intake
    patient_id = await register(client, agency, given_name="Period")
    path = f"/v1/patients/{patient_id}/consents"
    base = {"purpose": "referral", "program_categories": ["food-assistance"]}
    mixed = await client.post(
        path,
        headers=agency,
        json={**base, "period_start": "1900-01-01T00:00:00", "period_end": "2999-01-01T00:00:00Z"},
    )
    assert mixed.status_code == 201, mixed.text
    for sent in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00+01:00"):
        refused = await client.post(path, headers=agency, json={**base, "period_start": sent})
        assert refused.status_code == 422, refused.text
        assert [(p["loc"], p["type"]) for p in refused.json()["detail"]] == [
            (["body", "period_start"], "time_out_of_range")
        ]
    listed = (await client.get(path, headers=agency)).json()
    assert [c["period_start"] for c in listed] == ["1900-01-01T00:00:00Z"]


async def test_another_agency_sees_nothing_of_the_patient(intake, agency):
    client, runtime = intake
    patient_id = await register(client, agency, given_name="Private")
    await client.post(f"/v1/patients/{patient_id}/assessments", json=PHQ9_SEVERE, headers=agency)
    assessment_id = (await client.get(f"/v1/patients/{patient_id}/assessments", headers=agency)).json()[
        "items"
    ][0]["id"]
    stranger = auth("agency-stranger")
    answers = [
        await client.get(f"/v1/patients/{patient_id}", headers=stranger),
        await client.patch(f"/v1/patients/{patient_id}", json={"preferred_language": "fr"}, headers=stranger),
        await client.get(f"/v1/patients/{patient_id}/assessments", headers=stranger),
        await client.post(f"/v1/patients/{patient_id}/assessments", json=PHQ9_SEVERE, headers=stranger),
        await client.get(f"/v1/assessments/{assessment_id}", headers=stranger),
        await client.post(
            f"/v1/patients/{patient_id}/consents",
            json={"purpose": "referral", "agencies": ["x"]},
            headers=stranger,
        ),
        await client.get(f"/v1/patients/{patient_id}/consents", headers=stranger),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert all("Private" not in a.text for a in answers)
    listed = (await client.get("/v1/patients", headers=stranger)).json()["items"]
    assert patient_id not in [p["id"] for p in listed]
    assert len([t for t, _ in await outbox(runtime, patient_id)]) == 3


async def test_emitted_events_validate_against_the_published_schemas(intake, agency):
    client, runtime = intake
    patient_id = await register(client, agency, given_name="Schema", safe_channels=["text", "in-person"])
    supervisor = auth(agency_of(agency), role="supervisor", subject="sv-sam")
    reassign = {"care_manager_id": "cm-bo", "reason": "caseload-balance"}
    await client.post(f"/v1/patients/{patient_id}/care-manager", json=reassign, headers=supervisor)
    hrsn = {
        "71802-3": "LA31994-9",
        "96778-6": ["LA28580-1", "LA32001-2"],
        "88122-7": "LA6729-3",
        "88123-5": "LA28398-8",
        "93030-5": "LA33-6",
        "96779-4": "LA32002-0",
        "95618-5": "LA6482-9",
        "95617-7": "LA6482-9",
        "95616-9": "LA6270-8",
        "95615-1": "LA6270-8",
    }
    for body in (
        {"instrument": "ahc-hrsn", "answers": hrsn},
        PHQ9_SEVERE,
        {"instrument": "phq-2", "answers": {"44250-9": 1, "44255-8": 2}},
    ):
        assert (
            await client.post(f"/v1/patients/{patient_id}/assessments", json=body, headers=agency)
        ).status_code == 202
    await client.patch(
        f"/v1/patients/{patient_id}",
        json={"contact_preference": "do-not-contact", "safe_channels": ["in-person"]},
        headers=agency,
    )
    consent = await client.post(
        f"/v1/patients/{patient_id}/consents",
        headers=agency,
        json={"purpose": "care-coordination", "agencies": ["agency-b"]},
    )
    await client.post(f"/v1/patients/{patient_id}/consents/{consent.json()['id']}/revoke", headers=agency)
    events = await outbox(runtime, patient_id)
    assert len({t for t, _ in events}) == 6
    for event_type, body in events:
        schema = json.loads(path_of(event_type).read_text())
        jsonschema.validate(body, schema)
        assert REGISTRY[event_type].model_validate(body)
    hrsn_event = next(
        b for t, b in events if t.endswith("patient_assessed.v1") and b["instrument"] == "ahc-hrsn"
    )
    assert [n["code"] for n in hrsn_event["needs"]] == [
        "housing-instability",
        "inadequate-housing",
        "food-insecurity",
        "transportation-insecurity",
        "utility-insecurity",
        "intimate-partner-violence",  # 5 + 5 + 1 + 1 = 12 > 10
    ]


async def test_the_list_shows_only_the_patients_asked_for_by_id_of_the_callers_agency(intake, agency):
    client, _ = intake
    first, second, third = [await register(client, agency, given_name=n) for n in ("Una", "Duo", "Tria")]
    elsewhere = await register(client, auth("agency-elsewhere"), given_name="Alien")
    unknown = str(uuid.uuid4())
    asked = [("id", i) for i in (third, elsewhere, first, unknown, first)]
    listed = await client.get("/v1/patients", params=asked, headers=agency)
    assert listed.status_code == 200, listed.text
    # Each once, in the order they were registered; another agency's and an unknown id are left out.
    assert [(p["id"], p["given_name"]) for p in listed.json()["items"]] == [(first, "Una"), (third, "Tria")]
    paged = await client.get("/v1/patients", params=[*asked, ("limit", "1"), ("offset", "1")], headers=agency)
    assert ([p["id"] for p in paged.json()["items"]], paged.json()["next_offset"]) == ([third], None)
    assert second not in listed.text
    # Not an id, or more than 200 of them: refused, saying where.
    for params in ([("id", "Una")], [("id", str(uuid.uuid4())) for _ in range(201)]):
        refused = await client.get("/v1/patients", params=params, headers=agency)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][:2] == ["query", "id"], (
            refused.text
        )


async def test_a_patient_is_found_by_the_whole_name_and_birth_date_within_the_agency_only(intake, agency):
    client, runtime = intake
    family = f"Zubiría-{uuid.uuid4().hex[:6]}"
    wanted = await register(client, agency, family_name=family)
    await register(client, agency, family_name=family, birth_date="1958-03-15")  # another person
    elsewhere = auth("agency-elsewhere")
    await register(client, elsewhere, family_name=family)
    agency_id = agency_of(agency)

    async def search(headers, **body):
        return await client.post(
            "/v1/patients/search",
            json={"given_name": "Marisol", "family_name": family, "birth_date": "1958-03-14", **body},
            headers=headers,
        )

    # As registration finds a likely duplicate: accents, case, punctuation and spacing aside.
    found = await search(agency, given_name="  MARISOL ", family_name=family.upper().replace("Í", "I"))
    assert found.status_code == 200, found.text
    [patient] = found.json()["items"]
    assert (patient["id"], patient["given_name"], patient["phone"]) == (wanted, "Marisol", "+1 555 0100")
    assert found.json()["next_offset"] is None
    # Part of a name, another birth date or another agency's caller: nobody.
    for headers, body in (
        (agency, {"family_name": family[:-1]}),
        (agency, {"birth_date": "1958-03-13"}),
        (auth("agency-nobody"), {}),
    ):
        assert (await search(headers, **body)).json()["items"] == [], body
    [theirs] = (await search(elsewhere)).json()["items"]
    assert theirs["id"] != wanted
    # Recorded as a read of the patient found, by whoever searched.
    supervisor = auth(agency_id, role="supervisor", subject="sv-sam")
    assert (await search(auth(agency_id, subject="cm-finder"))).status_code == 200
    trail = (await client.get(f"/v1/audit?patient_id={wanted}", headers=supervisor)).json()["items"]
    assert ("cm-finder", "allowed", "POST /v1/patients/search") in [
        (e["subject"], e["outcome"], e["route"]) for e in trail
    ]
    # A search that finds nobody is kept too: one entry naming no patient.
    nobody = auth(agency_id, subject="cm-nobody")
    assert (await search(nobody, birth_date="1901-01-01")).json()["items"] == []
    kept = await runtime.pool.fetch(
        "SELECT patient_id, outcome, outcome_detail, route FROM audit_log WHERE subject = 'cm-nobody'"
    )
    assert [tuple(r) for r in kept] == [(None, "allowed", "none found", "POST /v1/patients/search")]
    # ...and listed with what that person was shown.
    activity = await client.get("/v1/audit/activity", params={"subject": "cm-nobody"}, headers=supervisor)
    assert activity.status_code == 200, activity.text
    assert [(e["patient_id"], e["outcome_detail"], e["route"]) for e in activity.json()["items"]] == [
        (None, "none found", "POST /v1/patients/search")
    ]
    # An erased patient is not found.
    erased = await client.post(
        f"/v1/patients/{wanted}/erasure", json={"reason": "request"}, headers=supervisor
    )
    assert erased.status_code == 200, erased.text
    assert (await search(agency)).json()["items"] == []
    # Refusals: a role without patient:read; bad input, said where and why without the input itself.
    assert (await search(auth(agency_id, role="analyst"))).status_code == 403
    for body, loc in (
        ({"birth_date": "14/03/1958"}, ["body", "birth_date"]),
        ({"given_name": ""}, ["body", "given_name"]),
        ({"family_name": "x" * 201}, ["body", "family_name"]),
    ):
        refused = await search(agency, **body)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == loc, refused.text
        assert family not in refused.text and "1958" not in refused.text
    too_long_key = {**agency, "Idempotency-Key": "k" * 201}
    refused = await search(too_long_key)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_every_read_of_a_patients_details_is_audited_with_the_person_and_refusals_too(intake, agency):
    client, runtime = intake
    patient_id = await register(client, agency, given_name="Audited")
    agency_id = agency_of(agency)
    reader = auth(agency_id, subject="cm-ana")
    assert (await client.get(f"/v1/patients/{patient_id}", headers=reader)).status_code == 200
    stranger = auth("agency-elsewhere", subject="cm-eve")
    assert (await client.get(f"/v1/patients/{patient_id}", headers=stranger)).status_code == 404
    analyst = auth(agency_id, role="analyst", subject="an-al")
    assert (await client.get(f"/v1/patients/{patient_id}", headers=analyst)).status_code == 403

    supervisor = auth(agency_id, role="supervisor", subject="sv-sam")
    trail = await client.get(f"/v1/audit?patient_id={patient_id}", headers=supervisor)
    assert trail.status_code == 200, trail.text
    seen = [(e["subject"], e["outcome"], e["what"], e["outcome_detail"]) for e in trail.json()["items"]]
    assert ("cm-ana", "allowed", "patient", None) in seen
    assert ("cm-eve", "denied", "patient", "patient not found") in seen
    assert ("an-al", "denied", "patient", "patient:read") in seen
    entry = next(e for e in trail.json()["items"] if e["subject"] == "cm-ana")
    assert (entry["route"], entry["source"], entry["patient_agency_id"]) == (
        "GET /v1/patients/{patient_id}",
        "intake",
        agency_id,
    )
    # Newest first on request: the same entries, the latest on the first page.
    oldest = [e["id"] for e in trail.json()["items"]]
    newest = await client.get(f"/v1/audit?patient_id={patient_id}&order=newest", headers=supervisor)
    assert [e["id"] for e in newest.json()["items"]] == oldest[::-1]
    latest = await client.get(f"/v1/audit?patient_id={patient_id}&order=newest&limit=1", headers=supervisor)
    assert [e["id"] for e in latest.json()["items"]] == oldest[-1:]
    bad = await client.get(f"/v1/audit?patient_id={patient_id}&order=sideways", headers=supervisor)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "order"]
    # Nobody outside the agency was shown anything; the refusals are not disclosures.
    disclosures = await client.get(f"/v1/audit/disclosures?patient_id={patient_id}", headers=supervisor)
    assert disclosures.json()["items"] == []
    # A care manager may not read the audit log; another agency's supervisor finds no such patient.
    assert (await client.get(f"/v1/audit?patient_id={patient_id}", headers=reader)).status_code == 403
    other = auth("agency-elsewhere", role="supervisor")
    assert (await client.get(f"/v1/audit?patient_id={patient_id}", headers=other)).status_code == 404
    with pytest.raises(Exception, match="append-only"):
        await runtime.pool.execute("DELETE FROM audit_log")


async def test_what_one_person_was_shown_is_listed_for_their_agency_s_supervisors(intake, agency):
    client, _ = intake
    agency_id = agency_of(agency)
    first = await register(client, agency, given_name="Activity")
    second = await register(client, agency, given_name="Actively")
    ana = auth(agency_id, subject="cm-activity")
    for patient_id in (first, second, first):
        assert (await client.get(f"/v1/patients/{patient_id}", headers=ana)).status_code == 200
    # The same id at another agency is another person: refused there, and not listed here.
    namesake = auth("agency-elsewhere", subject="cm-activity")
    assert (await client.get(f"/v1/patients/{second}", headers=namesake)).status_code == 404
    refused = auth(agency_id, role="analyst", subject="cm-activity")
    assert (await client.get(f"/v1/patients/{first}", headers=refused)).status_code == 403

    supervisor = auth(agency_id, role="supervisor", subject="sv-sam")

    async def activity(**params):
        return await client.get(
            "/v1/audit/activity", params={"subject": "cm-activity", **params}, headers=supervisor
        )

    listed = await activity()
    assert listed.status_code == 200, listed.text
    seen = [(e["patient_id"], e["outcome"], e["agency_id"]) for e in listed.json()["items"]]
    assert seen == [
        (str(first), "allowed", agency_id),
        (str(second), "allowed", agency_id),
        (str(first), "allowed", agency_id),
        (str(first), "denied", agency_id),
    ]
    oldest = [e["id"] for e in listed.json()["items"]]
    newest = await activity(order="newest", limit=3)
    assert [e["id"] for e in newest.json()["items"]] == oldest[::-1][:3]
    assert newest.json()["next_offset"] == 3
    rest = await activity(order="newest", limit=3, offset=3)
    assert [e["id"] for e in rest.json()["items"]] == oldest[:1] and rest.json()["next_offset"] is None
    # Another agency's supervisor sees their own person of that id; a care manager may not look; an
    # empty or overlong id is a 422 naming the field.
    other = await client.get(
        "/v1/audit/activity",
        params={"subject": "cm-activity"},
        headers=auth("agency-elsewhere", role="supervisor"),
    )
    # Their attempt on this agency's patient is listed without naming the patient or the record.
    assert other.status_code == 200, other.text
    [attempt] = other.json()["items"]
    assert (attempt["patient_id"], attempt["entity_id"], attempt["outcome"]) == (None, None, "denied")
    assert str(second) not in other.text
    # Only the refused attempts, or only what was shown; as AuditEvents by their outcome's code.
    refusals = await activity(outcome="denied")
    assert [(e["patient_id"], e["outcome"]) for e in refusals.json()["items"]] == [(str(first), "denied")]
    assert [e["id"] for e in (await activity(outcome="allowed")).json()["items"]] == oldest[:3]
    for code, expected in (("4", oldest[3:]), ("0", oldest[:3]), ("8", [])):
        events = await client.get(
            "/fhir/R4/AuditEvent", params={"altid": "cm-activity", "outcome": code}, headers=supervisor
        )
        assert [e["resource"]["id"] for e in events.json().get("entry", [])] == expected, code
    trail = await client.get(
        "/v1/audit", params={"patient_id": str(first), "outcome": "denied"}, headers=supervisor
    )
    assert [(e["subject"], e["role"]) for e in trail.json()["items"]] == [("cm-activity", "analyst")]
    refused_people = await client.get("/v1/audit/people", params={"outcome": "denied"}, headers=supervisor)
    assert [(p["subject"], p["role"]) for p in refused_people.json()["items"]] == [("cm-activity", "analyst")]
    assert (await activity(outcome="sideways")).status_code == 422
    assert (
        await client.get("/v1/audit/activity", params={"subject": "cm-activity"}, headers=ana)
    ).status_code == 403
    for subject in ("", "x" * 256):
        bad = await activity(subject=subject)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "subject"], bad.text


async def test_a_patient_s_and_a_person_s_entries_are_listed_for_a_period(intake, agency):
    client, _ = intake
    agency_id = agency_of(agency)
    patient_id = await register(client, agency, given_name="Period")
    ana = auth(agency_id, subject="cm-period")
    for _ in range(4):
        assert (await client.get(f"/v1/patients/{patient_id}", headers=ana)).status_code == 200
    supervisor = auth(agency_id, role="supervisor", subject="sv-sam")

    async def listed(route, **params):
        answer = await client.get(route, params=params, headers=supervisor)
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]

    everything = await listed("/v1/audit/activity", subject="cm-period")
    times = [e["recorded_at"] for e in everything]
    assert len(times) == 4 and times == sorted(times) and len(set(times)) == 4
    # From the second read (included) until the fourth (not included), both ways and paged.
    within = {"since": times[1], "until": times[3]}
    assert await listed("/v1/audit/activity", subject="cm-period", **within) == everything[1:3]
    newest = await listed("/v1/audit/activity", subject="cm-period", order="newest", limit=1, **within)
    assert newest == everything[2:3]
    assert await listed("/v1/audit/activity", subject="cm-period", since=times[3]) == everything[3:]
    assert await listed("/v1/audit/activity", subject="cm-period", until=times[0]) == []
    # The patient's trail the same way (the registration's reads are before the first of these).
    trail = await listed("/v1/audit", patient_id=patient_id, **within)
    assert [e["id"] for e in trail] == [e["id"] for e in everything[1:3]]
    assert await listed("/v1/audit/disclosures", patient_id=patient_id, **within) == []
    # A time without an offset is UTC; one outside the years kept, or no time at all, is a 422.
    naive = datetime.fromisoformat(times[1]).astimezone(UTC).replace(tzinfo=None).isoformat()
    assert await listed("/v1/audit/activity", subject="cm-period", since=naive, until=times[3]) == trail
    for bad in ({"since": "1899-12-31T23:00:00Z"}, {"until": "yesterday"}):
        refused = await client.get(
            "/v1/audit/activity", params={"subject": "cm-period", **bad}, headers=supervisor
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["query", *bad], refused.text
    # As AuditEvents: FHIR's date search, by person and by patient.
    fhir = await client.get(
        "/fhir/R4/AuditEvent",
        params=[("altid", "cm-period"), ("date", f"ge{times[1]}"), ("date", f"lt{times[3]}")],
        headers=supervisor,
    )
    assert fhir.status_code == 200, fhir.text
    assert [e["resource"]["id"] for e in fhir.json()["entry"]] == [e["id"] for e in everything[1:3]]


async def test_the_agency_s_people_the_log_has_seen_are_listed_latest_first_of_any_period(intake, agency):
    client, _ = intake
    agency_id = agency_of(agency)
    patient_id = await register(client, agency, given_name="Seen")
    supervisor = auth(agency_id, role="supervisor", subject="sv-people")

    async def read_as(subject, role="care-manager", agency=agency_id):
        reader = auth(agency, role=role, subject=subject)
        return (await client.get(f"/v1/patients/{patient_id}", headers=reader)).status_code

    assert [await read_as("cm-first"), await read_as("cm-second"), await read_as("an-third", "analyst")] == [
        200,
        200,
        403,
    ]
    assert await read_as("cm-first") == 200  # seen again: now the latest
    assert await read_as("cm-other", agency="agency-elsewhere") == 404  # another agency's person

    async def people(**params):
        answer = await client.get("/v1/audit/people", params=params, headers=supervisor)
        assert answer.status_code == 200, answer.text
        return answer.json()

    seen = (await people())["items"]
    ours = [(p["subject"], p["role"]) for p in seen if p["subject"] in ("cm-first", "cm-second", "an-third")]
    assert ours == [("cm-first", "care-manager"), ("an-third", "analyst"), ("cm-second", "care-manager")]
    assert "cm-other" not in [p["subject"] for p in seen]
    times = [p["last_recorded_at"] for p in seen]
    assert times == sorted(times, reverse=True)
    # Paged; and those seen in a period, by their latest entry of it.
    first_page = await people(limit=1)
    assert first_page["items"] == seen[:1] and first_page["next_offset"] == 1
    activity = await client.get("/v1/audit/activity", params={"subject": "cm-first"}, headers=supervisor)
    first_read, last_read = (e["recorded_at"] for e in activity.json()["items"])
    earlier = (await people(until=last_read))["items"]
    assert ("cm-first", first_read) in [(p["subject"], p["last_recorded_at"]) for p in earlier]
    assert [p["subject"] for p in (await people(since=last_read))["items"]] == ["cm-first"]
    # Only for those who may read the audit log.
    refused = await client.get("/v1/audit/people", headers=auth(agency_id, subject="cm-first"))
    assert refused.status_code == 403


async def test_each_change_names_the_person_who_made_it_in_the_answers_and_the_events(intake, agency):
    client, runtime = intake
    agency_id = agency_of(agency)
    ana, sam = auth(agency_id, subject="cm-ana"), auth(agency_id, role="supervisor", subject="sv-sam")
    patient_id = await register(client, ana, given_name="Actor")
    await client.patch(f"/v1/patients/{patient_id}", json={"preferred_language": "eu"}, headers=sam)
    consent = await client.post(
        f"/v1/patients/{patient_id}/consents", json={"purpose": "referral", "agencies": ["x"]}, headers=ana
    )
    await client.post(f"/v1/patients/{patient_id}/consents/{consent.json()['id']}/revoke", headers=sam)
    await client.post(f"/v1/patients/{patient_id}/assessments", json=PHQ9_SEVERE, headers=ana)

    cm, sv = ("cm-ana", "care-manager"), ("sv-sam", "supervisor")
    events = [
        (t.split(".")[2], (b["actor_id"], b["actor_role"])) for t, b in await outbox(runtime, patient_id)
    ]
    assert events == [
        ("patient_registered", cm),
        ("care_manager_assigned", cm),
        ("patient_updated", sv),
        ("consent_recorded", cm),
        ("consent_revoked", sv),
        ("patient_assessed", cm),
    ]
    [listed] = (await client.get(f"/v1/patients/{patient_id}/consents", headers=ana)).json()
    assert (listed["recorded_by"], listed["recorded_by_role"], listed["revoked_by"]) == (*cm, "sv-sam")
    [assessment] = (await client.get(f"/v1/patients/{patient_id}/assessments", headers=ana)).json()["items"]
    assert (assessment["assessed_by"], assessment["assessed_by_role"]) == cm


async def test_a_care_manager_registering_a_patient_is_made_responsible_and_a_supervisor_names_one(
    intake, agency
):
    client, runtime = intake
    agency_id = agency_of(agency)
    ana, sam = auth(agency_id, subject="cm-ana"), auth(agency_id, role="supervisor", subject="sv-sam")
    patient_id = await register(client, ana, given_name="Caseload")
    assert (await client.get(f"/v1/patients/{patient_id}", headers=ana)).json()["care_manager_id"] == "cm-ana"
    [(_, registered), (_, assigned)] = await outbox(runtime, patient_id)
    assert registered["care_manager_id"] == "cm-ana"
    assert (assigned["care_manager_id"], assigned["previous_care_manager_id"], assigned["reason"]) == (
        "cm-ana",
        None,
        "registration",
    )
    assert (assigned["actor_id"], assigned["actor_role"]) == ("cm-ana", "care-manager")

    unnamed = await client.post("/v1/patients", json={**PATIENT, "given_name": "Unnamed"}, headers=sam)
    assert unnamed.status_code == 422
    assert unnamed.json()["detail"] == [
        {
            "loc": ["body", "care_manager_id"],
            "type": "missing",
            "msg": "a supervisor registering a patient names the responsible care manager",
        }
    ]
    named = await register(client, sam, given_name="Named", care_manager_id="cm-bo")
    assert (await client.get(f"/v1/patients/{named}", headers=ana)).json()["care_manager_id"] == "cm-bo"
    [(_, assigned)] = [(t, b) for t, b in await outbox(runtime, named) if t == REGISTERED[1]]
    assert (assigned["care_manager_id"], assigned["actor_id"], assigned["actor_role"]) == (
        "cm-bo",
        "sv-sam",
        "supervisor",
    )


async def test_a_supervisor_reassigns_the_care_manager_and_a_care_manager_may_not(intake, agency):
    client, runtime = intake
    agency_id = agency_of(agency)
    ana, sam = auth(agency_id, subject="cm-ana"), auth(agency_id, role="supervisor", subject="sv-sam")
    patient_id = await register(client, ana, given_name="Reassigned")
    route = f"/v1/patients/{patient_id}/care-manager"

    refused = await client.post(route, json={"care_manager_id": "cm-ana"}, headers=ana)
    assert (refused.status_code, refused.json()["missing_permission"]) == (403, "patient:assign")

    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"care_manager_id": "cm-bo", "reason": "staff-leave"}
    moved = await client.post(route, json=body, headers={**sam, **key})
    assert moved.status_code == 200, moved.text
    assert {
        k: moved.json()[k] for k in ("care_manager_id", "previous_care_manager_id", "reason", "reason_code")
    } == {
        "care_manager_id": "cm-bo",
        "previous_care_manager_id": "cm-ana",
        "reason": "reassignment",
        "reason_code": "staff-leave",
    }
    assert (moved.json()["assigned_by"], moved.json()["assigned_by_role"]) == ("sv-sam", "supervisor")
    retried = await client.post(route, json=body, headers={**sam, **key})
    assert retried.json() == moved.json() and retried.headers["Idempotent-Replayed"] == "true"
    same = await client.post(route, json={"care_manager_id": "cm-bo"}, headers=sam)
    assert same.status_code == 200 and same.json() == moved.json()  # the assignment in force, unchanged

    reassigned = [b for t, b in await outbox(runtime, patient_id) if t == REGISTERED[1]][1:]
    assert [
        (e["care_manager_id"], e["previous_care_manager_id"], e["reason"], e["actor_id"], e["actor_role"])
        for e in reassigned
    ] == [("cm-bo", "cm-ana", "reassignment", "sv-sam", "supervisor")]
    assert (await client.get(f"/v1/patients/{patient_id}", headers=ana)).json()["care_manager_id"] == "cm-bo"

    unknown = await client.post(
        route, json={"care_manager_id": "cm-cy", "reason": "felt-like-it"}, headers=sam
    )
    assert (unknown.status_code, unknown.json()["detail"][0]["loc"]) == (422, ["body", "reason"])
    elsewhere = auth("agency-elsewhere", role="supervisor", subject="sv-eve")
    assert (
        await client.post(route, json={"care_manager_id": "cm-eve"}, headers=elsewhere)
    ).status_code == 404
    assert (
        await client.post(f"/v1/patients/{uuid.uuid4()}/care-manager", json=body, headers=sam)
    ).status_code == 404
    assert len([t for t, _ in await outbox(runtime, patient_id) if t == REGISTERED[1]]) == 2

    trail = (await client.get(f"/v1/audit?patient_id={patient_id}", headers=sam)).json()["items"]
    seen = {(e["subject"], e["outcome"], e["route"], e["outcome_detail"]) for e in trail}
    assert {
        ("sv-sam", "allowed", "POST /v1/patients/{patient_id}/care-manager", None),
        ("cm-ana", "denied", "POST /v1/patients/{patient_id}/care-manager", "patient:assign"),
    } <= seen


async def test_safe_channels_round_trip_and_are_in_the_events(intake, agency):
    client, runtime = intake
    patient_id = await register(
        client, agency, given_name="Safe", safe_channels=["in-person", "text", "text"]
    )
    path = f"/v1/patients/{patient_id}"
    assert (await client.get(path, headers=agency)).json()["safe_channels"] == ["text", "in-person"]

    answers = [
        await client.patch(path, json={"safe_channels": ["phone"]}, headers=agency),
        await client.patch(path, json={"preferred_language": "eu"}, headers=agency),
        await client.patch(path, json={"safe_channels": None}, headers=agency),
    ]
    assert [a.json()["safe_channels"] for a in answers] == [["phone"], ["phone"], None]
    assert (await client.get(path, headers=agency)).json()["safe_channels"] is None
    bad = await client.patch(path, json={"safe_channels": ["pigeon"]}, headers=agency)
    assert bad.status_code == 422
    # The care manager changes only by a supervisor's reassignment.
    sneaked = await client.patch(path, json={"care_manager_id": "cm-zed"}, headers=agency)
    assert sneaked.status_code == 422

    events = await outbox(runtime, patient_id)
    [registered] = [b for t, b in events if t == REGISTERED[0]]
    assert registered["safe_channels"] == ["text", "in-person"]
    updates = [
        (b["changed_fields"], b["safe_channels"]) for t, b in events if t.endswith("patient_updated.v1")
    ]
    assert updates == [
        (["safe_channels"], ["phone"]),
        (["preferred_language"], ["phone"]),
        (["safe_channels"], None),
    ]


@pytest.fixture
def log_lines():
    """The service's log lines, rendered as in production (JSON), while the test runs."""
    root, saved = logging.getLogger(), structlog.get_config()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("intake", "INFO", stream=stream)
    # Not cached: a module's logger first used now would keep writing here after the test.
    structlog.configure(cache_logger_on_first_use=False)
    yield lambda: stream.getvalue().splitlines()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**saved)


async def send(infra, runtime, event: Event) -> None:
    await publish_message(infra.bootstrap_servers, runtime.topic_for(event.type), new_message(event))


def referral_made(patient_id: str, agency_id: str, receiving: str) -> ReferralMade:
    return ReferralMade(
        patient_id=patient_id,
        agency_id=agency_id,
        referral_id=uuid.uuid4(),
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        need="food-insecurity",
        program_id="food-bank-1",
        receiving_agency_id=receiving,
        status="requested",
        response_due_at=datetime.now(UTC) + timedelta(days=5),
        program_category="food-assistance",
    )


def referral_closed(made: ReferralMade, status: str) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        patient_id=made.patient_id,
        agency_id=made.agency_id,
        referral_id=made.referral_id,
        plan_id=made.plan_id,
        intervention_id=made.intervention_id,
        from_status="accepted",
        to_status=status,
        by_agency_id=made.receiving_agency_id,
        by_party="target",
        changed_at=datetime.now(UTC),
    )


async def test_a_provider_sees_the_minimum_of_a_referred_patient_while_consent_and_referral_last(
    intake, infra, agency, log_lines
):
    client, runtime = intake
    agency_id, food = agency_of(agency), f"agency-food-{uuid.uuid4().hex[:6]}"
    name, phone = f"Referida{uuid.uuid4().hex[:6]}", "+1 555 0142"
    patient_id = await register(client, agency, given_name=name, phone=phone, email="r@example.org")
    not_referred = await register(client, agency, given_name=f"Other{uuid.uuid4().hex[:6]}")
    consents = f"/v1/patients/{patient_id}/consents"
    consent = await client.post(consents, json={"purpose": "referral", "agencies": [food]}, headers=agency)
    provider = auth(food, role="provider", subject="pr-paz")
    mine = f"/v1/referred-patients/{patient_id}"

    made = referral_made(patient_id, agency_id, food)
    await send(infra, runtime, made)

    async def shown():
        r = await client.get(mine, headers=provider)
        return r if r.status_code == 200 else None

    seen = (await eventually(shown, what="the referred patient shown")).json()
    assert seen == {
        "patient_id": patient_id,
        "given_name": name,
        "family_name": "Etxeberria",
        "preferred_language": "es",
        "contact_preference": "text",
        "phone": phone,
        "email": None,  # they prefer texts
        "referrals": [
            {
                "referral_id": str(made.referral_id),
                "need": "food-insecurity",
                "program_category": "food-assistance",
            }
        ],
    }
    listed = (await client.get("/v1/referred-patients", headers=provider)).json()
    assert [p["patient_id"] for p in listed["items"]] == [patient_id]

    # Not referred to it, or not there at all: the same answer.
    nobody = await client.get(f"/v1/referred-patients/{uuid.uuid4()}", headers=provider)
    other = await client.get(f"/v1/referred-patients/{not_referred}", headers=provider)
    assert other.status_code == nobody.status_code == 404 and other.json() == nobody.json()
    # The provider agency's care manager has no such permission.
    refused = await client.get(mine, headers=auth(food, subject="cm-cy"))
    assert (refused.status_code, refused.json()["missing_permission"]) == (403, "referred-patient:read")

    # A revoked consent ends access at once; a consent naming the program category gives it back.
    await client.post(f"{consents}/{consent.json()['id']}/revoke", headers=agency)
    assert (await client.get(mine, headers=provider)).status_code == 404
    assert (await client.get("/v1/referred-patients", headers=provider)).json()["items"] == []
    await client.post(
        consents, json={"purpose": "referral", "program_categories": ["food-assistance"]}, headers=agency
    )
    assert (await client.get(mine, headers=provider)).status_code == 200

    # The referral completed: access ends.
    await send(infra, runtime, referral_closed(made, "completed"))

    async def gone():
        return (await client.get(mine, headers=provider)).status_code == 404

    await eventually(gone, what="access ended with the referral")

    supervisor = auth(agency_id, role="supervisor", subject="sv-sam")
    disclosures = (
        await client.get(f"/v1/audit/disclosures?patient_id={patient_id}", headers=supervisor)
    ).json()["items"]
    provider_reads = [e for e in disclosures if e["subject"] == "pr-paz"]
    assert provider_reads and all(
        (e["what"], e["agency_id"], e["patient_agency_id"], e["role"])
        == ("referred-patient", food, agency_id, "provider")
        for e in provider_reads
    )
    assert {e["route"] for e in provider_reads} == {
        "GET /v1/referred-patients/{patient_id}",
        "GET /v1/referred-patients",
    }
    trail = (await client.get(f"/v1/audit?patient_id={patient_id}", headers=supervisor)).json()["items"]
    assert ("pr-paz", "denied", "referred-patient", "patient not found") in [
        (e["subject"], e["outcome"], e["what"], e["outcome_detail"]) for e in trail
    ]

    payloads = [
        bytes(r["payload"]).decode() + json.dumps(r["headers"])
        for r in await runtime.pool.fetch("SELECT payload, headers FROM outbox")
    ]
    lines = log_lines()
    assert payloads and any("referral grant recorded" in line for line in lines)
    for phi in (name, "555 0142", "r@example.org"):
        assert not any(phi in text for text in (*payloads, *lines))


async def test_a_referral_closed_before_it_is_made_never_opens(intake, infra, agency):
    client, runtime = intake
    agency_id, food = agency_of(agency), f"agency-food-{uuid.uuid4().hex[:6]}"
    patient_id = await register(client, agency, given_name=f"Late{uuid.uuid4().hex[:6]}")
    await client.post(
        f"/v1/patients/{patient_id}/consents",
        json={"purpose": "referral", "agencies": [food]},
        headers=agency,
    )
    made = referral_made(patient_id, agency_id, food)
    await send(infra, runtime, referral_closed(made, "cancelled"))
    await send(infra, runtime, made)

    async def both_known():
        return await runtime.pool.fetchval(
            "SELECT granted_at IS NOT NULL AND ended_at IS NOT NULL FROM referral_grants"
            " WHERE referral_id = $1",
            made.referral_id,
        )

    await eventually(both_known, what="the referral made and closed")
    provider = auth(food, role="provider", subject="pr-paz")
    assert (await client.get(f"/v1/referred-patients/{patient_id}", headers=provider)).status_code == 404


async def test_the_instruments_are_served_as_forms_to_those_who_record_assessments(intake, agency):
    client, _ = intake
    forms = await client.get("/v1/instruments?language=es", headers=agency)
    assert forms.status_code == 200, forms.text
    assert {f["id"] for f in forms.json()} == {"phq-2", "phq-9", "ahc-hrsn"}
    one = (await client.get("/v1/instruments/ahc-hrsn", headers=agency)).json()
    transport = next(i for i in one["items"] if i["code"] == "93030-5")
    assert [o["value"] for o in transport["options"]] == ["LA33-6", "LA32-8"]
    assert (await client.get("/v1/instruments/nope", headers=agency)).status_code == 404
    analyst = auth(agency_of(agency), role="analyst")
    assert (await client.get("/v1/instruments", headers=analyst)).status_code == 403


async def test_values_the_database_cannot_store_get_a_clear_422_that_does_not_echo_them(
    intake, agency, caplog
):
    """A NUL in a name, an offset beyond PostgreSQL's integer, a body too big or not JSON: a 4xx that
    names where and why, never the value, and the connection and the service stay usable."""
    client, _ = intake
    nul = await client.post("/v1/patients", json={**PATIENT, "family_name": "Nul\x00Quartz"}, headers=agency)
    huge = await client.get("/v1/patients", params={"offset": str(10**30)}, headers=agency)
    for r in (nul, huge):
        assert r.status_code == 422, r.text
        assert "Quartz" not in r.text and str(10**30) not in r.text
    assert nul.json()["detail"] == [{"loc": ["body", "family_name"], "type": "nul_character", "msg": NUL_MSG}]
    assert huge.json()["detail"][0]["loc"] == ["query", "offset"]
    twice = await client.get("/v1/patients?offset=1&offset=0.0", headers=agency)
    assert twice.status_code == 422 and twice.json()["detail"][0]["loc"] == ["query", "offset"]
    assert "Quartz" not in caplog.text and str(10**30) not in caplog.text
    big = await client.post("/v1/patients", json={**PATIENT, "given_name": "x" * 300_000}, headers=agency)
    assert big.status_code == 413 and big.json()["limit"] == 256 * 1024
    form = await client.post("/v1/patients", data={"given_name": "Ada"}, headers=agency)
    assert form.status_code == 415, form.text
    epoch = await client.post("/v1/patients", json={**PATIENT, "birth_date": 0}, headers=agency)
    assert epoch.status_code == 422 and epoch.json()["detail"][0]["loc"] == ["body", "birth_date"]
    assert (await client.get("/v1/patients", headers=agency)).status_code == 200


async def test_a_token_past_its_rate_limit_gets_429_with_retry_after_and_others_go_on(
    infra, database_factory
):
    settings = settings_for(
        IntakeSettings,
        infra,
        await database_factory("intake_limits"),
        rate_limit_token="3/minute",
        rate_limit_agency="5/minute",
    )
    app = build_app(settings)
    async with served(app, "http://intake") as (client, _):
        one = auth("agency-limited", subject="cm-one")
        two = auth("agency-limited", subject="cm-two")
        answers = [(await client.get("/v1/patients", headers=one)).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        refused = await client.get("/v1/patients", headers=one)
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert "token" in refused.json()["detail"]
        # Refused requests count for nothing; the agency's limit counts every token's: two more.
        statuses = [(await client.get("/v1/patients", headers=two)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        other = auth("agency-elsewhere")
        assert (await client.get("/v1/patients", headers=other)).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
