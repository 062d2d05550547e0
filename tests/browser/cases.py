"""Patients the browser tests share: one per agency, each referred to a different receiving agency.

Rita at agency-riverside (care manager cm-riverside-ana): a positive PHQ-2, consent for behavioral
health, referred to the Community Health Center (pr-community-joe). Hugo at agency-harbor (cm-harbor-eli):
an AHC HRSN with a food need, consent for food assistance, referred to the Central Food Bank
(pr-food-bank-liz).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from careloop_shared.testing import eventually

if TYPE_CHECKING:
    from tests.browser.conftest import Platform

RITA = {
    "given_name": "Rita",
    "family_name": "Riverside-Isolation",
    "birth_date": "1970-02-03",
    "contact_preference": "text",
    "phone": "+1 555 0170",
    "safe_channels": ["text", "phone"],
}
HUGO = {
    "given_name": "Hugo",
    "family_name": "Harbor-Isolation",
    "birth_date": "1966-09-12",
    "contact_preference": "phone",
    "phone": "+1 555 0166",
    "safe_channels": ["phone"],
}
PHQ2_POSITIVE = {"instrument": "phq-2", "answers": {"44250-9": 2, "44255-8": 2}}
SAFETY_NEVER = {item: "LA6270-8" for item in ("95618-5", "95617-7", "95616-9", "95615-1")}
HRSN_FOOD = {
    "instrument": "ahc-hrsn",
    "answers": {
        "71802-3": "LA31993-1",
        "96778-6": ["LA9-3"],
        "88122-7": "LA28397-0",  # often worried food would run out
        "88123-5": "LA28398-8",
        "93030-5": "LA32-8",
        "96779-4": "LA32-8",
        **SAFETY_NEVER,
    },
}


@dataclass(frozen=True)
class Case:
    patient_id: str
    referral_id: str
    name: str
    phone: str

    @property
    def traces(self) -> tuple[str, ...]:
        """Anything on a page that would show the case: its ids, name, family name, phone."""
        return (self.patient_id, self.referral_id, self.name, self.name.split()[-1], self.phone)


async def referred(
    platform: Platform, who: str, patient: dict[str, Any], category: str, assessment: dict[str, Any]
) -> Case:
    intake, referral = platform.urls["intake"], platform.urls["referral"]
    async with platform.api(who) as api:
        created = await api.post(f"{intake}/v1/patients", json=patient)
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        consent = {"purpose": "referral", "program_categories": [category]}
        consented = await api.post(f"{intake}/v1/patients/{patient_id}/consents", json=consent)
        assert consented.status_code == 201, consented.text
        assessed = await api.post(f"{intake}/v1/patients/{patient_id}/assessments", json=assessment)
        assert assessed.status_code == 202, assessed.text

        async def sent() -> str | None:
            found = await api.get(f"{referral}/v1/referrals", params={"patient_id": patient_id})
            return next((r["id"] for r in found.json()["items"] if r["status"] == "requested"), None)

        try:
            referral_id = await eventually(sent, timeout=45, what=f"{category} referral sent")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n{await _where_it_stopped(platform, api, who, patient_id)}"
            ) from None
    name = f"{patient['given_name']} {patient['family_name']}"
    return Case(patient_id, referral_id, name, patient["phone"])


async def _where_it_stopped(platform: Platform, api: httpx.AsyncClient, who: str, patient_id: str) -> str:
    """What each service the referral waits on holds for the patient, and the end of their logs."""
    from tests.browser.conftest import Person, person

    careplan, referral = platform.urls["careplan"], platform.urls["referral"]
    plan = await api.get(f"{careplan}/v1/patients/{patient_id}/care-plan")
    referrals = await api.get(f"{referral}/v1/referrals", params={"patient_id": patient_id})
    statuses = (
        [r["status"] for r in referrals.json().get("items", [])] if referrals.is_success else referrals.text
    )
    async with platform.api(Person("diagnostics", person(who).agency, "supervisor")) as supervisor:
        gaps = await supervisor.get(f"{referral}/v1/network-gaps")
    if plan.is_success:
        interventions = plan.json()["document"]["interventions"]
        needing = [i["program_category"] for i in interventions if i["needs_referral"]]
        lines = [f"care plan: {plan.status_code}, interventions needing a referral: {needing}"]
    else:
        lines = [f"care plan: {plan.status_code} {plan.text}"]
    lines += [f"referrals: {statuses}", f"network gaps: {gaps.status_code} {gaps.text[:500]}"]
    for name in ("intake", "careplan", "referral"):
        lines.append(f"--- {name} log, last lines ---\n{platform.processes[name].tail(40)}")
    return "\n".join(lines)


async def referred_cases(platform: Platform) -> dict[str, Case]:
    rita = await referred(platform, "cm-riverside-ana", RITA, "behavioral-health", PHQ2_POSITIVE)
    hugo = await referred(platform, "cm-harbor-eli", HUGO, "food-assistance", HRSN_FOOD)
    return {"rita": rita, "hugo": hugo}
