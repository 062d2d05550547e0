"""Registering a patient (with their care manager and the channels safe to reach them), and recording
and revoking their consent to share the case: intake's ``POST /v1/patients``, ``POST .../consents`` and
``POST .../consents/{id}/revoke``. The details form is shared with changing them (``patient_details``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.forms import (
    Checks,
    Choices,
    FormError,
    FormKey,
    Text,
    action_key,
    new_form_key,
    none_if_blank,
    patient_name,
    send,
)
from workspace.gates import act_on_patient
from workspace.notices import patient_url
from workspace.web import CallServices, SignedInSession, redirect, render, words, workspace_of

router = APIRouter()

NO_CHANNEL = "none"  # the box saying the patient marked no channel safe
REQUIRED = ("given_name", "family_name", "birth_date", "preferred_language", "contact_preference")
OPTIONAL = ("phone", "email", "postal_code")  # left empty: none
# Channels as the safe-channel boxes name them (apart from the phone and email fields' labels).
CHANNEL_WORDS = {"phone": "Phone calls", "text": "Text messages", "email": "Emails", "in-person": "In person"}
PHONE = r"\+?[0-9 ()\-.]{7,25}"
EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
POSTAL_CODE = r"[A-Za-z0-9][A-Za-z0-9 \-]{1,11}"
STAFF_ID = r"\S{1,255}"
AGENCY_ID = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}"


@router.get("/patients/new")
async def new_patient(request: Request, session: SignedInSession) -> Response:
    assert session.person is not None
    mine = session.person.subject if session.person.role == "care-manager" else ""
    entered = {"preferred_language": "en", "contact_preference": "phone", "care_manager_id": mine}
    return _patient_form(request, entered, [], new_form_key())


@dataclass(frozen=True)
class DetailsForm:
    """A patient's details as a form posts them: registering them, or changing them."""

    entered: dict[str, str]  # each field as typed (shown again when something needs correcting)
    safe_channels: list[str]  # the boxes ticked

    def values(self) -> dict[str, Any]:
        """As intake takes them: trimmed, an optional field left empty as ``None``, the safe channels
        ``None`` when not asked and ``[]`` when none is safe."""
        values: dict[str, Any] = {f: self.entered[f].strip() for f in REQUIRED}
        values |= {f: none_if_blank(self.entered[f]) for f in OPTIONAL}
        return values | {"safe_channels": safe_channels_of(self.safe_channels)}

    def check(self, request: Request, check: Checks) -> None:
        """Both names, a birth date not to come, and the way of contact the patient prefers."""
        entered = self.entered
        check_who(request, check, entered["given_name"], entered["family_name"], entered["birth_date"])
        check.need(
            "preferred_language", entered["preferred_language"], "Choose the patient's preferred language."
        )
        check.need(
            "contact_preference",
            entered["contact_preference"],
            "Choose how the patient prefers to be contacted.",
        )
        check_contact(check, entered, self.safe_channels)


def details_form(
    given_name: Text = "",
    family_name: Text = "",
    birth_date: Text = "",
    preferred_language: Text = "",
    contact_preference: Text = "",
    phone: Text = "",
    email: Text = "",
    postal_code: Text = "",
    safe_channels: Choices = [],  # noqa: B006 (FastAPI copies a form default)
) -> DetailsForm:
    entered = {
        "given_name": given_name,
        "family_name": family_name,
        "birth_date": birth_date,
        "preferred_language": preferred_language,
        "contact_preference": contact_preference,
        "phone": phone,
        "email": email,
        "postal_code": postal_code,
    }
    return DetailsForm(entered, safe_channels)


Details = Annotated[DetailsForm, Depends(details_form)]


@router.post("/patients")
async def register_patient(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    details: Details,
    care_manager_id: Text = "",
) -> Response:
    entered = {**details.entered, "care_manager_id": care_manager_id}
    check = Checks()
    details.check(request, check)
    check.match("care_manager_id", care_manager_id.strip(), STAFF_ID, "A staff id, without spaces.")
    error = check.error()
    if error is not None:
        return _patient_form(request, entered, details.safe_channels, form_key, error)
    body = {**details.values(), "care_manager_id": none_if_blank(care_manager_id)}
    created, error = await send(services.post("intake", "/v1/patients", body, idempotency_key=form_key))
    if error is not None:
        if error.status == 409:
            error.message = (
                "A patient with this name and birth date is already registered in your agency;"
                " intake refused a likely duplicate."
            )
        return _patient_form(request, entered, details.safe_channels, form_key, error)
    assert created is not None
    return redirect(patient_url(created["id"], "patient-registered"))


def check_who(request: Request, check: Checks, given_name: str, family_name: str, birth_date: str) -> None:
    """Who the patient is, as registering and finding them ask it: both names and a birth date not to come."""
    ctx = workspace_of(request).ctx
    check.need("given_name", given_name.strip(), "Enter the patient's given name.")
    check.need("family_name", family_name.strip(), "Enter the patient's family name.")
    if check.need("birth_date", birth_date, "Enter the patient's birth date."):
        born = check.day("birth_date", birth_date, "Enter the birth date as a date, such as 1958-04-11.")
        if born is not None and born > ctx.today():
            check.fail("birth_date", "The birth date cannot be in the future.")


