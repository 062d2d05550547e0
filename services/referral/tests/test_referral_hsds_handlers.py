"""The HSDS import against the in-memory store: all or nothing, then exported as it came."""

import pytest

from careloop_shared.errors import Invalid
from careloop_shared.testing.fakes import run
from referral.directory import handlers, hsds, hsds_export

ORG, SVC = "org-example-aid", "svc-example-pantry"


def dataset(**service) -> hsds.HsdsDataset:
    return hsds.HsdsDataset.model_validate({
        "organization": [{"id": ORG, "name": "Example Aid", "description": "Helps.", "tax_id": "x-1"}],
        "service": [{"id": SVC, "organization_id": ORG, "name": "Pantry", "status": "active", **service}],
        "taxonomy": [{"id": "other", "name": "Other", "description": "Other"}],
    })  # fmt: skip


def command(ds: hsds.HsdsDataset) -> hsds.ImportHsds:
    return hsds.ImportHsds("agency-network", "admin", "adm-ada", ds)


async def test_import_hsds_adds_entries_that_export_as_they_came(ctx, store):
    done, _ = await run(handlers.import_hsds, ctx, store, command(dataset()))
    assert done == hsds.HsdsImported(organizations=1, locations=0, services=1, shared_rows=1)
    assert store.directory.services[SVC]["changed_by"] == "adm-ada"
    orgs, services = await store.directory.hsds_entries()
    out = hsds_export.dataset(orgs, services, await store.directory.hsds_shared())
    assert {r["id"]: r for r in out["organization"]}[ORG]["tax_id"] == "x-1"
    assert out["taxonomy"] == [{"id": "other", "name": "Other", "description": "Other"}]


async def test_import_hsds_naming_an_organization_nobody_has_changes_nothing(ctx, store):
    ds = dataset()
    ds = ds.model_copy(update={"service": [*ds.service, ds.service[0].model_copy(
        update={"id": "svc-two", "organization_id": "org-nobody"})]})  # fmt: skip
    with pytest.raises(Invalid) as refused:
        await run(handlers.import_hsds, ctx, store, command(ds))
    assert refused.value.problems[0]["loc"] == ["body", "service", 1, "organization_id"]
    assert (store.directory.organizations, store.directory.services, store.directory.shared) == ({}, {}, {})
