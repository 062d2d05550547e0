"""intake's ``/fhir/R4/`` over HTTP against its real database and broker: what a patient's searches
return validates as FHIR (``fhir.resources`` R4B) and references only what they return; another agency
finds nothing; each role sees what the permission matrix lets it; an imported QuestionnaireResponse is
scored and announced as a native assessment is; the instruments are served as Questionnaires, which
an imported response may name."""

import io
import json
import logging
import uuid

import pytest
import pytest_asyncio
import structlog
from fhir.resources.R4B import get_fhir_model_class

from careloop_shared.fhir import FHIR_JSON
from careloop_shared.logging import configure_logging
from careloop_shared.rules import load_rules
from careloop_shared.testing import bearer, served, settings_for
from intake.domain.scoring import RULES_FILE, ScreeningRules
from intake.main import IntakeSettings, build_app

pytestmark = pytest.mark.integration

PATIENT = {
    "given_name": "Itzel",
    "family_name": "Quenteh",
    "birth_date": "1961-07-02",
    "contact_preference": "email",
    "email": "itzel.q@example.org",
    "postal_code": "60622",
}
PHI = ("Itzel", "Quenteh", "1961-07-02", "itzel.q@example.org", "60622")
HRSN = {
    "71802-3": "LA31994-9",
    "96778-6": ["LA28580-1"],
    "88122-7": "LA6729-3",
    "88123-5": "LA28398-8",
    "93030-5": "LA32-8",
    "96779-4": "LA32-8",
    "95618-5": "LA6270-8",
    "95617-7": "LA6270-8",
    "95616-9": "LA6270-8",
    "95615-1": "LA6270-8",
}
TYPES = ("Consent", "QuestionnaireResponse", "Observation", "Condition")
RULES = load_rules(ScreeningRules, RULES_FILE)  # what the app is built with


def auth(agency: str, role: str = "care-manager") -> dict[str, str]:
    return bearer(agency, role, "s-1")


@pytest_asyncio.fixture(scope="module")
async def intake(infra, database_factory):
    settings = settings_for(IntakeSettings, infra, await database_factory("intake_fhir"))
    app = build_app(settings)
    async with served(app, "http://intake") as (client, runtime):
        yield client, runtime


@pytest_asyncio.fixture
async def case(intake):
    """A patient of a fresh agency with a consent, an HRSN and a PHQ-2 screening."""
    client, _ = intake
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    who = auth(agency)
    r = await client.post("/v1/patients", json=PATIENT, headers=who)
    patient_id = r.json()["id"]
    consent = {"purpose": "referral", "agencies": ["agency-food"], "program_categories": ["food"]}
    assert (
        await client.post(f"/v1/patients/{patient_id}/consents", json=consent, headers=who)
    ).status_code == 201
    for instrument, answers in (("ahc-hrsn", HRSN), ("phq-2", {"44250-9": 2, "44255-8": 2})):
        body = {"instrument": instrument, "answers": answers}
        assert (
            await client.post(f"/v1/patients/{patient_id}/assessments", json=body, headers=who)
        ).is_success
    return agency, patient_id


def resources_of(bundle: dict) -> list[dict]:
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    get_fhir_model_class("Bundle").model_validate(bundle)
    return [e["resource"] for e in bundle["entry"]]


async def search(client, agency, resource_type, patient_id, role="care-manager") -> list[dict]:
    r = await client.get(
        f"/fhir/R4/{resource_type}", params={"patient": patient_id}, headers=auth(agency, role)
    )
    assert (r.status_code, r.headers["content-type"]) == (200, FHIR_JSON), r.text
    return resources_of(r.json())


