"""Open Referral HSDS 3.0 in and out of the directory: the pure mapping both ways."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import ValidationError

from careloop_shared.errors import Invalid
from referral.directory import hsds, hsds_export, hsds_import

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "hsds_synthetic.py"


def synthetic() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hsds_synthetic", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stored(imported: hsds_import.Imported) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Entries as the store gives them back to an export (the handler's rows, without the database)."""
    orgs = []
    for org, ext, location_ext in imported.organizations:
        row = org.model_dump()
        row["locations"] = [{**loc, "hsds": location_ext[loc["id"]]} for loc in row["locations"]]
        orgs.append({**row, "hsds": ext})
    services = []
    for svc, ext in imported.services:
        row = svc.model_dump(exclude={"capacity", "contact"})
        capacity = {"capacity_status": svc.capacity.status, "capacity_notes": svc.capacity.notes}
        services.append(
            {**row, **capacity, "contact": svc.contact.model_dump(exclude_none=True), "hsds": ext}
        )
    return orgs, services


def round_trip(dataset: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    imported = hsds_import.read(hsds.HsdsDataset.model_validate(dataset))
    orgs, services = stored(imported)
    exported = hsds_export.dataset(orgs, services, imported.shared)
    return json.loads(json.dumps(exported))  # as a client reads it


def by_id(dataset: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The documented normalisation: rows in any order (an export sorts each table by id)."""
    return {table: {row["id"]: row for row in rows} for table, rows in dataset.items() if rows}


ORG = "0b6f1c8e-1111-4aaa-8bbb-000000000001"
SVC = "0b6f1c8e-2222-4aaa-8bbb-000000000002"
LOC = "0b6f1c8e-3333-4aaa-8bbb-000000000003"


def minimal(**tables: list[dict[str, Any]]) -> dict[str, Any]:
    """A dataset from elsewhere: nothing careloop-specific in it."""
    return {
        "organization": [{"id": ORG, "name": "Example Aid", "description": "Helps."}],
        "service": [{"id": SVC, "organization_id": ORG, "name": "Pantry", "status": "active"}],
        **tables,
    }


def test_synthetic_dataset_is_the_same_for_a_seed_and_has_hundreds_of_services():
    script = synthetic()
    first = script.dataset(300, 17)
    assert first == script.dataset(300, 17)
    assert first != script.dataset(300, 18)
    assert len(first["service"]) == 300 and len(first["organization"]) > 30


def test_synthetic_dataset_round_trips_unchanged_but_for_row_order():
    dataset = synthetic().dataset(300, 17)
    assert by_id(round_trip(dataset)) == by_id(dataset)


def test_a_service_is_read_into_the_directory_values_it_holds():
    dataset = minimal(
        language=[{"id": "l1", "service_id": SVC, "code": "es", "name": "Spanish"}],
        phone=[{"id": "p1", "service_id": SVC, "number": "+1 555 0100", "type": "voice"}],
        schedule=[{"id": "h1", "service_id": SVC, "freq": "WEEKLY", "byday": "MO,TU", "opens_at": "09:00",
                   "closes_at": "17:00"}],
        service_area=[{"id": "a1", "service_id": SVC, "name": "postal_prefix", "extent_type": "text",
                       "extent": "941"}],
        taxonomy_term=[{"id": "t1", "code": "food-assistance", "name": "food", "description": "food",
                        "taxonomy_id": "careloop-program-category"},
                       {"id": "t2", "code": "food-insecurity", "name": "food", "description": "food",
                        "taxonomy_id": "careloop-need"}],
        attribute=[{"id": "at1", "link_id": SVC, "link_entity": "service", "taxonomy_term_id": "t1"},
                   {"id": "at2", "link_id": SVC, "link_entity": "service", "taxonomy_term_id": "t2"}],
    )  # fmt: skip
    [(svc, ext)] = hsds_import.read(hsds.HsdsDataset.model_validate(dataset)).services
    assert (svc.program_category, svc.needs, svc.languages) == (
        "food-assistance",
        ["food-insecurity"],
        ["es"],
    )
    assert svc.contact.phone == "+1 555 0100" and svc.eligibility.postal_prefixes == ["941"]
    assert [(h.byday, h.opens_at, h.closes_at) for h in svc.hours] == [("MO,TU", "09:00", "17:00")]
    assert ext["mapped"]["language"]["es"] == {"id": "l1", "name": "Spanish"}


def test_what_the_directory_has_no_place_for_is_kept_with_its_entry():
    dataset = minimal(
        schedule=[{"id": "h1", "service_id": SVC, "freq": "MONTHLY", "byday": "2SA", "opens_at": "10:00"}],
        cost_option=[{"id": "c1", "service_id": SVC, "amount": 5, "currency": "USD"}],
        taxonomy=[{"id": "other", "name": "Other", "description": "Other"}],
    )
    dataset["service"][0]["alert"] = "Closed on holidays."
    [(svc, ext)] = hsds_import.read(hsds.HsdsDataset.model_validate(dataset)).services
    assert svc.hours == [] and ext["row"] == {"alert": "Closed on holidays."}
    assert ext["kept"] == [["schedule", dataset["schedule"][0]], ["cost_option", dataset["cost_option"][0]]]
    assert by_id(round_trip(dataset))["taxonomy"] == {"other": dataset["taxonomy"][0]}


def test_a_dataset_from_elsewhere_gets_the_documented_defaults():
    dataset = minimal(
        location=[{"id": LOC, "location_type": "virtual"}],
        service_at_location=[{"id": "sal1", "service_id": SVC, "location_id": LOC}],
    )
    imported = hsds_import.read(hsds.HsdsDataset.model_validate(dataset))
    [(org, _, _)] = imported.organizations
    [(svc, _)] = imported.services
    assert (org.agency_id, org.locations[0].name) == (ORG, LOC)  # its own agency; named by its id
    assert (svc.program_category, svc.languages, svc.capacity.status) == ("uncategorised", ["en"], "capacity")
    assert svc.location_ids == [LOC]
    out = by_id(round_trip(dataset))
    assert out["organization"][ORG]["careloop_agency_id"] == ORG
    assert out["location"][LOC] == {
        "id": LOC,
        "location_type": "virtual",
        "organization_id": ORG,
        "name": LOC,
    }
    assert [r["code"] for r in out["language"].values()] == ["en"]
    assert "attribute" not in out  # an uncategorised service is given no category attribute


def test_a_directory_never_imported_exports_with_made_up_child_ids():
    imported = hsds_import.read(hsds.HsdsDataset.model_validate(minimal()))
    orgs, services = stored(imported)
    for row in (*orgs, *services):
        row["hsds"] = None
    services[0].update(needs=["food-insecurity"], program_category="food-assistance")
    out = by_id(hsds_export.dataset(orgs, services, []))
    assert set(out["attribute"]) == {f"{SVC}-attribute-1", f"{SVC}-attribute-2"}
    assert set(out["taxonomy"]) == {"careloop-program-category", "careloop-need"}
    assert by_id(round_trip(hsds_export.dataset(orgs, services, []))) == out


def _problems(dataset: dict[str, Any]) -> list[tuple[Any, str]]:
    with pytest.raises(Invalid) as refused:
        hsds_import.read(hsds.HsdsDataset.model_validate(dataset))
    return [(tuple(p["loc"]), p["type"]) for p in refused.value.problems]


def test_rules_between_rows_are_refused_naming_the_table_row_and_field():
    dataset = minimal(
        service_at_location=[{"id": "sal1", "service_id": "nowhere", "location_id": LOC}],
        location=[{"id": LOC, "location_type": "physical"}],
        phone=[{"id": "p1", "number": "1"}, {"id": "p1", "number": "2"}],
    )
    dataset["service"][0].update(minimum_age=40, maximum_age=18)
    assert sorted(_problems(dataset)) == [
        (("body", "location", 0, "organization_id"), "unknown_entry"),
        (("body", "phone", 1, "id"), "duplicate_id"),
        (("body", "service", 0, "minimum_age"), "value_error"),
        (("body", "service_at_location", 0, "service_id"), "unknown_entry"),
    ]


def test_an_entry_id_used_twice_across_tables_is_refused():
    dataset = minimal(location=[{"id": ORG, "organization_id": ORG, "location_type": "physical"}])
    assert _problems(dataset) == [(("body", "location", 0, "id"), "duplicate_id")]


@pytest.mark.parametrize(
    ("table", "change", "where"),
    [
        ("service", {"status": "closed"}, ("service", 0, "status")),
        ("service", {"minimum_age": "18"}, ("service", 0, "minimum_age")),
        ("service", {"name": None}, ("service", 0, "name")),
        ("organization", {"email": "not an email"}, ("organization", 0, "email")),
        ("organization", {"id": "Has Spaces"}, ("organization", 0, "id")),
    ],
)
def test_a_bad_field_is_refused_by_the_schema_naming_it(table, change, where):
    dataset = minimal()
    dataset[table][0].update(change)
    with pytest.raises(ValidationError) as refused:
        hsds.HsdsDataset.model_validate(dataset)
    assert where in [tuple(e["loc"][:3]) for e in refused.value.errors()]


def test_a_table_hsds_does_not_have_is_refused():
    with pytest.raises(ValidationError) as refused:
        hsds.HsdsDataset.model_validate({**minimal(), "services": []})
    assert refused.value.errors()[0]["loc"] == ("services",)


def test_services_outside_the_dataset_name_organizations_the_directory_must_have():
    dataset = minimal()
    dataset["service"][0]["organization_id"] = "org-food-bank"
    imported = hsds_import.read(hsds.HsdsDataset.model_validate(dataset))
    assert imported.outside == {"org-food-bank": ["body", "service", 0, "organization_id"]}
