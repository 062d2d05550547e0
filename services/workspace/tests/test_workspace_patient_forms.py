"""Registering a patient, recording consent, recording an assessment from intake's questionnaire: what
the forms show, what they send, and what they say when something needs correcting."""

import html
import json
import re

import httpx

from services.workspace.tests.conftest import form_value

PID = "33333333-3333-4333-8333-333333333333"
PATH = f"/v1/patients/{PID}"
PATIENT = {
    "id": PID,
    "given_name": "Ann",
    "family_name": "Example",
    "preferred_language": "es",
    "postal_code": "94110",
}
SUPERVISOR = {"agency": "agency-riverside", "role": "supervisor", "subject": "sv-riverside-sam"}
PHQ2 = {
    "id": "phq-2",
    "title": "Patient Health Questionnaire-2",
    "panel": "55757-9",
    "rules_version": "s-1",
    "language": "es",
    "prompt": "Durante las últimas 2 semanas…",
    "items": [
        {
            "code": "44250-9",
            "text": "Poco interés",
            "type": "score",
            "multiple": False,
            "exclusive": [],
            "options": [{"value": v, "label": f"L{v}"} for v in range(4)],
        },
        {
            "code": "44255-8",
            "text": "Decaído",
            "type": "score",
            "multiple": False,
            "exclusive": [],
            "options": [{"value": v, "label": f"L{v}"} for v in range(4)],
        },
    ],
}
HOUSING = {
    "id": "ahc-hrsn",
    "title": "AHC HRSN",
    "panel": "96777-8",
    "rules_version": "s-1",
    "language": "en",
    "prompt": None,
    "items": [
        {
            "code": "96778-6",
            "text": "Problems where you live? Choose all that apply.",
            "type": "choice",
            "multiple": True,
            "exclusive": ["LA9-3"],
            "options": [
                {"value": "LA31996-4", "label": "Pests"},
                {"value": "LA28580-1", "label": "Mold"},
                {"value": "LA9-3", "label": "None of the above"},
            ],
        },
        {
            "code": "93030-5",
            "text": "Lack of transportation?",
            "type": "choice",
            "multiple": False,
            "exclusive": [],
            "options": [{"value": "LA33-6", "label": "Yes"}, {"value": "LA32-8", "label": "No"}],
        },
    ],
}


def form_of(page: httpx.Response) -> dict[str, str]:
    return {"csrf_token": form_value(page, "csrf_token"), "form_key": form_value(page, "form_key")}


def field_errors(page: httpx.Response) -> dict[str, list[str]]:
    """Each field's messages, by the id of the field they describe."""
    found: dict[str, list[str]] = {}
    for fid, message in re.findall(r'<p class="field-error" id="([^"]+)-error-\d+">([^<]*)</p>', page.text):
        found.setdefault(fid, []).append(html.unescape(message))
    return found


def labels_of(page: httpx.Response) -> list[str]:
    return [
        " ".join(re.sub(r"<[^>]+>|\(optional\)", " ", text).split()).lower()
        for text in re.findall(r"<label for=[^>]*>(.*?)</label>", page.text, flags=re.S)
    ]


def ambiguous(labels: list[str]) -> list[tuple[str, str]]:
    """Labels that are part of another: a field is not found by its label alone (as a browser test does)."""
    return [(a, b) for a in labels for b in labels if a != b and a in b]


def sent(services, service: str, path: str) -> tuple[dict, httpx.Request]:
    [request] = [r for r in services.called(service, path) if r.method == "POST"]
    return json.loads(request.content), request


ENTERED = {
    "given_name": " Ann ",
    "family_name": "Example",
    "birth_date": "1958-04-11",
    "preferred_language": "es",
    "contact_preference": "text",
    "phone": "+1 555 0100",
    "email": "",
    "postal_code": "94110",
    "care_manager_id": "cm-riverside-ben",
}


async def test_the_registration_form_is_labelled_and_names_me_as_care_manager(client, sign_in):
    await sign_in(client)
    page = await client.get("/patients/new")
    assert page.status_code == 200
    assert '<form method="post" action="/patients" id="register-patient"' in page.text
    for label in (
        "Given name",
        "Family name",
        "Birth date",
        "Preferred language",
        "Contact preference",
        "Phone number",
        "Email address",
        "Postal code",
        "Care manager",
    ):
        assert re.search(rf'<label for="[a-z_]+">{label}( <span|</label>)', page.text), label
    assert form_value(page, "care_manager_id") == "cm-riverside-ana"
    assert "<legend>Channels safe to contact the patient through" in page.text
    assert len(form_value(page, "form_key")) >= 16
    assert len(labels_of(page)) == 14
    assert not ambiguous(labels_of(page))


