"""Key-encryption key rotation without downtime, on the real database: with the new key first and the
old one still listed, reads and writes go on while the background step re-wraps every data key (in
batches, replicas sharing the work); then the old key can leave the configuration."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

import intake
from careloop_shared import db, metrics
from careloop_shared.contracts import ContactPreference
from careloop_shared.crypto import LocalKeyWrapper
from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.outbox import DatabaseUnitOfWork, unit_of_work
from careloop_shared.rules import load_rules
from careloop_shared.testing import bearer, eventually, served, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from intake import handlers
from intake.config import IntakeContext
from intake.domain import care_manager
from intake.domain.care_manager import CareManagerRules
from intake.domain.commands import AssessPatient, RegisterPatient
from intake.domain.scoring import RULES_FILE, ScreeningRules
from intake.erasure.handlers import revealed
from intake.erasure.keys import PatientKeys
from intake.erasure.rotation import rewrap_batch, rewrap_data_keys
from intake.main import IntakeSettings, build_app
from intake.store import IntakeStore

pytestmark = pytest.mark.integration

KEKS = {kid: f"{kid}:{base64.b64encode(os.urandom(32)).decode()}" for kid in ("k1", "k2")}
A, B = "agency-a", "agency-b"
BY = {"by": "cm-ana", "by_role": "care-manager"}
ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
PHQ9 = dict.fromkeys(ITEMS, 1)

Handler = Callable[[IntakeContext, Any, Any], Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class Service:
    """intake's use cases over one pool, under a configuration of key-encryption keys."""

    pool: asyncpg.Pool
    ctx: IntakeContext

    def configured(self, *kids: str, batch: int = 500) -> Service:
        wrapper = LocalKeyWrapper.from_setting(",".join(KEKS[k] for k in kids))
        return Service(
            self.pool, dataclasses.replace(self.ctx, keys=PatientKeys(wrapper), rewrap_batch_size=batch)
        )

    async def run(self, agency: str, handler: Handler, message: Any = None) -> Any:
        with as_agency(agency):
            async with unit_of_work(self.pool, lambda t: t, store=IntakeStore) as uow:
                return await handler(self.ctx, uow, message)

    async def step(self) -> bool:
        """One round of the background step, as the service runs it (for every agency)."""
        more: bool = await self.run(ALL_AGENCIES, lambda ctx, uow, _: rewrap_data_keys(ctx, uow))
        return more

    async def new_patient(self, agency: str, n: int) -> uuid.UUID:
        registration = RegisterPatient(
            agency_id=agency,
            given_name=f"Rotation{n}",
            family_name="Achterberg",
            birth_date=date(1970, 1, 1 + n),
            preferred_language="en",
            contact_preference=ContactPreference.phone,
            phone="+1 555 0100",
            **BY,
        )
        patient_id: uuid.UUID = await self.run(agency, handlers.register_patient, registration)
        await self.assess(agency, patient_id)
        return patient_id

    async def assess(self, agency: str, patient_id: uuid.UUID) -> None:
        await self.run(
            agency, handlers.assess_patient, AssessPatient(agency, patient_id, "phq-9", PHQ9, **BY)
        )

    async def answers(self, agency: str, patient_id: uuid.UUID) -> list[list[str]]:
        """Each of the patient's assessments' item codes, opened from their sealed answers."""
        with as_agency(agency):
            store = IntakeStore(self.pool)
            rows = await store.list_assessments(agency, patient_id, 100, 0)
            shown = await revealed(self.ctx, store, agency, rows)
        return [[o["code"] for o in row["observations"]][:9] for row in shown]

    async def keks(self) -> dict[str, int]:
        with as_agency(ALL_AGENCIES):
            rows = await self.pool.fetch(
                "SELECT kek_id, count(*) AS n FROM patient_keys WHERE wrapped IS NOT NULL GROUP BY kek_id"
            )
        return {r["kek_id"]: r["n"] for r in rows}


@pytest_asyncio.fixture
async def service(database_factory) -> AsyncIterator[Service]:
    pool = await db.create_pool(await database_factory("intake_rotation"), min_size=1, max_size=6)
    migrations = Path(intake.__file__).parent / "migrations"
    await db.migrate(pool, [*db.kernel_migrations(), *db.folder_migrations("intake", migrations)])
    ctx = IntakeContext(
        load_rules(ScreeningRules, RULES_FILE),
        load_rules(CareManagerRules, care_manager.RULES_FILE),
        FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC)),
    )
    yield Service(pool, ctx)
    await pool.close()


def left(state: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "careloop_data_keys_to_rewrap", {"service_name": "intake", "state": state}
    )


async def test_reads_and_writes_go_on_while_keys_are_rewrapped_and_the_old_kek_can_then_go(service):
    old = service.configured("k1")
    patients = {await old.new_patient(agency, n): agency for n, agency in enumerate([A, A, B, B, A])}
    assert await old.keks() == {"k1": 5}

    rotating = service.configured("k2", "k1", batch=2)
    assert await rotating.step() is True
    assert await rotating.keks() == {"k2": 2, "k1": 3} and left("waiting") == 3
    # Half way: every patient's answers open, new assessments are sealed, a new patient's key is k2's.
    for patient_id, agency in patients.items():
        await rotating.assess(agency, patient_id)
        assert await rotating.answers(agency, patient_id) == [ITEMS, ITEMS]
    newcomer = await rotating.new_patient(B, 9)
    assert await rotating.keks() == {"k2": 3, "k1": 3}

    rounds = 1
    while await rotating.step():
        rounds += 1
    assert rounds == 2 and await rotating.keks() == {"k2": 6} and left("waiting") == 0

    # k1 leaves the configuration: everything still opens, and new writes go on.
    new = service.configured("k2")
    for patient_id, agency in {**patients, newcomer: B}.items():
        await new.assess(agency, patient_id)
        assert set(map(tuple, await new.answers(agency, patient_id))) == {tuple(ITEMS)}
    assert await new.step() is False and left("kek-missing") == 0


