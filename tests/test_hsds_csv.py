"""``careloop directory``: HSDS 3.0 JSON <-> CSV package, and the chunks an import posts. No service."""

import csv
import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from careloop_cli import directory, hsds_csv
from careloop_cli.main import parser
from careloop_shared.testing import REPO_ROOT
from referral.directory import hsds, hsds_import

SCRIPT = REPO_ROOT / "services" / "referral" / "scripts" / "hsds_synthetic.py"


def synthetic(services: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    spec = importlib.util.spec_from_file_location("hsds_synthetic", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dataset(services, seed)


def rows_of(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_a_synthetic_dataset_round_trips_through_the_csv_package(tmp_path):
    dataset = synthetic(300, 17)
    written = hsds_csv.write_package(dataset, tmp_path)
    assert {p.name for p in written} == {hsds_csv.PACKAGE} | {
        hsds_csv.PATHS[t] for t in dataset
    }  # one CSV per table, HSDS's file names
    assert hsds_csv.read_package(tmp_path).dataset == dataset
    header = rows_of(tmp_path / "organizations.csv")[0]
    assert header[:3] == ["id", "name", "alternate_name"]  # HSDS's fields in its order, then extensions
    assert header[len(hsds_csv.FIELDS["organization"]) :] == ["careloop_agency_id"]
    package = json.loads((tmp_path / "datapackage.json").read_text())
    assert package["profile"] == "tabular-data-package"
    services = next(r for r in package["resources"] if r["name"] == "service")
    assert services["path"] == "services.csv"
    fields = {f["name"]: f for f in services["schema"]["fields"]}
    assert fields["minimum_age"]["type"] == "number" and fields["status"]["constraints"] == {"required": True}
    assert fields["careloop_capacity_status"]["type"] == "string"


def test_cells_are_typed_by_the_schema_and_null_is_not_the_empty_string(tmp_path):
    dataset = {
        "organization": [
            {"id": "org-a", "name": "A", "year_incorporated": 1999, "careloop_flag": True,
             "careloop_tags": ["x", "y"], "careloop_score": 2.5, "careloop_note": ""},
            {"id": "org-b", "name": "B, \"the\" other\nline", "careloop_flag": False, "careloop_score": 3,
             "careloop_note": ""},
        ],
        "location": [{"id": "loc-a", "location_type": "physical", "latitude": 37.5, "longitude": -122}],
        "metadata": [{"id": "m1", "resource_id": "org-a", "field_name": "", "previous_value": "x"},
                     {"id": "m2", "resource_id": "org-b", "field_name": ""}],
    }  # fmt: skip
    hsds_csv.write_package(dataset, tmp_path)
    back = hsds_csv.read_package(tmp_path).dataset
    assert back == dataset
    a, b = back["organization"]
    assert a["year_incorporated"] == 1999 and isinstance(a["year_incorporated"], int)
    assert (a["careloop_flag"], b["careloop_flag"], a["careloop_tags"]) == (True, False, ["x", "y"])
    assert isinstance(a["careloop_score"], float) and isinstance(b["careloop_score"], int)
    assert "description" not in a  # null or absent: an empty cell, read as absent
    assert back["metadata"][1] == {"id": "m2", "resource_id": "org-b", "field_name": ""}  # "" stays ""
    # A column with empty strings and nulls: the empty strings come back as null (the documented loss).
    mixed = {"organization": [{"id": "o1", "name": "", "description": "d"}, {"id": "o2", "description": "e"}]}
    hsds_csv.write_package(mixed, tmp_path / "mixed")
    assert hsds_csv.read_package(tmp_path / "mixed").dataset["organization"][0] == {
        "id": "o1",
        "description": "d",
    }


def test_a_package_naming_files_outside_itself_or_tables_hsds_lacks_is_refused(tmp_path):
    hsds_csv.write_package({"organization": [{"id": "org-1", "name": "Aid"}]}, tmp_path)
    descriptor = json.loads((tmp_path / "datapackage.json").read_text())
    descriptor["resources"][0]["path"] = "../elsewhere.csv"
    (tmp_path / "datapackage.json").write_text(json.dumps(descriptor))
    with pytest.raises(hsds_csv.PackageError, match="outside the package"):
        hsds_csv.read_package(tmp_path)
    descriptor["resources"][0].update(path="organizations.csv", name="organisations")
    (tmp_path / "datapackage.json").write_text(json.dumps(descriptor))
    with pytest.raises(hsds_csv.PackageError, match="not an HSDS table"):
        hsds_csv.read_package(tmp_path)


def test_a_plain_folder_is_read_with_hsds_types_and_text_for_the_rest(tmp_path):
    (tmp_path / "service.csv").write_text(
        "id,organization_id,name,status,minimum_age,careloop_capacity_notes,extra\n"
        "svc-1,org-1,Pantry,active,18,,7\n"
        "svc-2,org-1,Meals,active,eighteen,Full,\n"
    )
    (tmp_path / "organizations.csv").write_text("id,name\norg-1,Aid\n")
    ds = hsds_csv.read_package(tmp_path).dataset
    assert ds["organization"] == [{"id": "org-1", "name": "Aid"}]
    assert ds["service"][0] == {"id": "svc-1", "organization_id": "org-1", "name": "Pantry",
                                "status": "active", "minimum_age": 18, "extra": "7"}  # fmt: skip
    assert ds["service"][1]["minimum_age"] == "eighteen"  # not a number: text, for the service to refuse
    (tmp_path / "notes.csv").write_text("a\n1\n")
    with pytest.raises(hsds_csv.PackageError, match=r"notes\.csv"):
        hsds_csv.read_package(tmp_path)


def test_chunks_hold_whole_organizations_under_the_limit(tmp_path):
    dataset = synthetic(300, 17)
    hsds_csv.write_package(dataset, tmp_path)
    package = hsds_csv.read_package(tmp_path)
    limit = 256 * 1024
    parts = directory.chunks(package, limit)
    assert len(json.dumps(dataset)) > 3 * limit and len(parts) >= 4
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        body = part.body()
        assert len(body) <= limit
        # Each chunk stands alone: referral reads it with no organization missing, every attribute's
        # term there (so the careloop attributes become values, not kept rows).
        imported = hsds_import.read(hsds.HsdsDataset.model_validate(json.loads(body)))
        assert imported.outside == {}
        assert all(svc.program_category != "uncategorised" for svc, _ in imported.services)
        for table, rows in part.dataset.items():
            for row in rows:
                merged.setdefault(table, {})[row["id"]] = row
    assert merged == {t: {r["id"]: r for r in rows} for t, rows in dataset.items()}
    orgs = [o for part in parts for o in part.organizations]
    assert sorted(orgs) == sorted(o["id"] for o in dataset["organization"])  # each in one chunk only


def test_an_organization_bigger_than_the_limit_is_refused_before_posting(tmp_path):
    hsds_csv.write_package(synthetic(20, 3), tmp_path)
    with pytest.raises(hsds_csv.PackageError, match="over the body limit 20000"):
        directory.chunks(hsds_csv.read_package(tmp_path), 20_000)


def test_a_refused_chunk_names_the_csv_file_and_row_and_what_was_imported(tmp_path):
    dataset = synthetic(120, 8)
    hsds_csv.write_package(dataset, tmp_path)
    package = hsds_csv.read_package(tmp_path)
    parts = directory.chunks(package, 128 * 1024)
    assert len(parts) >= 3
    bad = parts[1].dataset["service"][2]
    number = package.dataset["service"].index(bad) + 1
    posted = []

    def answer(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        if len(posted) == 2:
            loc = ["body", "service", 2, "status"]
            return httpx.Response(422, json={"detail": [{"loc": loc, "type": "enum", "msg": "bad status"}]})
        return httpx.Response(200, json={"organizations": 1, "locations": 1, "services": 1, "shared_rows": 0})

    http = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://referral")
    with pytest.raises(directory.ImportRefused) as refused:
        directory.import_package(http, tmp_path, 128 * 1024, say=lambda _: None)
    text = str(refused.value)
    assert f"services.csv row {number}, field status: bad status" in text
    assert f"chunk 2 of {len(parts)} refused (chunks 1-1 are imported" in text
    assert len(posted) == 2 and all(len(r.content) <= 128 * 1024 for r in posted)


def test_the_directory_command_acts_as_a_directory_administrator():
    args = parser().parse_args(["directory", "import", "somewhere"])
    assert (args.action, args.dir, args.role) == ("import", "somewhere", "admin")
