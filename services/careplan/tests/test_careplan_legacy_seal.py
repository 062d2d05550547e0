"""The care team's free text written before sealing (006), sealed in the background, on the real database
(intake's keys faked): legacy rows written with SQL before 006 are sealed batch by batch until the step
says no more, none keeps text in the clear, the read path and the API show the same text, an erased
patient's is blanked, two replicas seal disjoint rows, and the running service seals them on its own."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import careplan
from careloop_shared import db
from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.events import new_message
from careloop_shared.outbox import unit_of_work
from careloop_shared.testing import bearer, eventually, publish_message, served, settings_for
from careloop_shared.testing.intake_events import depression_found
from careloop_shared.testing.keys import FakePatientKeys
from careplan.config import CareplanContext, CareplanSettings
from careplan.main import build_app
from careplan.store import CareplanStore
from careplan.team.handlers import seal_free_text_in_the_clear
from careplan.team.sealed import InTheClear, contribution_shown, member_shown

pytestmark = pytest.mark.integration

AGENCY = f"agency-{uuid.uuid4().hex[:6]}"
MIGRATIONS = [
    *db.kernel_migrations(),
    *db.folder_migrations("careplan", Path(careplan.__file__).parent / "migrations"),
]
BEFORE_SEALING = [m for m in MIGRATIONS if not m[0].startswith("careplan/") or m[0] < "careplan/006"]
BEFORE = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
CANARY = "Quillfeather"  # in every legacy text, and nowhere else
# Rows in the clear, however written: a member's name (not the erased marker '') or contact, a note.
CLEAR_MEMBERS = "SELECT id FROM care_team_members WHERE (name <> '' OR contact IS NOT NULL)"
CLEAR_NOTES = "SELECT id FROM contributions WHERE note IS NOT NULL"
SEALED_MEMBERS = "SELECT id FROM care_team_members WHERE sealed_details IS NOT NULL"


async def write_before_sealing(conn: Any, patient_id: uuid.UUID, members: int) -> list[uuid.UUID]:
    """``members`` members of the patient's care team as careplan kept them before 006 (name and contact
    in the clear), each with a note and one with a preference (no note): inserted with SQL."""
    ids = [uuid.uuid4() for _ in range(members)]
    await conn.executemany(
        "INSERT INTO care_team_members (id, patient_id, agency_id, name, relationship, role, contact,"
        " status, created_at, updated_at, created_by_subject, created_by_role)"
        " VALUES ($1, $2, $3, $4, 'family', 'primary-support', $5, 'active', $6, $6, 'cm-ana',"
        " 'care-manager')",
        [
            (m, patient_id, AGENCY, f"{CANARY} {n}", None if n % 2 else f"+1 555 01{n:02}", BEFORE)
            for n, m in enumerate(ids)
        ],
    )
    await conn.executemany(
        "INSERT INTO contributions (id, patient_id, agency_id, member_id, kind, note, preference,"
        " plan_version, created_at, recorded_by_subject, recorded_by_role)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, 'cm-ana', 'care-manager')",
        [
            *(
                (uuid.uuid4(), patient_id, AGENCY, m, "note", f"{CANARY} noted {n}", None, BEFORE)
                for n, m in enumerate(ids)
            ),
            (
                uuid.uuid4(),
                patient_id,
                AGENCY,
                ids[0],
                "preference",
                None,
                {"preferred_language": "es"},
                BEFORE,
            ),
        ],
    )
    return ids


@dataclass
class ByHand:
    """careplan's tables migrated past 006 over legacy rows, and its step run by hand (no service)."""

    pool: asyncpg.Pool
    ctx: CareplanContext
    keys: FakePatientKeys
    patients: dict[str, uuid.UUID]

    async def step(self, ctx: CareplanContext | None = None) -> bool:
        with as_agency(ALL_AGENCIES):
            async with unit_of_work(self.pool, lambda t: t, store=CareplanStore) as uow:
                return await seal_free_text_in_the_clear(ctx or self.ctx, uow)

    async def a_round(self, ctx: CareplanContext | None = None) -> int:
        """The step again while it says more may wait, as ``periodic`` runs it; how many batches."""
        for batches in range(1, 101):
            if not await self.step(ctx):
                return batches
        raise AssertionError("the step still says more after 100 batches")

    async def fetch(self, sql: str) -> list[asyncpg.Record]:
        with as_agency(ALL_AGENCIES):
            return list(await self.pool.fetch(sql))

    async def shown(self, patient_id: uuid.UUID) -> tuple[list[dict], list[dict]]:
        """The patient's team and contributions as the API's read path shows them."""
        with as_agency(AGENCY):
            store = CareplanStore(self.pool)
            team = [
                await member_shown(self.keys, AGENCY, m)
                for m in await store.team.care_team(AGENCY, patient_id)
            ]
            notes = [
                await contribution_shown(self.keys, AGENCY, patient_id, c)
                for c in await store.team.contributions(AGENCY, patient_id, 50, 0)
            ]
        return team, notes