async def test_a_patients_resources_validate_and_reference_only_what_its_searches_return(intake, case):
    client, _ = intake
    agency, patient_id = case
    found = {t: await search(client, agency, t, patient_id) for t in TYPES}
    patient = (await client.get(f"/fhir/R4/Patient/{patient_id}", headers=auth(agency))).json()
    everything = [patient, *(r for rs in found.values() for r in rs)]
    for resource in everything:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert [len(found[t]) for t in ("Consent", "QuestionnaireResponse")] == [1, 2]
    needs = {c["code"]["text"] for c in found["Condition"]}
    assert {"Food insecurity", "Housing instability", "Inadequate housing"} <= needs
    known = {f"{r['resourceType']}/{r['id']}" for r in everything}
    for resource in everything:
        refs = [resource.get("subject"), resource.get("patient"), *resource.get("derivedFrom", [])]
        refs += [
            *resource.get("hasMember", []),
            *(d for e in resource.get("evidence", []) for d in e["detail"]),
        ]
        assert {x["reference"] for x in refs if x} <= known, resource["id"]
    for resource in everything[1:]:  # and each reads back by its id, the same
        r = await client.get(f"/fhir/R4/{resource['resourceType']}/{resource['id']}", headers=auth(agency))
        assert r.json() == resource


async def test_a_search_pages_by_assessment_and_says_its_total_only_when_it_knows_it(intake, case):
    client, _ = intake
    agency, patient_id = case
    pages = []
    url: str | None = f"/fhir/R4/Observation?patient=Patient/{patient_id}&_count=1"
    while url:
        bundle = (await client.get(url, headers=auth(agency))).json()
        pages.append(bundle)
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert len(pages) == 2 and "total" not in pages[1]  # observations are many per assessment
    observed = [e["resource"]["id"] for p in pages for e in p["entry"]]
    everything = await search(client, agency, "Observation", patient_id)
    assert observed == [o["id"] for o in everything] and len(everything) == 10 + 1 + 2 + 1
    one = (await client.get(f"/fhir/R4/QuestionnaireResponse?subject={patient_id}&_count=1&_offset=1",
                            headers=auth(agency))).json()  # fmt: skip
    assert (one["total"], len(one["entry"])) == (2, 1)


async def test_another_agency_finds_nothing_and_reads_nothing(intake, case):
    client, _ = intake
    agency, patient_id = case
    mine = {t: await search(client, agency, t, patient_id) for t in TYPES}
    other = f"agency-{uuid.uuid4().hex[:6]}"
    for resource_type in TYPES:
        assert await search(client, other, resource_type, patient_id) == []
        resource_id = mine[resource_type][0]["id"]
        r = await client.get(f"/fhir/R4/{resource_type}/{resource_id}", headers=auth(other))
        assert (r.status_code, r.json()["resourceType"]) == (404, "OperationOutcome")
    r = await client.get(f"/fhir/R4/Patient/{patient_id}", headers=auth(other))
    assert r.status_code == 404 and not any(p in r.text for p in PHI)
    assert (
        resources_of((await client.get(f"/fhir/R4/Patient?_id={patient_id}", headers=auth(other))).json())
        == []
    )


async def test_each_role_sees_a_patient_as_the_permission_matrix_says(intake, case):
    client, _ = intake
    agency, patient_id = case
    for role in ("care-manager", "supervisor"):
        seen = (await client.get(f"/fhir/R4/Patient/{patient_id}", headers=auth(agency, role))).json()
        assert seen["name"][0]["family"] == "Quenteh"
    analyst = await client.get(f"/fhir/R4/Patient/{patient_id}", headers=auth(agency, "analyst"))
    assert analyst.json() == {"resourceType": "Patient", "id": patient_id}
    assert not any(p in analyst.text for p in PHI)
    for role, path in (("analyst", "Observation"), ("provider", "Patient"), ("admin", "Consent")):
        name = "_id" if path == "Patient" else "patient"
        r = await client.get(f"/fhir/R4/{path}", params={name: patient_id}, headers=auth(agency, role))
        assert (r.status_code, r.headers["content-type"]) == (403, FHIR_JSON)
        [issue] = r.json()["issue"]
        assert issue["code"] == "forbidden" and "lacks permission" in issue["diagnostics"]


