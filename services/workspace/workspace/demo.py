"""The demo people development sign-in offers (made-up staff of the demo agencies and directory).

Care managers and supervisors match the demo caseload (``careloop demo``); providers are staff of
receiving agencies in referral's seed directory; the admin keeps the directory. ``make up`` prints them:
``python -m workspace.demo``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoPerson:
    subject: str
    agency: str
    role: str
    about: str


def _agency_staff(short: str, care_managers: tuple[str, str]) -> list[DemoPerson]:
    agency = f"agency-{short}"
    about = "half of the agency's demo caseload"
    people = [DemoPerson(f"cm-{short}-{name}", agency, "care-manager", about) for name in care_managers]
    return [*people, DemoPerson(f"sv-{short}-sam", agency, "supervisor", "the agency's supervisor")]


DEMO_PEOPLE: tuple[DemoPerson, ...] = (
    *_agency_staff("riverside", ("ana", "ben")),
    *_agency_staff("northgate", ("cleo", "dev")),
    *_agency_staff("harbor", ("eli", "fay")),
    DemoPerson("pr-community-joe", "agency-community-health", "provider", "Community Health Center"),
    DemoPerson("pr-transit-aid-kai", "agency-transit-aid", "provider", "Transit Aid"),
    DemoPerson("pr-food-bank-liz", "agency-food-bank", "provider", "Central Food Bank"),
    DemoPerson("ad-riverside-kim", "agency-riverside", "admin", "directory and recruitment"),
)


def main() -> None:
    width = max(len(p.subject) for p in DEMO_PEOPLE)
    agency_width = max(len(p.agency) for p in DEMO_PEOPLE)
    for p in DEMO_PEOPLE:
        print(f"    {p.subject:<{width}}  {p.role:<12}  {p.agency:<{agency_width}}  {p.about}")


if __name__ == "__main__":
    main()
