"""The code systems careplan's FHIR resources use, and how a need is said in them.

A need whose code is a Gravity SDOH category (``SDOHCC-CodeSystemTemporaryCodes``, the list in the
domain reference, section 1.2) is coded with it; any other need (depression, an urgent flag) is text
only, never a guessed code. careloop's own codes (intervention kinds, services, program categories,
goal descriptions, care team roles) are in ``urn:careloop:*`` systems.
"""

from __future__ import annotations

from typing import Any

from careloop_shared.fhir import SDOH_CATEGORY, coding, concept

STAFF = "urn:careloop:staff"  # a staff member's id at the identity provider
AGENCY = "urn:careloop:agency"
CARE_PLAN = "urn:careloop:care-plan"  # the plan every version belongs to
PROGRAM_CATEGORY = "urn:careloop:program-category"
SERVICE = "urn:careloop:service"  # a service code of the necessity criteria
INTERVENTION_KIND = "urn:careloop:intervention-kind"
GOAL = "urn:careloop:goal"  # a goal description of the plan library
TEAM_RELATIONSHIP = "urn:careloop:care-team-relationship"
TEAM_ROLE = "urn:careloop:care-team-role"
CAREPLAN_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"

SDOH_CATEGORIES = frozenset(
    {
        "food-insecurity",
        "housing-instability",
        "homelessness",
        "inadequate-housing",
        "transportation-insecurity",
        "financial-insecurity",
        "material-hardship",
        "educational-attainment",
        "employment-status",
        "veteran-status",
        "stress",
        "social-connection",
        "intimate-partner-violence",
        "elder-abuse",
        "personal-health-literacy",
        "health-insurance-coverage-status",
        "medical-cost-burden",
        "digital-literacy",
        "digital-access",
        "utility-insecurity",
        "language-access",
        "incarceration-status",
        "protective-factor",
        "sdoh-category-unspecified",
    }
)


def words(code: str) -> str:
    """A careloop code in words: ``food-insecurity`` -> ``Food insecurity``."""
    return code.replace("-", " ").capitalize()


def sdoh_category(need: str) -> dict[str, Any] | None:
    return concept(coding(SDOH_CATEGORY, need)) if need in SDOH_CATEGORIES else None


def need_concept(need: str) -> dict[str, Any]:
    """A need: its Gravity category where it is one, and its words."""
    coded = [coding(SDOH_CATEGORY, need)] if need in SDOH_CATEGORIES else []
    return concept(*coded, text=words(need))


def staff_reference(staff_id: str) -> dict[str, Any]:
    """A logical reference to a staff member: careloop serves no Practitioner to resolve."""
    return {"type": "Practitioner", "identifier": {"system": STAFF, "value": staff_id}}


def agency_reference(agency_id: str) -> dict[str, Any]:
    return {"type": "Organization", "identifier": {"system": AGENCY, "value": agency_id}}