async def test_a_search_by_post_finds_a_patient_by_whole_name_and_birth_date_and_puts_neither_in_a_url(
    intake, case
):
    client, runtime = intake
    agency, patient_id = case
    who = {**auth(agency), "Content-Type": "application/x-www-form-urlencoded"}

    async def search(headers=who, **form):
        body = {"given": "Itzel", "family": "Quenteh", "birthdate": "1961-07-02", **form}
        return await client.post("/fhir/R4/Patient/_search", data=body, headers=headers)

    # The whole name as registration matches it (case and accents aside), the day with or without eq.
    found = await search(given=" ITZEL", family="Quénteh", birthdate="eq1961-07-02")
    assert (found.status_code, found.headers["content-type"]) == (200, FHIR_JSON), found.text
    bundle = found.json()
    [patient] = resources_of(bundle)
    assert (patient["id"], patient["name"][0]["family"], bundle["total"]) == (patient_id, "Quenteh", 1)
    assert bundle["link"] == [{"relation": "self", "url": "http://intake/fhir/R4/Patient/_search"}]
    assert found.request.url.query == b""
    # Part of a name, another day, another agency, or an _id of nobody else: nobody.
    stranger = {**who, **auth(f"agency-{uuid.uuid4().hex[:6]}")}
    for headers, form in (
        (who, {"family": "Quente"}),
        (who, {"birthdate": "1961-07-03"}),
        (stranger, {}),
        (who, {"_id": str(uuid.uuid4())}),
    ):
        nobody = (await search(headers, **form)).json()
        assert (resources_of(nobody) if "entry" in nobody else [], nobody["total"]) == ([], 0), form
    # Recorded as a read of the patient found; a search that found nobody as one entry naming no one.
    supervisor = auth(agency, "supervisor")
    trail = (await client.get(f"/v1/audit?patient_id={patient_id}", headers=supervisor)).json()["items"]
    assert "POST /fhir/R4/Patient/_search" in [e["route"] for e in trail]
    kept = await runtime.pool.fetch(
        "SELECT outcome_detail, count(*) FROM audit_log WHERE agency_id = $1 AND patient_id IS NULL"
        " AND route = 'POST /fhir/R4/Patient/_search' GROUP BY 1",
        agency,
    )
    assert [tuple(r) for r in kept] == [("none found", 3)]  # part of a name, another day, another _id
    # Without a name it is the GET search, whose links (with no patient data) it gives.
    listed = await client.post("/fhir/R4/Patient/_search", data={"_count": "1"}, headers=who)
    assert [p["id"] for p in resources_of(listed.json())] == [patient_id]
    assert listed.json()["link"][0]["url"] == "http://intake/fhir/R4/Patient?_count=1&_offset=0"
    # A role that may not read patients' details may not search by them; by _id it may.
    analyst = {**who, **auth(agency, "analyst")}
    refused = await search(analyst)
    assert (refused.status_code, refused.json()["issue"][0]["code"]) == (403, "forbidden")
    by_id = await client.post("/fhir/R4/Patient/_search", data={"_id": patient_id}, headers=analyst)
    assert resources_of(by_id.json()) == [{"resourceType": "Patient", "id": patient_id}]
    # Bad input: where and why, never the input; a JSON body is not a form; names stay out of URLs.
    for form, where in (
        ({"given": ""}, "body.given: given without a value"),
        ({"birthdate": "1961-02-30"}, "body: Value error, birthdate is not a day"),
        ({"birthdate": "ge1961-07-02"}, "body.birthdate"),
        ({"family": "x" * 201}, "body.family"),
        ({"name": "Itzel"}, "body.name"),
    ):
        bad = await search(**form)
        assert bad.status_code == 422, (form, bad.text)
        assert bad.json()["issue"][0]["diagnostics"].startswith(where), bad.text
        assert not any(p in bad.text for p in PHI)
    half = await client.post("/fhir/R4/Patient/_search", data={"family": "Quenteh"}, headers=who)
    assert half.status_code == 422 and "given, family and birthdate together" in half.text
    assert "Quenteh" not in half.text
    as_json = await client.post("/fhir/R4/Patient/_search", json={"family": "Quenteh"}, headers=auth(agency))
    assert as_json.status_code == 415 and "Quenteh" not in as_json.text
    in_url = await client.get("/fhir/R4/Patient", params={"family": "Quenteh"}, headers=auth(agency))
    assert in_url.status_code == 422 and "Quenteh" not in in_url.text
    assert "searched by POST Patient/_search" in in_url.json()["issue"][0]["diagnostics"]