@pytest_asyncio.fixture
async def by_hand(database_factory):
    url = await database_factory("careplan_legacy")
    pool = await db.create_pool(url, min_size=1, max_size=4)
    patients = {name: uuid.uuid4() for name in ("ada", "bo", "cy")}
    await db.migrate(pool, BEFORE_SEALING)
    with as_agency(ALL_AGENCIES):
        async with pool.acquire() as conn:
            for name, members in (("ada", 5), ("bo", 2), ("cy", 1)):
                await write_before_sealing(conn, patients[name], members)
    await db.migrate(pool, MIGRATIONS)  # 006 and 007 now, as a service starting with this change would
    keys = FakePatientKeys()
    context = CareplanContext.from_settings(CareplanSettings(), keys)
    yield ByHand(pool, dataclasses.replace(context, seal_batch_size=3), keys, patients)
    await pool.close()


async def test_rows_written_before_sealing_are_sealed_in_batches_and_read_as_before(by_hand):
    s = by_hand
    before = {p: await s.shown(p) for p in s.patients.values()}
    assert sorted(m["name"] for m in before[s.patients["ada"]][0]) == [f"{CANARY} {n}" for n in range(5)]
    updated = {
        r["id"]: r["updated_at"] for r in await s.fetch("SELECT id, updated_at FROM care_team_members")
    }
    s.keys.down = True
    assert await s.a_round() == 1  # intake cannot answer: the round ends, nothing changed
    assert len(await s.fetch(CLEAR_MEMBERS)) == 8 and len(await s.fetch(CLEAR_NOTES)) == 8
    s.keys.down = False

    # members 3, 3, then 2 and notes 3, then notes 3, then 2: a batch is full until a table's last
    assert await s.a_round() == 5
    assert await s.fetch(CLEAR_MEMBERS) == [] and await s.fetch(CLEAR_NOTES) == []
    tables = await s.fetch(
        "SELECT to_jsonb(t)::text AS row FROM care_team_members t"
        " UNION ALL SELECT to_jsonb(t)::text FROM contributions t"
    )
    assert not any(CANARY in r["row"] for r in tables)
    members = await s.fetch("SELECT id, patient_id, name, updated_at, sealed_details FROM care_team_members")
    assert all(
        m["name"] is None and m["sealed_details"]["kid"] == s.keys.keys[m["patient_id"]].kid for m in members
    )
    assert {m["id"]: m["updated_at"] for m in members} == updated  # the text did not change
    notes = await s.fetch("SELECT kind, sealed_note FROM contributions")
    assert {(n["kind"], n["sealed_note"] is None) for n in notes} == {("note", False), ("preference", True)}
    for patient_id, shown in before.items():
        assert await s.shown(patient_id) == shown
    assert await s.a_round() == 1  # nothing left: one look at each table


async def test_an_erased_patients_rows_are_blanked_and_a_patient_intake_does_not_know_keeps_them(by_hand):
    s = by_hand
    s.keys.erase(s.patients["bo"])
    s.keys.unknown.add(s.patients["cy"])
    await s.a_round()
    await s.a_round()  # the next tick: cy's rows are passed over again, and the round ends

    by_patient = {
        r["patient_id"]: r
        for r in await s.fetch(
            "SELECT patient_id, array_agg(name ORDER BY name) AS names, array_agg(contact) AS contacts,"
            " bool_and(sealed_details IS NULL) AS none_sealed FROM care_team_members GROUP BY patient_id"
        )
    }
    bo, cy = by_patient[s.patients["bo"]], by_patient[s.patients["cy"]]
    assert (bo["names"], bo["contacts"], bo["none_sealed"]) == (["", ""], [None, None], True)
    assert (cy["names"], cy["none_sealed"]) == ([f"{CANARY} 0"], True)
    notes_in_the_clear = await s.fetch("SELECT patient_id FROM contributions WHERE note IS NOT NULL")
    assert [r["patient_id"] for r in notes_in_the_clear] == [s.patients["cy"]]
    team, notes = await s.shown(s.patients["bo"])
    assert [(m["name"], m["contact"]) for m in team] == [("", None)] * 2
    assert [n["note"] for n in notes] == [None] * 3
    assert not by_patient[s.patients["ada"]]["none_sealed"]


