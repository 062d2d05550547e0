"""HSDS import and export through referral's API, against its real database."""

import importlib.util
from pathlib import Path

import pytest
import pytest_asyncio

from careloop_shared.testing import bearer, served, settings_for
from referral.config import ReferralSettings
from referral.main import build_app

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "hsds_synthetic.py"


def auth(role: str) -> dict[str, str]:
    return bearer("agency-network", role)


def synthetic(services: int, seed: int) -> dict:
    spec = importlib.util.spec_from_file_location("hsds_synthetic", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dataset(services, seed)


def by_id(dataset: dict, keep: dict | None = None) -> dict:
    """Rows in any order (the documented normalisation); only the ids ``keep`` has, when given."""
    return {
        table: {r["id"]: r for r in rows if keep is None or r["id"] in keep.get(table, {})}
        for table, rows in dataset.items()
        if keep is None or table in keep
    }


@pytest_asyncio.fixture(scope="module")
async def client(infra, database_factory):
    settings = settings_for(
        ReferralSettings,
        infra,
        await database_factory("referral"),
        http_max_body_bytes=4 * 1024 * 1024,  # a few hundred services are about a megabyte
    )
    app = build_app(settings)
    async with served(app, "http://referral", timeout=60) as (c, _):
        yield c


async def test_a_synthetic_dataset_round_trips_through_the_api(client):
    dataset = synthetic(300, 17)
    r = await client.post("/v1/directory/hsds", json=dataset, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert r.json() == {"organizations": len(dataset["organization"]), "locations": len(dataset["location"]),
                        "services": 300, "shared_rows": 25}  # fmt: skip
    exported = await client.get("/v1/directory/hsds", headers=auth("supervisor"))
    assert exported.status_code == 200
    assert by_id(exported.json(), keep=by_id(dataset)) == by_id(dataset)
    # The seed directory exports too, and its export reads back to the same export.
    again = await client.post("/v1/directory/hsds", json=exported.json(), headers=auth("supervisor"))
    assert again.status_code == 200, again.text
    assert by_id((await client.get("/v1/directory/hsds", headers=auth("admin"))).json()) == by_id(
        exported.json()
    )
    # An imported service is a directory entry like any other.
    service = dataset["service"][0]
    shown = await client.get(f"/v1/services/{service['id']}", headers=auth("care-manager"))
    assert shown.status_code == 200 and shown.json()["name"] == service["name"]


async def test_a_bad_row_anywhere_imports_nothing_and_names_the_field(client):
    dataset = synthetic(40, 99)
    dataset["service"][-1]["organization_id"] = "org-nobody-has"
    dataset["schedule"].append({"id": dataset["schedule"][0]["id"]})
    r = await client.post("/v1/directory/hsds", json=dataset, headers=auth("admin"))
    assert r.status_code == 422
    assert [p["loc"] for p in r.json()["detail"]] == [
        ["body", "schedule", len(dataset["schedule"]) - 1, "id"]
    ]
    del dataset["schedule"][-1]
    r = await client.post("/v1/directory/hsds", json=dataset, headers=auth("admin"))
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["body", "service", 39, "organization_id"], "type": "unknown_entry",
                                   "msg": "names no organization"}]  # fmt: skip
    for org in dataset["organization"]:  # nothing of it was kept
        assert (await client.get(f"/v1/organizations/{org['id']}", headers=auth("admin"))).status_code == 404
    dataset["service"][0]["status"] = "closed"
    r = await client.post("/v1/directory/hsds", json=dataset, headers=auth("admin"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "service", 0, "status"]


@pytest.mark.parametrize("role", ["care-manager", "provider", "analyst"])
async def test_only_directory_administrators_import_and_export(client, role):
    r = await client.post("/v1/directory/hsds", json={}, headers=auth(role))
    assert r.status_code == 403 and r.json()["missing_permission"] == "directory:import"
    r = await client.get("/v1/directory/hsds", headers=auth(role))
    assert r.status_code == 403 and r.json()["missing_permission"] == "directory:export"


async def test_an_entry_saved_through_the_api_keeps_what_it_holds_of_hsds(client):
    dataset = synthetic(3, 5)
    assert (await client.post("/v1/directory/hsds", json=dataset, headers=auth("admin"))).status_code == 200
    org = dataset["organization"][0]
    shown = (await client.get(f"/v1/organizations/{org['id']}", headers=auth("admin"))).json()
    body = {
        k: shown[k] for k in ("id", "agency_id", "name", "description", "url", "email", "phone", "locations")
    }
    saved = await client.post("/v1/organizations", json={**body, "name": "Renamed"}, headers=auth("admin"))
    assert saved.status_code == 200, saved.text
    exported = (await client.get("/v1/directory/hsds", headers=auth("admin"))).json()
    assert by_id(exported)["organization"][org["id"]] == {**org, "name": "Renamed"}
    assert by_id(exported, keep=by_id(dataset))["program"] == by_id(dataset)["program"]