async def test_every_type_searched_by_get_is_searched_by_post_with_the_gets_permission_and_checks(
    intake, case
):
    client, _ = intake
    agency, patient_id = case
    form = "application/x-www-form-urlencoded"
    for resource_type in TYPES:
        by_post = await client.post(
            f"/fhir/R4/{resource_type}/_search", data={"patient": patient_id}, headers=auth(agency)
        )
        assert (by_post.status_code, by_post.headers["content-type"]) == (200, FHIR_JSON), by_post.text
        assert resources_of(by_post.json()) == await search(client, agency, resource_type, patient_id)
    # Under the search's own permission, audit and checks; refusals as OperationOutcomes.
    denied = await client.post(
        "/fhir/R4/Observation/_search", data={"patient": patient_id}, headers=auth(agency, "admin")
    )
    assert (denied.status_code, denied.json()["issue"][0]["code"]) == (403, "forbidden")
    # A body that is not a form is refused once the caller is known and allowed: 401, 403, then 415.
    for headers, status in ((None, 401), (auth(agency, "admin"), 403), (auth(agency), 415)):
        as_json = await client.post(
            "/fhir/R4/Observation/_search", json={"patient": patient_id}, headers=headers
        )
        assert (as_json.status_code, as_json.json()["resourceType"]) == (status, "OperationOutcome"), status
    for body, where in (
        ({"patient": patient_id, "colour": "red"}, "query.colour"),
        ({"patient": "Itzel Quenteh"}, "query.patient"),
        ({"patient": ""}, "query.patient"),
    ):
        refused = await client.post("/fhir/R4/Observation/_search", data=body, headers=auth(agency))
        assert refused.status_code == 422, refused.text
        assert refused.json()["issue"][0]["diagnostics"].startswith(where), refused.text
        assert "Quenteh" not in refused.text and "red" not in refused.text
    twice = await client.post(
        "/fhir/R4/Condition/_search",
        content=f"patient={patient_id}&patient={patient_id}".encode(),
        headers={**auth(agency), "Content-Type": form},
    )
    assert twice.status_code == 422 and twice.json()["issue"][0]["details"] == {"text": "repeated"}
    nul = await client.post(
        "/fhir/R4/Condition/_search", content=b"patient=a%00b", headers={**auth(agency), "Content-Type": form}
    )
    assert nul.status_code == 422 and nul.json()["issue"][0]["details"] == {"text": "nul_character"}


