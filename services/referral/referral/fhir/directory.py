"""The directory as FHIR R4: an organization as ``Organization``, its places as ``Location``, a program as
``HealthcareService`` (category, needs, languages, eligibility as text, hours, capacity). Pure: the
directory's rows in, dicts out. The directory holds no patient data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from careloop_shared.fhir import SDOH_CATEGORY, coding, concept, instant, reference
from referral.fhir.codes import FhirCodes
from referral.fhir.resources import AGENCY, PROGRAM_CATEGORY, need_concept, words

BCP47 = "urn:ietf:bcp:47"
CAPACITY_EXTENSION = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
    "SDOHCC-ExtensionHealthcareServiceCapacityStatus"
)
DAYS = {"MO": "mon", "TU": "tue", "WE": "wed", "TH": "thu", "FR": "fri", "SA": "sat", "SU": "sun"}


def _telecom(phone: str | None, email: str | None, url: str | None) -> list[dict[str, Any]]:
    given = (("phone", phone), ("email", email), ("url", url))
    return [{"system": system, "value": value, "use": "work"} for system, value in given if value]


def organization(row: Mapping[str, Any]) -> dict[str, Any]:
    """An organization, identified also by the careloop agency that answers its referrals."""
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": row["id"],
        "identifier": [{"system": AGENCY, "value": row["agency_id"]}],
        "active": True,
        "name": row["name"],
    }
    telecom = _telecom(row["phone"], row["email"], row["url"])
    if telecom:
        resource["telecom"] = telecom
    return resource


def location(row: Mapping[str, Any], organization_id: str) -> dict[str, Any]:
    """An HSDS location: ``physical`` and ``postal`` ones have an address of that type (the postal code
    is all the directory keeps of it); a ``virtual`` one has none."""
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": row["id"],
        "status": "active",
        "name": row["name"],
        "mode": "instance",
        "type": [concept(text=words(row["location_type"]))],
    }
    if row["location_type"] in ("physical", "postal") and row["postal_code"]:
        resource["address"] = {"type": row["location_type"], "postalCode": row["postal_code"]}
    resource["managingOrganization"] = reference("Organization", organization_id)
    return resource


def eligibility_text(eligibility: Mapping[str, Any]) -> str | None:
    """Who the program serves, in words: its description, ages, area and requirements."""
    said = [eligibility["description"]] if eligibility.get("description") else []
    low, high = eligibility.get("min_age"), eligibility.get("max_age")
    if low is not None and high is not None:
        said.append(f"Ages {low} to {high}.")
    elif low is not None:
        said.append(f"Ages {low} and over.")
    elif high is not None:
        said.append(f"Ages up to {high}.")
    if eligibility.get("postal_prefixes"):
        said.append("Postal codes starting " + ", ".join(eligibility["postal_prefixes"]) + ".")
    if eligibility.get("requirements"):
        said.append("Requires: " + ", ".join(words(r).lower() for r in eligibility["requirements"]) + ".")
    return " ".join(said) or None


def _hours(hours: list[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Weekly hours as ``availableTime``; other schedules in words (FHIR's are weekly only)."""
    weekly, other = [], []
    for h in hours:
        if h["freq"] == "WEEKLY":
            weekly.append(
                {
                    "daysOfWeek": [DAYS[d] for d in h["byday"].split(",")],
                    "availableStartTime": f"{h['opens_at']}:00",
                    "availableEndTime": f"{h['closes_at']}:00",
                }
            )
        else:
            other.append(f"{words(h['freq'].lower())} on {h['byday']}, {h['opens_at']}-{h['closes_at']}.")
    return weekly, other


def capacity_extension(capacity: Mapping[str, Any], codes: FhirCodes) -> dict[str, Any]:
    """SDOHCC capacity status: can the program take a referral now (no patient data is involved)."""
    status = capacity["status"]
    known = codes.capacity.get(status)
    value = (
        concept(coding(SDOH_CATEGORY, known.code, known.display), text=words(status))
        if known
        else concept(text=words(status))
    )
    parts: list[dict[str, Any]] = [{"url": "capacityStatus", "valueCodeableConcept": value}]
    if capacity.get("notes"):
        parts.append({"url": "capacityNotes", "valueString": capacity["notes"]})
    return {"url": CAPACITY_EXTENSION, "extension": parts}


def healthcare_service(row: Mapping[str, Any], codes: FhirCodes) -> dict[str, Any]:
    """A program: its category, the needs it addresses, languages, eligibility, hours and capacity."""
    contact = row["contact"] or {}
    resource: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": row["id"],
        "meta": {"lastUpdated": instant(row["updated_at"])},
        "extension": [capacity_extension(row["capacity"], codes)],
        "active": row["status"] == "active",
        "providedBy": reference("Organization", row["organization_id"]),
        "category": [
            concept(coding(PROGRAM_CATEGORY, row["program_category"]), text=words(row["program_category"]))
        ],
    }
    if row["needs"]:
        resource["type"] = [need_concept(n, codes) for n in row["needs"]]
    if row["location_ids"]:
        resource["location"] = [reference("Location", i) for i in row["location_ids"]]
    resource["name"] = row["name"]
    if row["description"]:
        resource["comment"] = row["description"]
    telecom = _telecom(contact.get("phone"), contact.get("email"), contact.get("url"))
    if telecom:
        resource["telecom"] = telecom
    eligible = eligibility_text(row["eligibility"] or {})
    if eligible:
        resource["eligibility"] = [{"code": concept(text="Eligibility"), "comment": eligible}]
    if row["status"] not in ("active", "inactive"):
        resource["characteristic"] = [concept(text=words(row["status"]))]
    resource["communication"] = [concept(coding(BCP47, lang)) for lang in row["languages"]]
    if row["interpretation_services"]:
        resource.setdefault("characteristic", []).append(concept(text="Interpretation services"))
    weekly, other = _hours(row["hours"] or [])
    if weekly:
        resource["availableTime"] = weekly
    if other:
        resource["availabilityExceptions"] = " ".join(other)
    return resource
