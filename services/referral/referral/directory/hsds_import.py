"""An HSDS 3.0 dataset read into directory entries. Pure: no I/O.

Each organization, location and service becomes a directory entry; the rows the directory holds as a
value (a phone, a language code, an opening time, a postal-code prefix, a careloop attribute, a
service at a location, a postal code) become that value; every other field and row is kept beside the
entry it belongs to (``hsds.new_extension``), or with the dataset's shared rows (taxonomies, rows
that belong to no entry), so that exporting gives them back. Any problem is a 422 naming the table,
the row and the field; nothing is read into entries until there is none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from careloop_shared.errors import Invalid, problem
from referral.directory import hsds
from referral.domain.directory import (
    Capacity,
    Contact,
    Eligibility,
    Location,
    Organization,
    Schedule,
    Service,
)

_LANGUAGE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
_PHONE = re.compile(r"^\+?[0-9 ()\-.]{7,25}$")
_CODE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,10}$")
_POSTAL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,11}$")
# Where a row may point at the entry it belongs to, in the order looked at.
_OWNER_KEYS = (
    *("service_id", "service_at_location_id", "location_id", "organization_id"),
    *("contact_id", "phone_id", "program_id", "link_id", "resource_id"),
)
_LOOSE_TABLES = ("taxonomy", "taxonomy_term", "meta_table_description")


@dataclass
class Imported:
    """What a dataset brings: entries with what they keep of HSDS, and the dataset's shared rows.
    ``outside``: organizations the dataset's services belong to but it does not hold (the directory
    must have them), each with where it was first named."""

    organizations: list[tuple[Organization, dict[str, Any], dict[str, dict[str, Any]]]] = field(
        default_factory=list
    )  # (organization, its extension, its locations' extensions by location id)
    services: list[tuple[Service, dict[str, Any]]] = field(default_factory=list)
    shared: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    outside: dict[str, list[str | int]] = field(default_factory=dict)


def _only(row: dict[str, Any], *keys: str) -> bool:
    """Whether ``row`` points at nothing but ``keys`` (a phone of a service, not of a contact)."""
    return all((k in keys) == (row.get(k) is not None) for k in _OWNER_KEYS if k != "link_id")


def _rest(row: dict[str, Any], *mapped: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in mapped}


class _Reader:
    def __init__(self, ds: hsds.HsdsDataset) -> None:
        self.ds = ds
        self.problems: list[dict[str, Any]] = []
        self.out = Imported()
        self.orgs = {r.id: r for r in ds.organization}
        self.services = {r.id: r for r in ds.service}
        self.locations = {r.id: r for r in ds.location}
        self.terms = {r.id: hsds.row_dict(r) for r in ds.taxonomy_term}
        self.ext: dict[str, dict[str, Any]] = {}  # entry id -> its extension
        self.owner: dict[str, str] = {}  # any row's id -> the entry it belongs to
        self.value: dict[str, dict[str, Any]] = {sid: _service_values() for sid in self.services}
        self.org_phone: dict[str, str] = {}
        self.postal: dict[str, str] = {}
        self.loc_org: dict[str, str] = {}

    def fail(self, table: str, index: int, name: str | None, type_: str, msg: str) -> None:
        self.problems.append(problem(["body", table, index, *([name] if name else [])], type_, msg))

    def check_ids(self) -> None:
        for table in hsds.TABLES:
            seen: set[str] = set()
            for i, row in enumerate(getattr(self.ds, table)):
                if row.id in seen:
                    self.fail(table, i, "id", "duplicate_id", "another row of this table has this id")
                seen.add(row.id)
        earlier: set[str] = {r.id for r in self.ds.organization}
        for table in ("location", "service"):  # one namespace for the directory's entries
            for i, row in enumerate(getattr(self.ds, table)):
                if row.id in earlier:
                    self.fail(table, i, "id", "duplicate_id", "an organization or location has this id")
            earlier |= {r.id for r in getattr(self.ds, table)}

    def entries(self) -> None:
        for table, rows in (("organization", self.ds.organization), ("service", self.ds.service)):
            for row in rows:
                self.ext[row.id] = hsds.new_extension()
                self.ext[row.id]["row"] = _rest(hsds.row_dict(row), *hsds.MAPPED_FIELDS[table])
                self.owner[row.id] = row.id
        for i, svc in enumerate(self.ds.service):
            if svc.organization_id not in self.orgs:
                self.out.outside.setdefault(svc.organization_id, ["body", "service", i, "organization_id"])
            if (svc.minimum_age or 0) > (svc.maximum_age if svc.maximum_age is not None else 130):
                self.fail("service", i, "minimum_age", "value_error", "minimum_age exceeds maximum_age")
        at: dict[str, str] = {}  # location -> a service there
        for i, sal in enumerate(self.ds.service_at_location):
            if sal.service_id not in self.services:
                self.fail("service_at_location", i, "service_id", "unknown_entry", "names no service here")
                continue
            at.setdefault(sal.location_id, sal.service_id)
            self.owner[sal.id] = sal.service_id
        for i, loc in enumerate(self.ds.location):
            there = self.services.get(at.get(loc.id, ""))
            org_id = loc.organization_id or (there.organization_id if there else None)
            if org_id is None or org_id not in self.orgs:
                why = "names no organization of the dataset" if org_id else "no organization: name one"
                self.fail("location", i, "organization_id", "unknown_entry", why)
                continue
            self.loc_org[loc.id] = org_id
            self.ext[loc.id] = hsds.new_extension()
            self.ext[loc.id]["row"] = _rest(hsds.row_dict(loc), *hsds.MAPPED_FIELDS["location"])
            self.owner[loc.id] = loc.id

    def owners(self) -> None:
        """Rows that point at an entry, or at a row that does (a contact's phone), belong to it."""
        others = [r for t in hsds.TABLES if t not in hsds.MAPPED_FIELDS for r in getattr(self.ds, t)]
        for _ in range(3):  # a language of a phone of a contact of a service: three steps at most
            for row in others:
                data = row.model_dump()
                found = next((data[k] for k in _OWNER_KEYS if data.get(k) in self.owner), None)
                if found is not None and row.id not in self.owner:
                    self.owner[row.id] = self.owner[found]

    def keep(self, table: str, row: dict[str, Any]) -> None:
        owner = self.owner.get(row["id"])
        if owner is None or table in _LOOSE_TABLES:
            self.out.shared.append((table, row))
        else:
            self.ext[owner]["kept"].append([table, row])

    def leftover(self, entry: str, table: str, key: str, row: dict[str, Any], *mapped: str) -> None:
        self.ext[entry]["mapped"].setdefault(table, {})[key] = _rest(row, *mapped)

    def values(self) -> None:
        for table in hsds.TABLES:
            if table in hsds.MAPPED_FIELDS or table == "service_at_location":
                continue
            for row in map(hsds.row_dict, getattr(self.ds, table)):
                if not getattr(self, f"_{table}", lambda _: False)(row):
                    self.keep(table, row)
        for sal in self.ds.service_at_location:
            row, held = hsds.row_dict(sal), self.value[sal.service_id]
            if sal.location_id in held["location_ids"]:
                self.keep("service_at_location", row)
                continue
            held["location_ids"].append(sal.location_id)
            mapped = ("service_id", "location_id")
            self.leftover(sal.service_id, "service_at_location", sal.location_id, row, *mapped)

    def _phone(self, row: dict[str, Any]) -> bool:
        number = row.get("number")
        if not isinstance(number, str) or not _PHONE.match(number):
            return False
        org, svc = row.get("organization_id"), row.get("service_id")
        if _only(row, "organization_id") and org in self.orgs and org not in self.org_phone:
            self.org_phone[org] = number
            self.leftover(org, "phone", "organization", row, "organization_id", "number")
            return True
        if _only(row, "service_id") and svc in self.value and self.value[svc]["phone"] is None:
            self.value[svc]["phone"] = number
            self.leftover(svc, "phone", "service", row, "service_id", "number")
            return True
        return False

    def _language(self, row: dict[str, Any]) -> bool:
        code, svc = row.get("code"), row.get("service_id")
        if not _only(row, "service_id") or svc not in self.value or not isinstance(code, str):
            return False
        if not _LANGUAGE.match(code) or code in self.value[svc]["languages"]:
            return False
        self.value[svc]["languages"].append(code)
        self.leftover(svc, "language", code, row, "service_id", "code")
        return True

    def _schedule(self, row: dict[str, Any]) -> bool:
        svc = row.get("service_id")
        if not _only(row, "service_id") or svc not in self.value or "freq" not in row:
            return False
        try:
            hours = Schedule.model_validate(
                {k: row.get(k) for k in ("freq", "byday", "opens_at", "closes_at")}
            )
        except ValidationError:
            return False
        if hours in self.value[svc]["hours"]:
            return False
        self.value[svc]["hours"].append(hours)
        self.leftover(svc, "schedule", schedule_key(hours), row, "service_id", *Schedule.model_fields)
        return True

    def _service_area(self, row: dict[str, Any]) -> bool:
        svc, extent = row.get("service_id"), row.get("extent")
        if not _only(row, "service_id") or svc not in self.value or not isinstance(extent, str):
            return False
        prefixes = self.value[svc]["postal_prefixes"]
        fits = row.get("extent_type") == "text" and row.get("name") == hsds.POSTAL_AREA
        if not fits or not _PREFIX.match(extent) or extent in prefixes:
            return False
        prefixes.append(extent)
        self.leftover(svc, "service_area", extent, row, "service_id", "extent", "extent_type", "name")
        return True

    def _attribute(self, row: dict[str, Any]) -> bool:
        svc, term = row.get("link_id"), self.terms.get(row.get("taxonomy_term_id") or "")
        if row.get("link_entity") != "service" or svc not in self.value or term is None:
            return False
        wanted, code = hsds.TAXONOMIES.get(term.get("taxonomy_id") or ""), term.get("code")
        if wanted is None or not isinstance(code, str) or not _CODE.match(code):
            return False
        held = self.value[svc]
        if held[wanted] is not None if wanted == "program_category" else code in held[wanted]:
            return False
        if wanted == "program_category":
            held[wanted] = code
        else:
            held[wanted].append(code)
        mapped = ("link_id", "link_entity", "taxonomy_term_id")
        self.leftover(svc, "attribute", f"{term['taxonomy_id']}:{code}", row, *mapped)
        return True

    def _address(self, row: dict[str, Any]) -> bool:
        loc, code = row.get("location_id"), row.get("postal_code")
        if not _only(row, "location_id") or loc not in self.ext or loc in self.postal:
            return False
        if not isinstance(code, str) or not _POSTAL_CODE.match(code):
            return False
        self.postal[loc] = code
        self.leftover(loc, "address", "postal", row, "location_id", "postal_code")
        return True

    def build(self) -> None:
        for i, org in enumerate(self.ds.organization):
            locations = [
                Location(id=loc.id, name=loc.name or loc.id, location_type=loc.location_type,
                         postal_code=self.postal.get(loc.id))
                for loc in self.ds.location
                if self.loc_org.get(loc.id) == org.id
            ]  # fmt: skip
            try:
                built = Organization(
                    id=org.id, agency_id=org.careloop_agency_id or org.id, name=org.name,
                    description=org.description, url=org.website, email=org.email,
                    phone=self.org_phone.get(org.id), locations=locations,
                )  # fmt: skip
            except ValidationError as e:
                self.fail("organization", i, None, "value_error", _first(e))
                continue
            self.out.organizations.append(
                (built, self.ext[org.id], {lo.id: self.ext[lo.id] for lo in locations})
            )
        for i, svc in enumerate(self.ds.service):
            held = self.value[svc.id]
            try:
                built_service = Service(
                    id=svc.id, organization_id=svc.organization_id, name=svc.name,
                    description=svc.description,
                    program_category=held["program_category"] or hsds.UNCATEGORISED,
                    needs=held["needs"], status=svc.status, languages=held["languages"] or ["en"],
                    interpretation_services=bool((svc.interpretation_services or "").strip()),
                    eligibility=Eligibility(
                        description=svc.eligibility_description, min_age=svc.minimum_age,
                        max_age=svc.maximum_age, postal_prefixes=held["postal_prefixes"],
                        requirements=held["requirements"],
                    ),
                    hours=held["hours"],
                    capacity=Capacity(status=svc.careloop_capacity_status or "capacity",
                                      notes=svc.careloop_capacity_notes),
                    contact=Contact(email=svc.email, phone=held["phone"], url=svc.url),
                    location_ids=held["location_ids"],
                )  # fmt: skip
            except ValidationError as e:
                self.fail("service", i, None, "value_error", _first(e))
                continue
            text = svc.interpretation_services
            if text is not None and text != hsds.INTERPRETATION_AVAILABLE:
                self.ext[svc.id]["row"]["interpretation_services"] = text
            self.out.services.append((built_service, self.ext[svc.id]))


def _service_values() -> dict[str, Any]:
    return {
        **dict.fromkeys(("program_category", "phone")),
        **{k: [] for k in ("needs", "requirements", "languages", "hours", "postal_prefixes", "location_ids")},
    }


def _first(error: ValidationError) -> str:
    e = error.errors()[0]
    return f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else str(e["msg"])


def schedule_key(hours: Schedule) -> str:
    return f"{hours.freq} {hours.byday} {hours.opens_at}-{hours.closes_at}"


def read(ds: hsds.HsdsDataset) -> Imported:
    """The dataset as directory entries; Invalid (every problem found, each naming where) if it has any."""
    reader = _Reader(ds)
    reader.check_ids()
    reader.entries()
    if not reader.problems:
        reader.owners()
        reader.values()
        reader.build()
    if reader.problems:
        raise Invalid(reader.problems)
    return reader.out