async def test_the_audit_log_of_a_patient_is_served_as_audit_events(intake, case):
    client, _ = intake
    agency, patient_id = case
    await client.get(f"/fhir/R4/Patient/{patient_id}", headers=auth(agency))  # a read to find
    supervisor = auth(agency, "supervisor")
    kept = (await client.get("/v1/audit", params={"patient_id": patient_id}, headers=supervisor)).json()
    r = await client.get("/fhir/R4/AuditEvent", params={"patient": patient_id}, headers=supervisor)
    assert (r.status_code, r.headers["content-type"]) == (200, FHIR_JSON), r.text
    events = resources_of(r.json())  # validated as R4B Bundle and AuditEvents
    assert [e["id"] for e in events] == [e["id"] for e in kept["items"]]
    read = next(e for e in events if {"type": "route", "valueString": "GET /fhir/R4/Patient/{patient_id}"}
                in e["entity"][0]["detail"])  # fmt: skip
    assert read["agent"][0]["who"]["identifier"] == {
        "system": "urn:careloop:staff",
        "value": "s-1",
        "assigner": {"display": agency},
    }
    assert (read["outcome"], read["entity"][0]["what"]) == ("0", {"reference": f"Patient/{patient_id}"})
    assert (read["source"]["observer"], read["action"]) == ({"display": "careloop intake"}, "R")
    assert not any(p in r.text for p in PHI)
    newest = await client.get(
        "/fhir/R4/AuditEvent", params={"patient": patient_id, "_sort": "-date"}, headers=supervisor
    )
    assert [e["id"] for e in resources_of(newest.json())] == [e["id"] for e in events][::-1]
    # By person (``altid``, the id they signed in with): what /v1/audit/activity lists, as AuditEvents.
    listed = await client.get("/v1/audit/activity", params={"subject": "s-1"}, headers=supervisor)
    by_person = await client.get("/fhir/R4/AuditEvent", params={"altid": "s-1"}, headers=supervisor)
    assert by_person.status_code == 200, by_person.text
    mine = resources_of(by_person.json())
    assert [e["id"] for e in mine] == [e["id"] for e in listed.json()["items"]] and mine
    assert {e["agent"][0]["altId"] for e in mine} == {"s-1"}
    both = await client.get(
        "/fhir/R4/AuditEvent", params={"altid": "s-1", "patient": patient_id}, headers=supervisor
    )
    assert (both.status_code, both.json()["issue"][0]["diagnostics"].split(":")[0]) == (422, "query.altid")
    # Another agency finds nothing; a care manager may not read the log.
    elsewhere = auth(f"agency-{uuid.uuid4().hex[:6]}", "supervisor")
    other = await client.get("/fhir/R4/AuditEvent", params={"patient": patient_id}, headers=elsewhere)
    assert (other.status_code, other.json()["total"] if "total" in other.json() else 0) == (200, 0)
    assert "entry" not in other.json() or other.json()["entry"] == []
    refused = await client.get("/fhir/R4/AuditEvent", params={"patient": patient_id}, headers=auth(agency))
    assert (refused.status_code, refused.json()["issue"][0]["code"]) == (403, "forbidden")


