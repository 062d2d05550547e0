"""Synthetic Open Referral HSDS 3.0 test data: made-up organisations and services, the same for a seed.

    python services/referral/scripts/hsds_synthetic.py [--services 300] [--seed 17] > dataset.json

Writes the dataset as referral's ``POST /v1/directory/hsds`` takes it (the HSDS tables as JSON arrays).
Names are made up from word lists; no real organisation's data. Every table of HSDS appears, with rows
the directory holds as values (careloop attributes, weekly hours, postal-code areas) and rows it
keeps as they are (addresses, contacts, costs, monthly hours, GeoJSON areas, another taxonomy).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from typing import Any

CATEGORIES = {
    "food-assistance": ["food-insecurity"],
    "housing-support": ["housing-instability", "homelessness"],
    "transportation": ["transportation-insecurity"],
    "utility-assistance": ["utility-insecurity"],
    "behavioral-health": ["stress", "depression"],
    "interpersonal-safety": ["intimate-partner-violence"],
    "financial-coaching": ["financial-insecurity"],
}
REQUIREMENTS = ["medicaid", "veteran", "resident", "low-income"]
LANGUAGES = ["en", "es", "vi", "zh", "tl", "ru", "ar", "ko"]
PLACES = ["Maple", "Harbor", "Cedar", "Riverside", "Summit", "Lakeview", "Orchard", "Willow", "Granite"]
KINDS = ["Community Services", "Neighbors Network", "Family Center", "Mutual Aid", "Outreach Collective"]
DAYS = ["MO,TU,WE,TH,FR", "MO,WE,FR", "TU,TH", "SA", "MO,TU,WE,TH,FR,SA"]
TAXONOMY_NAMES = {
    "careloop-program-category": "careloop program categories",
    "careloop-need": "careloop needs addressed (Gravity SDOH domains)",
    "careloop-requirement": "careloop program requirements",
}


class _Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.terms: dict[tuple[str, str], str] = {}

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add(self, table: str, **row: Any) -> str:
        row = {"id": self.uid(), **row}
        self.tables.setdefault(table, []).append(row)
        return str(row["id"])

    def term(self, taxonomy: str, code: str) -> str:
        if (taxonomy, code) not in self.terms:
            self.terms[(taxonomy, code)] = self.add(
                "taxonomy_term", code=code, name=code.replace("-", " "), description=f"{code} ({taxonomy})",
                taxonomy_id=taxonomy,
            )  # fmt: skip
        return self.terms[(taxonomy, code)]

    def organization(self, n: int) -> tuple[str, list[str]]:
        name = f"{self.rng.choice(PLACES)} {self.rng.choice(KINDS)} {n}"
        slug = name.lower().replace(" ", "-")
        org = self.add(
            "organization", name=name, description=f"{name} serves the neighbourhood.",
            email=f"info@{slug}.example.org", website=f"https://{slug}.example.org",
            careloop_agency_id=f"agency-{slug}", year_incorporated=self.rng.randint(1950, 2020),
        )  # fmt: skip
        self.add("phone", organization_id=org, number=f"+1 555 {self.rng.randint(1000, 9999)}", type="voice")
        self.add("program", organization_id=org, name=f"{name} programs", description="Grouped services.")
        self.add("funding", organization_id=org, source="County grant (synthetic)")
        locations = []
        for k in range(self.rng.randint(1, 3)):
            kind = "virtual" if k == 2 else "physical"
            loc = self.add(
                "location", organization_id=org, name=f"{name} site {k + 1}", location_type=kind,
                latitude=round(37.7 + self.rng.random() / 10, 5),
                longitude=round(-122.5 + self.rng.random() / 10, 5),
            )  # fmt: skip
            locations.append(loc)
            if kind == "physical":
                self.add(
                    "address", location_id=loc,
                    address_1=f"{self.rng.randint(1, 999)} {self.rng.choice(PLACES)} St",
                    city="Exampleton", state_province="CA", postal_code=f"941{self.rng.randint(0, 34):02d}",
                    country="US", address_type="physical",
                )  # fmt: skip
                self.add("accessibility", location_id=loc, description="Step-free entrance.")
        return org, locations

    def service(self, org: str, locations: list[str]) -> None:
        category = self.rng.choice(sorted(CATEGORIES))
        name = f"{category.replace('-', ' ').title()} {self.rng.randint(1, 999)}"
        interpreted = self.rng.random() < 0.4
        row: dict[str, Any] = {
            "organization_id": org, "name": name, "description": f"{name}: help for people who ask.",
            "status": self.rng.choice(["active"] * 8 + ["inactive", "temporarily closed"]),
            "email": f"intake{self.rng.randint(1, 99)}@example.org",
            "eligibility_description": "Adults in the service area.", "minimum_age": self.rng.choice([0, 18]),
            "application_process": "Call or walk in.", "fees_description": "Free.",
            "careloop_capacity_status": self.rng.choice(["capacity", "capacity", "waitlist", "no-capacity"]),
        }  # fmt: skip
        if interpreted:
            row["interpretation_services"] = "Interpreters by phone for any language."
        if self.rng.random() < 0.3:
            row["careloop_capacity_notes"] = "Next intake slot in two weeks."
        svc = self.add("service", **row)
        for code in [*self.rng.sample(LANGUAGES[1:], self.rng.randint(0, 2)), "en"]:
            self.add("language", service_id=svc, code=code, name=code.upper())
        self.add("phone", service_id=svc, number=f"+1 555 {self.rng.randint(1000, 9999)}", type="voice")
        self.add(
            "schedule",
            service_id=svc,
            freq="WEEKLY",
            byday=self.rng.choice(DAYS),
            opens_at=f"{self.rng.randint(7, 10):02d}:00",
            closes_at=f"{self.rng.randint(15, 19):02d}:30",
        )
        if self.rng.random() < 0.2:  # not weekly hours: kept as it is
            self.add(
                "schedule", service_id=svc, freq="MONTHLY", byday="2SA", opens_at="10:00", closes_at="12:00"
            )
        for prefix in self.rng.sample(["941", "9410", "9411", "945", "946"], self.rng.randint(0, 2)):
            self.add("service_area", service_id=svc, name="postal_prefix", extent_type="text", extent=prefix)
        if self.rng.random() < 0.2:
            self.add(
                "service_area",
                service_id=svc,
                name="Bay",
                extent_type="geojson",
                extent='{"type": "Point", "coordinates": [-122.4, 37.8]}',
            )
        for loc in self.rng.sample(locations, self.rng.randint(1, len(locations))):
            self.add("service_at_location", service_id=svc, location_id=loc, description="On site.")
        tags = [("careloop-program-category", category)]
        tags += [("careloop-need", need) for need in CATEGORIES[category]]
        tags += [("careloop-requirement", r) for r in self.rng.sample(REQUIREMENTS, self.rng.randint(0, 1))]
        tags += [("example-taxonomy", "walk-in")] if self.rng.random() < 0.3 else []
        for taxonomy, code in tags:
            self.add(
                "attribute",
                link_id=svc,
                link_entity="service",
                link_type="service_type",
                taxonomy_term_id=self.term(taxonomy, code),
            )
        contact = self.add(
            "contact", service_id=svc, name="Intake desk", title="Intake", email="desk@example.org"
        )
        self.add("phone", contact_id=contact, number=f"+1 555 {self.rng.randint(1000, 9999)}")
        self.add("cost_option", service_id=svc, amount=0, currency="USD", option="Free")
        self.add("required_document", service_id=svc, document="Proof of address")
        self.add(
            "metadata",
            resource_id=svc,
            resource_type="service",
            last_action_date="2026-01-02",
            last_action_type="create",
            field_name="",
            previous_value="",
            replacement_value="",
            updated_by="synthetic",
        )


def dataset(services: int = 300, seed: int = 17) -> dict[str, list[dict[str, Any]]]:
    """About five services per organization; the same dataset for the same arguments."""
    maker = _Maker(seed)
    for taxonomy, name in [*TAXONOMY_NAMES.items(), ("example-taxonomy", "Another taxonomy")]:
        maker.tables.setdefault("taxonomy", []).append({"id": taxonomy, "name": name, "description": name})
    made, n = 0, 0
    while made < services:
        n += 1
        org, locations = maker.organization(n)
        for _ in range(min(services - made, maker.rng.randint(1, 9))):
            maker.service(org, locations)
            made += 1
    return maker.tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)
    json.dump(dataset(args.services, args.seed), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
