"""``careloop directory import/export`` against a real referral process with its default body limit."""

import asyncio
import csv
import json

import pytest
import pytest_asyncio

from careloop_cli import hsds_csv
from careloop_cli.main import main
from careloop_shared.testing import ServiceProcess
from tests.conftest import base_env, new_prefix
from tests.test_hsds_csv import synthetic

pytestmark = pytest.mark.integration
LIMIT = 256 * 1024


def by_id(dataset: dict, keep: dict | None = None) -> dict:
    """Rows in any order; only the tables and ids ``keep`` has, when given (the seed directory is there)."""
    return {
        table: {r["id"]: r for r in rows if keep is None or r["id"] in keep.get(table, {})}
        for table, rows in dataset.items()
        if keep is None or table in keep
    }


@pytest_asyncio.fixture(scope="module")
async def referral(infra, database_factory, log_dir):
    env = {**base_env(infra, new_prefix()), "REFERRAL_DATABASE_URL": await database_factory("referral")}
    env["CARELOOP_HTTP_MAX_BODY_BYTES"] = str(LIMIT)  # the default, said out loud
    process = ServiceProcess("referral", env, log_dir).start()
    try:
        await process.wait_ready()
        yield process
    finally:
        process.stop()


async def careloop(monkeypatch, referral, *argv: str) -> int:
    monkeypatch.setenv("CARELOOP_REFERRAL_URL", referral.url)
    return await asyncio.to_thread(main, ["directory", *argv, "--max-body-bytes", str(LIMIT)])


async def test_a_package_bigger_than_the_body_limit_imports_in_chunks_and_exports_back(
    referral, tmp_path, monkeypatch, capsys
):
    dataset = synthetic(300, 17)
    hsds_csv.write_package(dataset, tmp_path / "in")
    assert len(json.dumps(dataset).encode()) > 3 * LIMIT
    assert await careloop(monkeypatch, referral, "import", str(tmp_path / "in")) == 0
    out = capsys.readouterr().out
    chunks = [line for line in out.splitlines() if line.startswith("chunk ")]
    assert len(chunks) >= 4, out
    assert f"{len(dataset['organization'])} organizations" in out and "300 services" in out
    assert await careloop(monkeypatch, referral, "export", str(tmp_path / "out")) == 0
    exported = hsds_csv.read_package(tmp_path / "out").dataset
    assert by_id(exported, keep=by_id(dataset)) == by_id(dataset)
    # The export's package reads back to what it wrote, extension columns and all.
    assert (tmp_path / "out" / "datapackage.json").exists()
    assert "careloop_agency_id" in next(csv.reader((tmp_path / "out" / "organizations.csv").open()))


async def test_a_bad_row_is_answered_with_its_file_and_row_and_nothing_of_the_chunk_is_kept(
    referral, tmp_path, monkeypatch, capsys
):
    dataset = synthetic(30, 99)
    dataset["service"][6]["status"] = "closed"
    hsds_csv.write_package(dataset, tmp_path)
    assert await careloop(monkeypatch, referral, "import", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "chunk 1 of 1 refused (nothing is imported)" in out
    assert "services.csv row 7, field status:" in out
    assert await careloop(monkeypatch, referral, "export", str(tmp_path / "after")) == 0
    exported = hsds_csv.read_package(tmp_path / "after").dataset
    assert not {o["id"] for o in dataset["organization"]} & {o["id"] for o in exported["organization"]}