async def test_replicas_share_the_work_and_a_request_is_not_blocked_by_a_batch_under_way(service):
    old = service.configured("k1")
    patients = [await old.new_patient(A, n) for n in range(6)]
    rotating = service.configured("k2", "k1", batch=3)

    # Replica one takes a batch and has not committed yet.
    async with service.pool.acquire() as conn, conn.transaction():
        first = await rewrap_batch(rotating.ctx, DatabaseUnitOfWork(conn, lambda t: t, IntakeStore(conn)))
        assert first.rewrapped == 3
        # Replica two skips the rows replica one holds and re-wraps the others, without waiting.
        second = await asyncio.wait_for(rotating.run(ALL_AGENCIES, _batch), timeout=5)
        assert second.rewrapped == 3
        # A request for a patient whose key replica one holds (k1's as others see it) is not held up.
        held = [p for p in patients if await _kek_of(service.pool, p) == "k1"]
        assert len(held) == 3
        await asyncio.wait_for(rotating.assess(A, held[0]), timeout=5)
        assert await rotating.answers(A, held[0]) == [ITEMS, ITEMS]
    assert await rotating.keks() == {"k2": 6}
    assert await rotating.step() is False


async def test_a_key_under_a_kek_no_longer_configured_is_reported_not_a_failing_loop(service):
    straggler = await service.configured("k1").new_patient(A, 1)  # k1's, never re-wrapped
    fine = await service.configured("k2").new_patient(A, 2)
    new = service.configured("k2")
    for _ in range(3):  # round after round: reported, no error
        assert await new.step() is False
    assert left("kek-missing") == 1 and left("waiting") == 0
    assert await new.keks() == {"k1": 1, "k2": 1}
    assert await new.answers(A, fine) == [ITEMS]
    # Put back, it opens again and the step re-wraps it.
    restored = service.configured("k2", "k1")
    assert await restored.answers(A, straggler) == [ITEMS]
    await restored.step()
    assert await restored.keks() == {"k2": 2} and left("kek-missing") == 0


async def _batch(ctx: IntakeContext, uow: Any, _: Any) -> Any:
    return await rewrap_batch(ctx, uow)


async def _kek_of(pool: asyncpg.Pool, patient_id: uuid.UUID) -> str:
    with as_agency(ALL_AGENCIES):
        kek: str = await pool.fetchval("SELECT kek_id FROM patient_keys WHERE patient_id = $1", patient_id)
    return kek


def _auth(agency: str) -> dict[str, str]:
    return bearer(agency, subject="cm-ada")


async def test_the_service_rewraps_in_the_background_after_a_restart_with_the_new_kek_first(
    infra, database_factory
):
    url, prefix = await database_factory("intake_rotation_app"), unique_prefix()

    def settings(*kids: str) -> IntakeSettings:
        return IntakeSettings(
            database_url=url,
            kafka_bootstrap_servers=infra.bootstrap_servers,
            topic_prefix=prefix,
            keks=",".join(KEKS[k] for k in kids),
            rewrap_batch_size=2,
        )

    @contextlib.asynccontextmanager
    async def serving(*kids: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        app = build_app(settings(*kids))
        async with served(app, "http://intake") as (client, runtime):
            yield client, runtime

    async def opened(client: httpx.AsyncClient, patient_id: str) -> bool:
        r = await client.get(f"/v1/patients/{patient_id}/assessments", headers=_auth(A))
        assert r.status_code == 200, r.text
        return all([o["code"] for o in a["observations"]][:9] == ITEMS for a in r.json()["items"])

    patients = []
    async with serving("k1") as (client, _):
        for n in range(5):
            body = {
                "given_name": f"Restart{n}",
                "family_name": "Achterberg",
                "birth_date": f"1980-02-0{n + 1}",
                "preferred_language": "en",
                "contact_preference": "phone",
                "phone": "+1 555 0101",
            }
            r = await client.post("/v1/patients", json=body, headers=_auth(A))
            assert r.status_code == 201, r.text
            patients.append(r.json()["id"])
            assessed = {"instrument": "phq-9", "answers": PHQ9}
            r = await client.post(f"/v1/patients/{patients[-1]}/assessments", json=assessed, headers=_auth(A))
            assert r.status_code == 202, r.text

    async with serving("k2", "k1") as (client, runtime):
        counts = Service(runtime.pool, runtime.context).keks

        async def all_k2() -> bool:
            for patient_id in patients:  # reads go on throughout
                assert await opened(client, patient_id)
            return await counts() == {"k2": 5}

        await eventually(all_k2, timeout=30, what="every data key re-wrapped under k2")

    async with serving("k2") as (client, runtime):
        for patient_id in patients:
            assert await opened(client, patient_id)
        assert await Service(runtime.pool, runtime.context).keks() == {"k2": 5}