async def test_two_replicas_seal_disjoint_rows_and_neither_waits_on_the_other(by_hand):
    s = by_hand
    first, second = (dataclasses.replace(s.ctx, in_the_clear=InTheClear()) for _ in range(2))
    with as_agency(ALL_AGENCIES):
        async with unit_of_work(s.pool, lambda t: t, store=CareplanStore) as held:
            assert await seal_free_text_in_the_clear(first, held) is True  # its batch locked, not committed
            by_first = {r["id"] for r in await held.conn.fetch(SEALED_MEMBERS)}
            # The other replica passes over the rows the first holds, and seals the rest meanwhile.
            await asyncio.wait_for(s.a_round(second), timeout=30)
            by_second = {r["id"] for r in await s.fetch(SEALED_MEMBERS)}
            assert {r["id"] for r in await s.fetch(CLEAR_MEMBERS)} == by_first
            assert await s.fetch(CLEAR_NOTES) == []
    assert len(by_first) == 3 and len(by_second) == 5 and not by_first & by_second
    assert await s.fetch(CLEAR_MEMBERS) == []
    for patient_id in s.patients.values():
        team, _ = await s.shown(patient_id)
        assert all(m["name"].startswith(CANARY) for m in team)


# The running service, its step every 0.2 s: rows written before sealing are sealed as it serves.

HEADERS = bearer(AGENCY)


@pytest_asyncio.fixture(scope="module")
async def service(infra, database_factory):
    settings = settings_for(
        CareplanSettings,
        infra,
        await database_factory("careplan_legacy_service"),
        consumer_backoff_s=0.01,
        seal_tick_s=0.2,
    )
    app = build_app(settings, keys=FakePatientKeys())
    async with served(app, "http://careplan") as (c, runtime):
        yield c, runtime, infra.bootstrap_servers


async def test_the_running_service_seals_rows_written_before_sealing_in_the_background(service):
    client, runtime, bootstrap = service
    patient_id = uuid.uuid4()
    assessed = depression_found(patient_id, agency=AGENCY, at=datetime.now(UTC))
    await publish_message(bootstrap, runtime.topic_for(assessed.type), new_message(assessed))
    path = f"/v1/patients/{patient_id}"

    async def has_plan() -> bool:
        return (await client.get(f"{path}/care-plan", headers=HEADERS)).status_code == 200

    await eventually(has_plan, what="a plan")
    with as_agency(ALL_AGENCIES):
        async with runtime.pool.acquire() as conn:
            ids = await write_before_sealing(conn, patient_id, 4)

    async def none_in_the_clear() -> bool:
        with as_agency(ALL_AGENCIES):
            members = await runtime.pool.fetch(CLEAR_MEMBERS + " AND patient_id = $1", patient_id)
            notes = await runtime.pool.fetch(CLEAR_NOTES + " AND patient_id = $1", patient_id)
        return not members and not notes

    await eventually(none_in_the_clear, timeout=30, what="the legacy rows sealed")
    team = (await client.get(f"{path}/care-team", headers=HEADERS)).json()
    assert sorted((m["id"], m["name"], m["contact"]) for m in team) == sorted(
        (str(m), f"{CANARY} {n}", None if n % 2 else f"+1 555 01{n:02}") for n, m in enumerate(ids)
    )
    assert {m["updated_at"] for m in team} == {BEFORE.isoformat().replace("+00:00", "Z")}
    notes = (await client.get(f"{path}/care-team/contributions", headers=HEADERS)).json()["items"]
    assert sorted(n["note"] or "" for n in notes) == ["", *sorted(f"{CANARY} noted {n}" for n in range(4))]
    with as_agency(ALL_AGENCIES):
        rows = await runtime.pool.fetch(
            "SELECT to_jsonb(t)::text AS row FROM care_team_members t WHERE patient_id = $1"
            " UNION ALL SELECT to_jsonb(t)::text FROM contributions t WHERE patient_id = $1",
            patient_id,
        )
    assert len(rows) == 9 and not any(CANARY in r["row"] for r in rows)
