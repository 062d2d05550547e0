"""A synthetic demo caseload: about 25 made-up patients across 3 agencies, with varied needs.

Every request carries an Idempotency-Key derived from the patient's place in the caseload, so loading
the demo twice into the same databases changes nothing the second time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from careloop_cli.client import Careloop

# In every Idempotency-Key: a demo that asks for something new uses new keys, so loading it into the
# databases of an older demo adds what is new instead of being refused as a different request.
DEMO_VERSION = "2"
AGENCIES = ("agency-riverside", "agency-northgate", "agency-harbor")
# Named demo care managers: each agency's patients are shared between its two (made-up staff ids).
CARE_MANAGERS = {
    "agency-riverside": ("cm-riverside-ana", "cm-riverside-ben"),
    "agency-northgate": ("cm-northgate-cleo", "cm-northgate-dev"),
    "agency-harbor": ("cm-harbor-eli", "cm-harbor-fay"),
}
SUPERVISORS = {agency: f"sv-{agency.removeprefix('agency-')}-sam" for agency in AGENCIES}
GIVEN = (
    "Avery",
    "Jordan",
    "Rosa",
    "Minh",
    "Samira",
    "Tomas",
    "Ifeoma",
    "Lena",
    "Mateo",
    "Priya",
    "Kofi",
    "Hana",
    "Diego",
    "Noor",
    "Elif",
    "Aleksander",
    "Wen",
    "Zainab",
    "Luca",
    "Marisol",
    "Oren",
    "Ayla",
    "Bashir",
    "Ines",
    "Yusuf",
)
FAMILY = (
    "Demo-Alvarez",
    "Demo-Nguyen",
    "Demo-Okafor",
    "Demo-Lindqvist",
    "Demo-Haddad",
    "Demo-Kowalski",
    "Demo-Tanaka",
    "Demo-Moreau",
    "Demo-Oyelaran",
    "Demo-Castillo",
)
LANGUAGES = ("en", "en", "en", "es", "es", "vi", "ar")
CONTACT = ("phone", "text", "email", "do-not-contact")
PHQ9_ITEMS = (
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
)
SAFETY_ITEMS = ("95618-5", "95617-7", "95616-9", "95615-1")
SAFETY_ANSWERS = ("LA6270-8", "LA10066-1", "LA10082-8", "LA16644-9", "LA6482-9")
CATEGORIES = (
    "food-assistance",
    "housing-assistance",
    "transportation",
    "behavioral-health",
    "utility-assistance",
    "interpreter-services",
    "case-management",
    "housing-repair",
    "domestic-violence-services",
)


@dataclass
class DemoPatient:
    index: int
    agency: str
    details: dict[str, Any]
    assessments: list[dict[str, Any]] = field(default_factory=list)


def hrsn_answers(rng: random.Random) -> dict[str, Any]:
    def often() -> str:
        return rng.choice(("LA28397-0", "LA6729-3", "LA28398-8", "LA28398-8"))

    safety_level = rng.choice((0, 0, 0, 1, 3))
    return {
        "71802-3": rng.choice(("LA31993-1", "LA31993-1", "LA31994-9", "LA31995-6")),
        "96778-6": rng.choice((["LA9-3"], ["LA9-3"], ["LA28580-1"], ["LA31996-4", "LA32001-2"])),
        "88122-7": often(),
        "88123-5": often(),
        "93030-5": rng.choice(("LA33-6", "LA32-8", "LA32-8")),
        "96779-4": rng.choice(("LA33-6", "LA32-8", "LA32-8", "LA32002-0")),
        **{item: SAFETY_ANSWERS[min(4, safety_level + rng.choice((0, 1)))] for item in SAFETY_ITEMS},
    }


def caseload(size: int = 25, seed: int = 2026) -> list[DemoPatient]:
    rng = random.Random(seed)
    patients = []
    for i in range(size):
        contact = CONTACT[i % len(CONTACT)]
        details = {
            "given_name": GIVEN[i % len(GIVEN)],
            "family_name": FAMILY[i % len(FAMILY)],
            "birth_date": date(
                1940 + rng.randrange(60), 1 + rng.randrange(12), 1 + rng.randrange(28)
            ).isoformat(),
            "preferred_language": rng.choice(LANGUAGES),
            "contact_preference": contact,
            "phone": f"+1 555 01{i:02d}" if contact in ("phone", "text") or rng.random() < 0.5 else None,
            "email": f"demo{i}@example.invalid" if contact == "email" else None,
            "postal_code": rng.choice(("94110", "94103", "94601", "10001", "60614")),
        }
        agency = AGENCIES[i % len(AGENCIES)]
        details["care_manager_id"] = CARE_MANAGERS[agency][(i // len(AGENCIES)) % 2]
        patient = DemoPatient(i, agency, {k: v for k, v in details.items() if v is not None})
        patient.assessments.append({"instrument": "ahc-hrsn", "answers": hrsn_answers(rng)})
        phq2 = {"44250-9": rng.randrange(4), "44255-8": rng.randrange(4)}
        patient.assessments.append({"instrument": "phq-2", "answers": phq2})
        if sum(phq2.values()) >= 3:  # a positive PHQ-2 asks for a PHQ-9
            scores = {item: rng.randrange(4) for item in PHQ9_ITEMS}
            scores["44260-8"] = 1 if i % 11 == 0 else 0
            patient.assessments.append({"instrument": "phq-9", "answers": scores})
        patients.append(patient)
    return patients


def steps(patients: list[DemoPatient]) -> Iterator[tuple[str, Callable[[dict[str, Careloop]], None]]]:
    """The requests that load the caseload, one step each (for a progress bar)."""
    ids: dict[int, str] = {}

    def register(p: DemoPatient) -> Callable[[dict[str, Careloop]], None]:
        def run(clients: dict[str, Careloop]) -> None:
            client = clients[p.agency]
            r = client.post("intake", "/v1/patients", p.details, key=f"demo{DEMO_VERSION}-patient-{p.index}")
            if r.status_code == 409:  # already there from an earlier load: make sure of its care manager
                ids[p.index] = r.json()["existing_id"]
                manager = {"care_manager_id": p.details["care_manager_id"]}
                path = f"/v1/patients/{ids[p.index]}/care-manager"
                client.post(
                    "intake", path, manager, key=f"demo{DEMO_VERSION}-cm-{p.index}"
                ).raise_for_status()
                return
            r.raise_for_status()
            ids[p.index] = r.json()["id"]

        return run

    def consent(p: DemoPatient) -> Callable[[dict[str, Careloop]], None]:
        def run(clients: dict[str, Careloop]) -> None:
            body = {"purpose": "referral", "program_categories": list(CATEGORIES)}
            r = clients[p.agency].post(
                "intake",
                f"/v1/patients/{ids[p.index]}/consents",
                body,
                key=f"demo{DEMO_VERSION}-consent-{p.index}",
            )
            r.raise_for_status()

        return run

    def assess(p: DemoPatient, n: int, assessment: dict[str, Any]) -> Callable[[dict[str, Careloop]], None]:
        def run(clients: dict[str, Careloop]) -> None:
            r = clients[p.agency].post(
                "intake",
                f"/v1/patients/{ids[p.index]}/assessments",
                assessment,
                key=f"demo{DEMO_VERSION}-assessment-{p.index}-{n}",
            )
            r.raise_for_status()

        return run

    for p in patients:
        yield f"register patient {p.index + 1}", register(p)
        if p.index % 5 != 4:  # a few patients have not consented to sharing yet
            yield f"consent of patient {p.index + 1}", consent(p)
        for n, assessment in enumerate(p.assessments):
            yield f"{assessment['instrument']} for patient {p.index + 1}", assess(p, n, assessment)