async def test_registering_sends_the_details_and_goes_to_the_patient_by_id(client, services, sign_in):
    services.answer("intake", "POST", "/v1/patients", 201, {"id": PID})
    await sign_in(client)
    form = await client.get("/patients/new")
    answer = await client.post(
        "/patients", data={**form_of(form), **ENTERED, "safe_channels": ["text", "in-person"]}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/patients/{PID}?notice=patient-registered"
    body, request = sent(services, "intake", "/v1/patients")
    assert body == {
        "given_name": "Ann",
        "family_name": "Example",
        "birth_date": "1958-04-11",
        "preferred_language": "es",
        "contact_preference": "text",
        "phone": "+1 555 0100",
        "email": None,
        "postal_code": "94110",
        "care_manager_id": "cm-riverside-ben",
        "safe_channels": ["text", "in-person"],
    }
    assert request.headers["idempotency-key"] == form_value(form, "form_key")
    registered = {
        **body,
        "id": PID,
        "created_at": "2026-03-02T09:00:00+00:00",
        "updated_at": "2026-03-02T09:00:00+00:00",
    }
    services.answer("intake", "GET", PATH, body=registered)
    page = await client.get(answer.headers["location"])
    assert "The patient is registered. Record their consent and an assessment next." in page.text
    assert "No plan yet." in page.text  # the fake careplan knows no plan: a new patient's page says so


async def test_safe_channels_not_asked_and_none_safe_are_told_apart(client, services, sign_in):
    services.answer("intake", "POST", "/v1/patients", 201, {"id": PID})
    await sign_in(client)
    form = await client.get("/patients/new")
    await client.post("/patients", data={**form_of(form), **ENTERED})
    await client.post("/patients", data={**form_of(form), **ENTERED, "safe_channels": ["none"]})
    bodies = [json.loads(r.content)["safe_channels"] for r in services.called("intake", "/v1/patients")]
    assert bodies == [None, []]


async def test_registration_says_what_needs_correcting_beside_each_field_and_sends_nothing(
    client, services, sign_in
):
    await sign_in(client)
    form = await client.get("/patients/new")
    wrong = {
        **ENTERED,
        "given_name": "",
        "birth_date": "2999-01-01",
        "phone": "",
        "email": "not-an-address",
        "postal_code": "#",
        "safe_channels": ["none", "phone"],
    }
    page = await client.post("/patients", data={**form_of(form), **wrong})
    assert page.status_code == 422
    assert field_errors(page) == {
        "given_name": ["Enter the patient's given name."],
        "birth_date": ["The birth date cannot be in the future."],
        "phone": ["A phone number is needed to contact the patient by text."],
        "email": ["An email address, such as name@example.org."],
        "postal_code": ["A postal code: 2 to 12 letters or digits."],
        "safe_channels": ["“No channel is safe” stands alone: untick it or the channels."],
    }
    assert 'aria-describedby=" given_name-error-1"' in page.text and 'aria-invalid="true"' in page.text
    assert '<a href="#birth_date">The birth date cannot be in the future.</a>' in page.text
    assert form_value(page, "family_name") == "Example"  # what was typed stays
    assert form_value(page, "form_key") == form_value(form, "form_key")
    assert not services.called("intake", "/v1/patients")


async def test_a_services_422_is_shown_beside_its_field(client, services, sign_in):
    detail = [
        {
            "loc": ["body", "preferred_language"],
            "type": "string_pattern_mismatch",
            "msg": "String should match pattern '^[a-zA-Z]{2,3}$'",
        }
    ]
    services.answer("intake", "POST", "/v1/patients", 422, {"detail": detail})
    await sign_in(client)
    form = await client.get("/patients/new")
    page = await client.post("/patients", data={**form_of(form), **ENTERED})
    assert page.status_code == 422
    assert field_errors(page) == {"preferred_language": ["is not in the expected form"]}


async def test_a_likely_duplicate_is_refused_in_plain_words(client, services, sign_in):
    services.answer(
        "intake",
        "POST",
        "/v1/patients",
        409,
        {"detail": "likely duplicate of an existing patient", "existing_id": PID},
    )
    await sign_in(client)
    form = await client.get("/patients/new")
    page = await client.post("/patients", data={**form_of(form), **ENTERED})
    assert page.status_code == 409
    assert "already registered in your agency" in page.text
    assert f'<a href="/patients/{PID}">Open the patient already registered</a>' in page.text


async def test_a_supervisor_registering_is_not_named_care_manager_by_default(
    make_app, settings, open_browser, sign_in
):
    async with open_browser(make_app(settings)) as http:
        await sign_in(http, SUPERVISOR)
        page = await http.get("/patients/new")
    assert form_value(page, "care_manager_id") == ""


async def test_recording_consent_sends_the_period_in_the_workspace_time_zone(
    make_app, open_browser, services, sign_in
):
    from workspace.config import WorkspaceSettings

    services.answer("intake", "GET", PATH, body=PATIENT)
    services.answer("intake", "POST", f"{PATH}/consents", 201, {"id": PID})
    async with open_browser(make_app(WorkspaceSettings(time_zone="America/Chicago"))) as http:
        await sign_in(http)
        form = await http.get(f"/patients/{PID}/consents/new")
        assert 'id="record-consent"' in form.text and "For <strong>Ann Example</strong>" in form.text
        assert not ambiguous(labels_of(form))
        answer = await http.post(
            f"/patients/{PID}/consents",
            data={
                **form_of(form),
                "purpose": "referral",
                "agencies": "agency-transit-aid, agency-food-bank",
                "program_categories": ["transportation"],
                "period_start": "2026-03-02",
                "period_end": "2027-03-01",
            },
        )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/patients/{PID}?notice=consent-recorded#consents"
    body, _ = sent(services, "intake", f"{PATH}/consents")
    assert body == {
        "purpose": "referral",
        "agencies": ["agency-transit-aid", "agency-food-bank"],
        "program_categories": ["transportation"],
        "period_start": "2026-03-02T00:00:00-06:00",
        "period_end": "2027-03-02T00:00:00-06:00",
    }


async def _consent_refused(client, services, sign_in, **fields):
    """A referral consent sent with ``fields``: the form again (422), and nothing sent to intake."""
    services.answer("intake", "GET", PATH, body=PATIENT)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/consents/new")
    page = await client.post(
        f"/patients/{PID}/consents", data={**form_of(form), "purpose": "referral", **fields}
    )
    assert page.status_code == 422
    assert not [r for r in services.requests if r.method == "POST"]
    return page


async def test_consent_needs_someone_to_share_with_and_an_end_after_its_start(client, services, sign_in):
    page = await _consent_refused(
        client, services, sign_in, agencies="", period_start="2026-03-02", period_end="2026-03-01"
    )
    assert field_errors(page) == {
        "agencies": ["Name at least one agency or tick a program category the patient agrees to share with."],
        "period_end": ["The consent cannot end before it starts."],
    }


async def test_a_consent_ending_on_the_last_day_a_date_can_name_is_refused_beside_the_field(
    client, services, sign_in
):
    """It runs through its last day, so to the start of the next: 9999-12-31 has none (found by the
    workspace fuzz walk: it was a 500)."""
    page = await _consent_refused(
        client,
        services,
        sign_in,
        program_categories=["transportation"],
        period_start="2026-03-02",
        period_end="9999-12-31",
    )
    assert field_errors(page) == {
        "period_end": ["Enter an end before 9999-12-31, or none for a consent without an end."]
    }


async def test_the_instruments_to_choose_from_are_intakes(client, services, sign_in):
    services.answer("intake", "GET", PATH, body=PATIENT)
    services.answer("intake", "GET", "/v1/instruments", body=[PHQ2, HOUSING])
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/assessments/new")
    assert (
        f'href="/patients/{PID}/assessments/new?instrument=phq-2">Patient Health Questionnaire-2</a>'
        in page.text
    )
    assert f'href="/patients/{PID}/assessments/new?instrument=ahc-hrsn">AHC HRSN</a>' in page.text
    [call] = services.called("intake", "/v1/instruments")
    assert call.url.params["language"] == "es"


async def test_a_questionnaire_is_drawn_from_intakes_definition_in_the_patients_language(
    client, services, sign_in
):
    services.answer("intake", "GET", PATH, body=PATIENT)
    services.answer("intake", "GET", "/v1/instruments/ahc-hrsn", body=HOUSING)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/assessments/new?instrument=ahc-hrsn")
    assert page.status_code == 200
    [call] = services.called("intake", "/v1/instruments/ahc-hrsn")
    assert call.url.params["language"] == "es"
    assert 'id="record-assessment"' in page.text
    assert "<legend>1. Problems where you live? Choose all that apply." in page.text
    assert re.search(
        r'<input type="checkbox" id="item-96778-6-1" name="item-96778-6" value="LA31996-4"', page.text
    )
    assert re.search(r'<input type="radio" id="item-93030-5-1" name="item-93030-5" value="LA33-6"', page.text)
    assert '<label for="item-93030-5-1">Yes</label>' in page.text
    assert 'aria-describedby="item-96778-6-3-note"' in page.text
    assert "Stands alone: choose it only by itself." in page.text
    unknown = await client.get(f"/patients/{PID}/assessments/new?instrument=Not%20one")
    assert unknown.status_code == 400


async def test_answers_go_to_intake_as_scores_codes_and_lists(client, services, sign_in):
    services.answer("intake", "GET", PATH, body=PATIENT)
    services.answer("intake", "GET", "/v1/instruments/phq-2", body=PHQ2)
    services.answer("intake", "GET", "/v1/instruments/ahc-hrsn", body=HOUSING)
    services.answer("intake", "POST", f"{PATH}/assessments", 202, {"id": PID})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/assessments/new?instrument=phq-2")
    answer = await client.post(
        f"/patients/{PID}/assessments",
        data={**form_of(form), "instrument": "phq-2", "item-44250-9": "3", "item-44255-8": "0"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/patients/{PID}?notice=assessment-recorded"
    form = await client.get(f"/patients/{PID}/assessments/new?instrument=ahc-hrsn")
    await client.post(
        f"/patients/{PID}/assessments",
        data={
            **form_of(form),
            "instrument": "ahc-hrsn",
            "item-96778-6": ["LA31996-4", "LA28580-1"],
            "item-93030-5": "LA33-6",
        },
    )
    bodies = [json.loads(r.content) for r in services.called("intake", f"{PATH}/assessments")]
    assert bodies == [
        {"instrument": "phq-2", "answers": {"44250-9": 3, "44255-8": 0}},
        {"instrument": "ahc-hrsn", "answers": {"96778-6": ["LA31996-4", "LA28580-1"], "93030-5": "LA33-6"}},
    ]


async def test_unanswered_questions_and_an_answer_that_stands_alone_are_said_beside_them(
    client, services, sign_in
):
    services.answer("intake", "GET", PATH, body=PATIENT)
    services.answer("intake", "GET", "/v1/instruments/ahc-hrsn", body=HOUSING)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/assessments/new?instrument=ahc-hrsn")
    page = await client.post(
        f"/patients/{PID}/assessments",
        data={**form_of(form), "instrument": "ahc-hrsn", "item-96778-6": ["LA9-3", "LA28580-1"]},
    )
    assert page.status_code == 422
    assert field_errors(page) == {
        "item-96778-6": ["“None of the above” stands alone: untick it or the other answers."],
        "item-93030-5": ["Choose an answer."],
    }
    assert re.search(r'value="LA28580-1" checked', page.text)  # the answers given stay ticked
    assert not services.called("intake", f"{PATH}/assessments")


async def test_intakes_refusal_of_an_answer_is_shown_beside_its_question(client, services, sign_in):
    services.answer("intake", "GET", PATH, body=PATIENT)
    services.answer("intake", "GET", "/v1/instruments/phq-2", body=PHQ2)
    detail = [
        {"loc": ["body", "answers", "44255-8"], "type": "invalid_answer", "msg": "must be between 0 and 3"}
    ]
    services.answer("intake", "POST", f"{PATH}/assessments", 422, {"detail": detail})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/assessments/new?instrument=phq-2")
    page = await client.post(
        f"/patients/{PID}/assessments",
        data={**form_of(form), "instrument": "phq-2", "item-44250-9": "1", "item-44255-8": "2"},
    )
    assert page.status_code == 422
    assert field_errors(page) == {"item-44255-8": ["Must be between 0 and 3."]}


async def test_a_role_that_may_not_register_is_told_so(make_app, settings, open_browser, services, sign_in):
    services.answer(
        "intake",
        "POST",
        "/v1/patients",
        403,
        {"detail": "role provider lacks permission", "missing_permission": "patient:register"},
    )
    provider = {"agency": "agency-transit-aid", "role": "provider", "subject": "pr-transit-aid-kai"}
    async with open_browser(make_app(settings)) as http:
        await sign_in(http, provider)
        form = await http.get("/patients/new")
        page = await http.post("/patients", data={**form_of(form), **ENTERED})
    assert page.status_code == 403
    assert "Your role may not do this (it needs the permission patient:register)." in page.text
