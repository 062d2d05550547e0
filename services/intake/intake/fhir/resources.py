"""intake's patients and consents as FHIR R4 ``Patient`` and ``Consent``. Pure: rows in, dicts out.

A Patient carries its identifying details (name, birth date, contact details, postal code, language)
only when the caller's role may see them, opened from the sealed row then only; otherwise it is the
pseudonymous id alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from careloop_shared.fhir import coding, concept, instant, reference
from intake.erasure.keys import PatientKeys
from intake.identity.sealed import identified

STAFF = "urn:careloop:staff"  # a staff member's id at the identity provider
AGENCY = "urn:careloop:agency"
PROGRAM_CATEGORY = "urn:careloop:program-category"
CONSENT_PURPOSE = "urn:careloop:consent-purpose"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
BCP47 = "urn:ietf:bcp:47"

# careloop's consent status -> FHIR R4 Consent.status: a revoked consent no longer applies.
CONSENT_STATUS = {"active": "active", "revoked": "inactive"}


def staff_reference(staff_id: str, resource_type: str = "Practitioner") -> dict[str, Any]:
    """A logical reference to a staff member: careloop serves no Practitioner to resolve."""
    return {"type": resource_type, "identifier": {"system": STAFF, "value": staff_id}}


def patients(
    keys: PatientKeys, rows: Iterable[Mapping[str, Any]], *, identifying: bool
) -> list[dict[str, Any]]:
    """Patients' rows as kept (``IntakeStore.get_patient``) as resources."""
    return [patient(r, identifying=identifying) for r in (identified(keys, rows) if identifying else rows)]


def patient(row: Mapping[str, Any], *, identifying: bool) -> dict[str, Any]:
    """One patient's row, its details opened (``identity.sealed.identified``), as a resource."""
    resource: dict[str, Any] = {"resourceType": "Patient", "id": str(row["id"])}
    if not identifying:
        return resource
    preferred = str(row["contact_preference"])
    resource["active"] = True
    resource["name"] = [{"use": "official", "family": row["family_name"], "given": [row["given_name"]]}]
    birth_date = row["birth_date"]
    resource["birthDate"] = birth_date.isoformat() if isinstance(birth_date, date) else str(birth_date)
    telecom = []
    if row["phone"]:
        telecom.append(_contact("phone", row["phone"], preferred == "phone"))
        if preferred == "text":
            telecom.append(_contact("sms", row["phone"], True))
    if row["email"]:
        telecom.append(_contact("email", row["email"], preferred == "email"))
    if telecom:
        resource["telecom"] = telecom
    if row["postal_code"]:
        resource["address"] = [{"postalCode": row["postal_code"]}]
    resource["communication"] = [
        {"language": concept(coding(BCP47, row["preferred_language"])), "preferred": True}
    ]
    if row.get("care_manager_id"):
        resource["generalPractitioner"] = [staff_reference(row["care_manager_id"])]
    return resource


def _contact(system: str, value: str, preferred: bool) -> dict[str, Any]:
    return {"system": system, "value": value, **({"rank": 1} if preferred else {})}


def consent(row: Mapping[str, Any], agency_id: str) -> dict[str, Any]:
    """A consent to share the case, as recorded: permitted recipients are the agencies and program
    categories it names, for its purpose and period; a revoked consent is ``inactive``."""
    period: dict[str, Any] = {"start": instant(row["period_start"])}
    if row["period_end"] is not None:
        period["end"] = instant(row["period_end"])
    recipient = concept(coding(V3_PARTICIPATION, "IRCP", "information recipient"))
    actors = [
        {
            "role": recipient,
            "reference": {"type": "Organization", "identifier": {"system": AGENCY, "value": a}},
        }
        for a in row["agencies"]
    ] + [
        {
            "role": recipient,
            "reference": {
                "type": "HealthcareService",
                "identifier": {"system": PROGRAM_CATEGORY, "value": c},
            },
        }
        for c in row["program_categories"]
    ]
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(row["id"]),
        "status": CONSENT_STATUS.get(row["status"], "inactive"),
        "scope": concept(coding(CONSENT_SCOPE, "patient-privacy", "Privacy Consent")),
        "category": [
            concept(coding(V3_ACT_CODE, "IDSCL", "information disclosure")),
            concept(coding(CONSENT_PURPOSE, row["purpose"]), text=row["purpose"]),
        ],
        "patient": reference("Patient", row["patient_id"]),
        "dateTime": instant(row["recorded_at"]),
        "organization": [{"type": "Organization", "identifier": {"system": AGENCY, "value": agency_id}}],
        "policyRule": concept(coding(V3_ACT_CODE, "OPTIN", "opt-in")),
        "provision": {"type": "permit", "period": period, "actor": actors},
    }
    return resource