async def test_an_imported_questionnaire_response_is_scored_and_announced_as_a_native_one(intake, case):
    client, runtime = intake
    agency, patient_id = case
    [hrsn, _] = await search(client, agency, "QuestionnaireResponse", patient_id)
    imported = {k: v for k, v in hrsn.items() if k not in ("id", "author", "authored")}
    r = await client.post(
        "/fhir/R4/QuestionnaireResponse",
        json=imported,
        headers={**auth(agency), "Content-Type": FHIR_JSON, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert (r.status_code, r.headers["content-type"]) == (201, FHIR_JSON), r.text
    created = r.json()
    assert r.headers["location"].endswith(f"/fhir/R4/QuestionnaireResponse/{created['id']}")
    assert created["item"] == hrsn["item"]
    rows = await runtime.pool.fetch(
        "SELECT payload FROM outbox WHERE key = $1 AND event_type = 'careloop.intake.patient_assessed.v1'"
        " ORDER BY position",
        patient_id,
    )
    by_id = {p["assessment_id"]: p for p in (json.loads(row["payload"]) for row in rows)}
    native, by_import = by_id[hrsn["id"]], by_id[created["id"]]
    different = ("assessment_id", "assessed_at", "sealed")  # sealed: the same answers, a new nonce
    assert {k: v for k, v in by_import.items() if k not in different} == {
        k: v for k, v in native.items() if k not in different
    }
    someone_else = {**imported, "subject": {"reference": f"Patient/{uuid.uuid4()}"}}
    r = await client.post("/fhir/R4/QuestionnaireResponse", json=someone_else, headers=auth(agency))
    assert (r.status_code, r.json()["issue"][0]["code"]) == (404, "not-found")
    wrong = {
        **imported,
        "item": [{"linkId": "71802-3", "answer": [{"valueInteger": 1, "valueCoding": {"code": "x"}}]}],
    }
    r = await client.post("/fhir/R4/QuestionnaireResponse", json=wrong, headers=auth(agency))
    assert (r.status_code, r.json()["issue"][0]["code"]) == (422, "invalid")


async def test_the_questionnaires_are_read_and_searched_by_url_name_or_all(intake):
    client, _ = intake
    who = auth(f"agency-{uuid.uuid4().hex[:6]}")
    r = await client.get("/fhir/R4/Questionnaire", headers=who)
    assert (r.status_code, r.headers["content-type"]) == (200, FHIR_JSON), r.text
    bundle = r.json()
    everything = resources_of(bundle)
    assert [q["id"] for q in everything] == list(RULES.instruments) and bundle["total"] == len(everything)
    for entry in bundle["entry"]:
        made = get_fhir_model_class("Questionnaire").model_validate(entry["resource"])
        assert (made.status, made.version) == ("active", RULES.version)
        assert entry["fullUrl"] == f"http://intake/fhir/R4/Questionnaire/{made.id}"
        read = await client.get(f"/fhir/R4/Questionnaire/{made.id}", headers=who)
        assert (read.status_code, read.json()) == (200, entry["resource"])
        for query in ({"url": made.url}, {"url": f"{made.url}|{made.version}"}, {"name": made.name}):
            r = await client.get("/fhir/R4/Questionnaire", params=query, headers=who)
            assert resources_of(r.json()) == [entry["resource"]], query
    by_prefix = resources_of((await client.get("/fhir/R4/Questionnaire?name=phq", headers=who)).json())
    assert [q["id"] for q in by_prefix] == [i for i in RULES.instruments if i.startswith("phq")]
    paged = (await client.get("/fhir/R4/Questionnaire?_count=1", headers=who)).json()
    assert (len(paged["entry"]), paged["total"]) == (1, len(everything))
    assert any(link["relation"] == "next" for link in paged["link"])
    r = await client.get("/fhir/R4/Questionnaire?url=urn:careloop:questionnaire:gad-7", headers=who)
    assert resources_of(r.json()) == []
    r = await client.get("/fhir/R4/Questionnaire/gad-7", headers=who)
    assert (r.status_code, r.json()["issue"][0]["code"]) == (404, "not-found")


async def test_the_questionnaires_are_for_the_roles_that_record_assessments(intake):
    client, _ = intake
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    instrument = next(iter(RULES.instruments))
    for role in ("care-manager", "supervisor"):
        r = await client.get(f"/fhir/R4/Questionnaire/{instrument}", headers=auth(agency, role))
        assert (r.status_code, r.json()["id"]) == (200, instrument)
    for role in ("analyst", "provider", "admin"):
        for path in ("/fhir/R4/Questionnaire", f"/fhir/R4/Questionnaire/{instrument}"):
            r = await client.get(path, headers=auth(agency, role))
            assert (r.status_code, r.headers["content-type"]) == (403, FHIR_JSON), (role, path)
            assert r.json()["issue"][0]["diagnostics"] == f"role {role} lacks permission assessment:record"


async def test_a_response_naming_the_served_questionnaire_is_scored_as_one_naming_its_canonical(intake, case):
    client, _ = intake
    agency, patient_id = case
    [hrsn, _] = await search(client, agency, "QuestionnaireResponse", patient_id)
    r = await client.get(
        "/fhir/R4/Questionnaire", params={"url": hrsn["questionnaire"]}, headers=auth(agency)
    )
    [entry] = r.json()["entry"]
    served = entry["resource"]
    assert hrsn["questionnaire"] == f"{served['url']}|{served['version']}"
    native_needs = {
        c["id"].removeprefix(f"{hrsn['id']}-")
        for c in await search(client, agency, "Condition", patient_id)
        if c["id"].startswith(hrsn["id"])
    }
    assert native_needs
    imported = {k: v for k, v in hrsn.items() if k not in ("id", "author", "authored")}
    for reference in (entry["fullUrl"], f"Questionnaire/{served['id']}", served["url"]):
        r = await client.post(
            "/fhir/R4/QuestionnaireResponse",
            json={**imported, "questionnaire": reference},
            headers={**auth(agency), "Content-Type": FHIR_JSON, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, (reference, r.text)
        created = r.json()
        assert created["questionnaire"] == hrsn["questionnaire"]  # served as intake names it
        conditions = await search(client, agency, "Condition", patient_id)
        needs = {
            c["id"].removeprefix(f"{created['id']}-") for c in conditions if c["id"].startswith(created["id"])
        }
        assert needs == native_needs, reference
    elsewhere = {**imported, "questionnaire": "http://elsewhere.example/fhir/R4/Questionnaire/ahc-hrsn"}
    r = await client.post("/fhir/R4/QuestionnaireResponse", json=elsewhere, headers=auth(agency))
    assert (r.status_code, r.json()["issue"][0]["diagnostics"].split(":")[0]) == (422, "body.questionnaire")


async def test_the_capability_statement_and_the_openapi_document_name_every_fhir_route(intake):
    client, _ = intake
    r = await client.get("/fhir/R4/metadata", headers=auth("agency-x", "analyst"))
    statement = get_fhir_model_class("CapabilityStatement").model_validate(r.json())
    served = {res.type: {i.code for i in res.interaction} for res in statement.rest[0].resource}
    assert served == {
        "Patient": {"read", "search-type"},
        "Consent": {"read", "search-type"},
        "QuestionnaireResponse": {"read", "search-type", "create"},
        "Observation": {"read", "search-type"},
        "Condition": {"read", "search-type"},
        "Questionnaire": {"read", "search-type"},
        "AuditEvent": {"search-type"},  # every FHIR service's audit log (the kernel's)
    }
    [questionnaire] = [res for res in statement.rest[0].resource if res.type == "Questionnaire"]
    assert {(p.name, p.type) for p in questionnaire.searchParam} == {("url", "uri"), ("name", "string")}
    [patient] = [res for res in statement.rest[0].resource if res.type == "Patient"]
    assert [p.name for p in patient.searchParam] == ["_id", "given", "family", "birthdate"]
    assert "by POST only" in (patient.searchParam[1].documentation or "")
    paths = (await client.get("/openapi.json")).json()["paths"]
    documented = {p for p in paths if p.startswith("/fhir/R4/")}
    assert documented == {"/fhir/R4/metadata"} | {f"/fhir/R4/{t}" for t in served} | {
        f"/fhir/R4/{t}/_search"
        for t in served  # every search by POST too (Patient's a route of its own)
    } | {
        f"/fhir/R4/{t}/{{{name}}}"
        for t, name in (
            ("Patient", "patient_id"),
            ("Consent", "consent_id"),
            ("QuestionnaireResponse", "assessment_id"),
            ("Observation", "observation_id"),
            ("Condition", "condition_id"),
            ("Questionnaire", "questionnaire_id"),
        )
    }
    r = await client.get("/fhir/R4/Observation", headers=auth("agency-x"))  # no patient named
    assert (r.status_code, r.json()["issue"][0]["diagnostics"]) == (
        422,
        "query.patient: search by one patient: patient=<id> or subject=<id>",
    )


async def test_fhir_reads_log_no_patient_data(intake, case):
    client, _ = intake
    agency, patient_id = case
    root, saved = logging.getLogger(), structlog.get_config()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("intake", "INFO", stream=stream)
    structlog.configure(cache_logger_on_first_use=False)
    try:
        await client.get(f"/fhir/R4/Patient/{patient_id}", headers=auth(agency))
        await client.get(f"/fhir/R4/Patient?_id={patient_id}", headers=auth(agency))
        await client.get("/fhir/R4/Observation", params={"patient": patient_id}, headers=auth(agency))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**saved)
    # The service's lines (the test's own HTTP client logs its URLs, which it may).
    lines = stream.getvalue().splitlines()
    logged = "\n".join(line for line in lines if json.loads(line).get("logger") != "httpx")
    assert "/fhir/R4/Patient/{patient_id}" in logged
    assert not any(p in logged for p in (*PHI, patient_id))