def check_contact(check: Checks, entered: dict[str, str], safe_channels: list[str]) -> None:
    """How the patient is reached, as registering and changing their details ask it."""
    phone, email, preference = (
        entered["phone"].strip(),
        entered["email"].strip(),
        entered["contact_preference"],
    )
    check.match("phone", phone, PHONE, "A phone number: 7 to 25 digits, spaces, brackets or dashes.")
    check.match("email", email, EMAIL, "An email address, such as name@example.org.")
    postal_code = entered["postal_code"].strip()
    check.match("postal_code", postal_code, POSTAL_CODE, "A postal code: 2 to 12 letters or digits.")
    if preference in ("phone", "text") and not phone:
        check.fail("phone", f"A phone number is needed to contact the patient by {preference}.")
    if preference == "email" and not email:
        check.fail("email", "An email address is needed to contact the patient by email.")
    if NO_CHANNEL in safe_channels and len(safe_channels) > 1:
        check.fail("safe_channels", "“No channel is safe” stands alone: untick it or the channels.")


def safe_channels_of(ticked: list[str]) -> list[str] | None:
    """None: the patient was not asked; []: they said no channel is safe."""
    if not ticked:
        return None
    return [] if NO_CHANNEL in ticked else ticked


def _patient_form(
    request: Request, entered: dict[str, str], safe: list[str], key: str, error: FormError | None = None
) -> Response:
    context = {
        "title": "Register a patient",
        "entered": entered,
        "safe_channels": safe,
        "form_key": key,
        "error": error,
        **detail_choices(),
    }
    return render(request, "patient_new.html", context, status_code=error.status if error else 200)


def detail_choices() -> dict[str, list[tuple[str, str]]]:
    """The options of a patient's details form: languages, contact preferences, safe channels."""
    choices = form_choices()
    return {
        "languages": list(choices.languages.items()),
        "preferences": [(p, words(p)) for p in choices.contact_preferences],
        "channels": [(c, CHANNEL_WORDS.get(c, words(c))) for c in choices.contact_channels]
        + [(NO_CHANNEL, "No channel is safe")],
    }


@router.get("/patients/{patient_id}/consents/new")
async def new_consent(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    entered = {"purpose": "referral", "period_start": "", "period_end": "", "agencies": ""}
    return await _consent_form(request, services, patient_id, entered, [], new_form_key())


@router.post("/patients/{patient_id}/consents")
async def record_consent(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    purpose: Annotated[str, Form(max_length=64)] = "",
    agencies: Text = "",
    program_categories: Choices = [],  # noqa: B006
    period_start: Text = "",
    period_end: Text = "",
) -> Response:
    entered = {
        "purpose": purpose,
        "agencies": agencies,
        "period_start": period_start,
        "period_end": period_end,
    }
    named = agencies.replace(",", " ").split()
    check = Checks()
    check.need("purpose", purpose, "Choose what the patient consents to.")
    for agency in named:
        check.match(
            "agencies",
            agency,
            AGENCY_ID,
            "Agency ids: letters, digits, dots and dashes, such as agency-transit-aid.",
        )
    if not named and not program_categories:
        check.fail(
            "agencies",
            "Name at least one agency or tick a program category the patient agrees to share with.",
        )
    start = check.day("period_start", period_start, "Enter the start as a date, such as 2026-03-02.")
    end = check.day("period_end", period_end, "Enter the end as a date, such as 2027-03-01.")
    if start and end and end < start:
        check.fail("period_end", "The consent cannot end before it starts.")
    if end == date.max:  # it runs through that day: to the start of the next, which no date can name
        check.fail("period_end", "Enter an end before 9999-12-31, or none for a consent without an end.")
    error = check.error()
    if error is None:
        zone = workspace_of(request).ctx.zone
        body: dict[str, Any] = {
            "purpose": purpose,
            "agencies": list(dict.fromkeys(named)),
            "program_categories": program_categories,
            "period_start": _start_of(start, zone),
            "period_end": _start_of(end + timedelta(days=1), zone) if end else None,  # through that day
        }
        path = f"/v1/patients/{patient_id}/consents"
        _, error = await send(services.post("intake", path, body, idempotency_key=form_key))
        if error is None:
            return redirect(patient_url(patient_id, "consent-recorded", "consents"))
    return await _consent_form(request, services, patient_id, entered, program_categories, form_key, error)


@router.post("/patients/{patient_id}/consents/{consent_id}/revoke")
async def revoke_consent(
    request: Request,
    patient_id: uuid.UUID,
    consent_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    """The patient withdraws a consent: intake ends it now, and referral stops sharing under it. One
    consent is revoked once, however often the button is pressed (a replay answers the first time's)."""
    path = f"/v1/patients/{patient_id}/consents/{consent_id}/revoke"
    key = action_key("consent-revoke", str(consent_id))
    return await act_on_patient(
        request,
        session,
        "consent:revoke",
        "Revoking a consent is",
        lambda: services.post("intake", path, None, idempotency_key=key),
        (patient_id, "consents"),
        ("consent-revoked", 409, "consent-not-active"),
    )


def _start_of(day: date | None, zone: Any) -> str | None:
    return None if day is None else datetime.combine(day, time(), zone).isoformat()


async def _consent_form(
    request: Request,
    services: CallServices,
    patient_id: uuid.UUID,
    entered: dict[str, str],
    categories: list[str],
    key: str,
    error: FormError | None = None,
) -> Response:
    choices = form_choices()
    context = {
        "title": "Record consent",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "entered": entered,
        "categories": categories,
        "form_key": key,
        "error": error,
        "purposes": list(choices.consent_purposes.items()),
        "program_categories": [(c, words(c)) for c in choices.program_categories],
    }
    return render(request, "consent_new.html", context, status_code=error.status if error else 200)
