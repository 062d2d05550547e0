"""The directory written as an HSDS 3.0 dataset (the tables as JSON arrays). Pure: no I/O.

Each entry gives its own row and the rows its values make (phones, languages, schedules, postal-code
service areas, careloop attributes, services at locations, a postal address), each with the fields
and id it came with when it was imported (``hsds.new_extension``), else a made-up id
(``<entry id>-<table>-<n>``); then the rows it kept as they came, and the dataset's shared rows.
Every table is sorted by id; empty tables are left out.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from referral.directory import hsds
from referral.directory.hsds_import import schedule_key
from referral.domain.directory import Schedule


class _Writer:
    def __init__(self, shared: list[tuple[str, dict[str, Any]]]) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.term_ids: dict[tuple[str, str], str] = {}
        for table, row in shared:
            self.add(table, row)
            if table == "taxonomy_term" and row.get("taxonomy_id") in hsds.TAXONOMIES:
                self.term_ids.setdefault((row["taxonomy_id"], str(row.get("code"))), row["id"])

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.tables[table][str(row["id"])] = {k: v for k, v in row.items() if v is not None}

    def child(self, ext: dict[str, Any], table: str, key: str, made_id: str, row: dict[str, Any]) -> None:
        """A row a value makes: with what it came with, when it was imported."""
        came = ext["mapped"].get(table, {}).get(key, {})
        self.add(table, {"id": made_id, **came, **row})

    def kept(self, ext: dict[str, Any]) -> None:
        for table, row in ext["kept"]:
            self.add(table, row)

    def term(self, taxonomy: str, code: str) -> str:
        found = self.term_ids.get((taxonomy, code))
        if found is None:
            found = self.term_ids[(taxonomy, code)] = f"{taxonomy}-{code}"
            self.add("taxonomy_term", {"id": found, "code": code, "name": code, "description": code,
                                       "taxonomy_id": taxonomy})  # fmt: skip
        if taxonomy not in self.tables["taxonomy"]:
            self.add("taxonomy", {"id": taxonomy, "name": hsds.TAXONOMY_NAMES[taxonomy],
                                  "description": hsds.TAXONOMY_NAMES[taxonomy]})  # fmt: skip
        return found

    def organization(self, org: dict[str, Any]) -> None:
        ext = org.get("hsds") or hsds.new_extension()
        self.add("organization", {
            **ext["row"], "id": org["id"], "name": org["name"], "description": org["description"],
            "email": org["email"], "website": org["url"], "careloop_agency_id": org["agency_id"],
        })  # fmt: skip
        if org["phone"]:
            row = {"organization_id": org["id"], "number": org["phone"]}
            self.child(ext, "phone", "organization", f"{org['id']}-phone-1", row)
        self.kept(ext)
        for loc in org["locations"]:
            lext = loc.get("hsds") or hsds.new_extension()
            self.add("location", {
                **lext["row"], "id": loc["id"], "organization_id": org["id"], "name": loc["name"],
                "location_type": loc["location_type"],
            })  # fmt: skip
            if loc["postal_code"]:
                row = {"location_id": loc["id"], "postal_code": loc["postal_code"]}
                self.child(lext, "address", "postal", f"{loc['id']}-address-1", row)
            self.kept(lext)

    def service(self, svc: dict[str, Any]) -> None:
        ext, sid = svc.get("hsds") or hsds.new_extension(), svc["id"]
        eligibility, contact = svc["eligibility"], svc["contact"]
        interpretation = ext["row"].get("interpretation_services") or hsds.INTERPRETATION_AVAILABLE
        self.add("service", {
            **ext["row"], "id": sid, "organization_id": svc["organization_id"], "name": svc["name"],
            "description": svc["description"], "status": svc["status"],
            "email": contact.get("email"), "url": contact.get("url"),
            "interpretation_services": interpretation if svc["interpretation_services"] else None,
            "eligibility_description": eligibility.get("description"),
            "minimum_age": eligibility.get("min_age"), "maximum_age": eligibility.get("max_age"),
            "careloop_capacity_status": svc["capacity_status"],
            "careloop_capacity_notes": svc["capacity_notes"],
        })  # fmt: skip
        if contact.get("phone"):
            row = {"service_id": sid, "number": contact["phone"]}
            self.child(ext, "phone", "service", f"{sid}-phone-1", row)
        for n, code in enumerate(svc["languages"], 1):
            self.child(ext, "language", code, f"{sid}-language-{n}", {"service_id": sid, "code": code})
        for n, hours in enumerate(svc["hours"], 1):
            key = schedule_key(Schedule.model_validate(hours))
            self.child(ext, "schedule", key, f"{sid}-schedule-{n}", {"service_id": sid, **hours})
        for n, prefix in enumerate(eligibility.get("postal_prefixes", []), 1):
            row = {"service_id": sid, "name": hsds.POSTAL_AREA, "extent_type": "text", "extent": prefix}
            self.child(ext, "service_area", prefix, f"{sid}-service-area-{n}", row)
        for n, location_id in enumerate(svc["location_ids"], 1):
            row = {"service_id": sid, "location_id": location_id}
            self.child(ext, "service_at_location", location_id, f"{sid}-at-{n}", row)
        self._attributes(ext, svc)
        self.kept(ext)

    def _attributes(self, ext: dict[str, Any], svc: dict[str, Any]) -> None:
        category = [] if svc["program_category"] == hsds.UNCATEGORISED else [svc["program_category"]]
        values = {"program_category": category, "needs": svc["needs"],
                  "requirements": svc["eligibility"].get("requirements", [])}  # fmt: skip
        n = 0
        for taxonomy, name in hsds.TAXONOMIES.items():
            for code in values[name]:
                n += 1
                row = {
                    "link_entity": "service",
                    "link_id": svc["id"],
                    "taxonomy_term_id": self.term(taxonomy, code),
                }
                self.child(ext, "attribute", f"{taxonomy}:{code}", f"{svc['id']}-attribute-{n}", row)

    def dataset(self) -> dict[str, list[dict[str, Any]]]:
        return {t: [rows[i] for i in sorted(rows)] for t in hsds.TABLES if (rows := self.tables.get(t))}


def dataset(
    organizations: list[dict[str, Any]],
    services: list[dict[str, Any]],
    shared: list[tuple[str, dict[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """The directory as HSDS: organizations (with their locations), services (their ``capacity_*``
    columns as stored), each with its ``hsds`` extension (null for entries never imported), and the
    dataset's shared rows (table, row)."""
    writer = _Writer(shared)
    for org in organizations:
        writer.organization(org)
    for svc in services:
        writer.service(svc)
    return writer.dataset()
