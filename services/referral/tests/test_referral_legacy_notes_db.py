"""History notes kept in the clear before notes were sealed, sealed by the background step on the real
database, with the real client of intake's key release over a stand-in for intake: run until it has
no more, no note is left in the clear but those of a patient intake does not know (sealed once it
does), the API shows every note as it was, an erased patient's note is blanked, intake is asked while
no note is locked, two replicas seal disjoint notes without waiting on each other, and the running
service seals them on its own."""

import asyncio
import base64
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import pytest_asyncio

from careloop_shared.auth import issue_token, verify_token
from careloop_shared.patient_keys import HttpPatientKeys
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import eventually, served, settings_for, until
from referral.config import NotesInTheClear, ReferralContext, ReferralSettings
from referral.erasure.handlers import seal_notes_in_the_clear
from referral.main import build_app

pytestmark = pytest.mark.integration

HOME, EAST, FOOD_BANK = "agency-home", "agency-east", "agency-food"
WRITTEN = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
_LOCKED = (
    "SELECT (SELECT count(*) FROM referral_status_history WHERE note IS NOT NULL)"
    " - (SELECT count(*) FROM (SELECT 1 FROM referral_status_history WHERE note IS NOT NULL"
    " FOR UPDATE SKIP LOCKED) free)"
)


class Intake:
    """intake's key release as referral's client meets it: a key per patient, destroyed on erasure, a
    patient it does not know (404), or no answer; each ask noted with how many notes were locked then."""

    def __init__(self) -> None:
        self.keys: dict[uuid.UUID, bytes] = {}
        self.erased: set[uuid.UUID] = set()
        self.unknown: set[uuid.UUID] = set()
        self.down = False
        self.asked: list[tuple[str, uuid.UUID, int]] = []  # agency, patient, notes locked meanwhile
        self.pool: asyncpg.Pool | None = None
        # The probe locks what is free for a moment, so two asks side by side would each count the
        # other's probe as locked: one probe at a time.
        self.probing = asyncio.Lock()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        caller = verify_token(token, DEV_JWT_SECRET, issuer=ReferralSettings().jwt_issuer)
        patient_id = uuid.UUID(request.url.path.split("/")[3])  # /v1/patients/{id}/data-key
        assert self.pool is not None
        async with self.probing:
            self.asked.append((caller.agency_id, patient_id, await self.pool.fetchval(_LOCKED)))
        if self.down:
            return httpx.Response(503)
        if patient_id in self.unknown:
            return httpx.Response(404)
        if patient_id in self.erased:
            return httpx.Response(410)
        key = base64.b64encode(self.keys.setdefault(patient_id, os.urandom(32))).decode()
        return httpx.Response(200, json={"patient_id": str(patient_id), "kid": f"{patient_id}/1", "key": key})


class Referral:
    def __init__(self, client: httpx.AsyncClient, runtime, intake: Intake) -> None:
        self.client, self.runtime, self.intake = client, runtime, intake

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    async def legacy_referral(
        self, patient_id: uuid.UUID, notes: list[str | None], agency: str = HOME
    ) -> uuid.UUID:
        """A referral the food bank accepted before notes were sealed, its history's notes in the clear."""
        referral_id = uuid.uuid4()
        await self.pool.execute(
            "INSERT INTO referrals (id, service_request_id, patient_id, agency_id, plan_id, intervention_id,"
            " need, program_id, receiving_agency_id, status, made_at, response_due_at, created_at,"
            " updated_at) VALUES ($1, gen_random_uuid(), $2, $3, gen_random_uuid(), gen_random_uuid(),"
            " 'food-insecurity', 'pantry', $4, 'accepted', $5, $5, $5, $5)",
            referral_id,
            patient_id,
            agency,
            FOOD_BANK,
            WRITTEN,
        )
        await self.pool.executemany(
            "INSERT INTO referral_status_history (referral_id, from_status, to_status, by_agency_id,"
            " by_party, by_subject, by_role, note, changed_at) VALUES ($1, $2, $3, $4, 'receiving', 'prov-1',"
            " 'provider', $5, $6)",
            [
                (referral_id, "requested", "accepted", FOOD_BANK, note, WRITTEN + timedelta(minutes=i))
                for i, note in enumerate(notes)
            ],
        )
        return referral_id

    async def stored(self, referral_id: uuid.UUID) -> list[tuple[str | None, str | None, datetime]]:
        """Each history entry as the table holds it: the note in the clear, sealed (as text), when."""
        rows = await self.pool.fetch(
            "SELECT note, note_sealed::text AS sealed, changed_at FROM referral_status_history"
            " WHERE referral_id = $1 ORDER BY position",
            referral_id,
        )
        return [(r["note"], r["sealed"], r["changed_at"]) for r in rows]

    async def in_the_clear(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT note FROM referral_status_history WHERE note IS NOT NULL ORDER BY position"
        )
        return [r["note"] for r in rows]

    async def shown(self, referral_id: uuid.UUID, agency: str, role: str) -> list[str | None]:
        token = issue_token(DEV_JWT_SECRET, agency=agency, role=role, subject="s-1")
        r = await self.client.get(
            f"/v1/referrals/{referral_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.text
        return [h["note"] for h in r.json()["history"]]

    def replica(self, batch_size: int) -> ReferralContext:
        """The service's context as another replica has it: its own pass over the notes."""
        context: ReferralContext = self.runtime.context
        return replace(context, seal_batch_size=batch_size, notes_in_the_clear=NotesInTheClear())

    async def seal_a_batch(self, ctx: ReferralContext) -> bool:
        async with self.runtime.uow() as uow:
            more: bool = await seal_notes_in_the_clear(ctx, uow)
        return more

    async def seal_until_done(self, ctx: ReferralContext, most: int = 50) -> int:
        """Batches run until the step has no more; how many."""
        for batches in range(1, most + 1):
            if not await self.seal_a_batch(ctx):
                return batches
        raise AssertionError(f"the step still had more after {most} batches")


async def start_referral(infra, database_factory, label: str, **settings_given):
    settings = settings_for(
        ReferralSettings, infra, await database_factory(label), overdue_tick_s=3600, **settings_given
    )
    intake = Intake()
    keys = HttpPatientKeys(
        base_url="http://intake",
        service="referral",
        jwt_secret=DEV_JWT_SECRET,
        jwt_issuer=settings.jwt_issuer,
        transport=httpx.MockTransport(intake),
    )
    return build_app(settings, keys=keys), intake, keys


@pytest_asyncio.fixture(scope="module")
async def referral(infra, database_factory):
    # The step runs once as the service starts (nothing to seal yet), then only when a test runs it.
    app, intake, keys = await start_referral(infra, database_factory, "referral_legacy", seal_tick_s=3600)
    async with served(app, "http://referral") as (c, runtime):
        intake.pool = runtime.pool
        # That round is a task of its own: on a slow machine it could look only after a test wrote its
        # notes, and seal them, asking intake, before the test does (a CI run's failure).
        state = runtime.context.notes_in_the_clear
        await until(lambda: not state.remain, "the step's round at start, which finds nothing", timeout=30)
        yield Referral(c, runtime, intake)
    await keys.aclose()


async def test_notes_in_the_clear_are_sealed_until_none_is_left_and_read_as_they_were(referral):
    svc = referral
    ana, bea, erased, stranger = (uuid.uuid4() for _ in range(4))
    first = await svc.legacy_referral(ana, [None, f"Called {ana}'s daughter", "Quietcanary visits"])
    second = await svc.legacy_referral(ana, ["Moved to her sister's"])
    east = await svc.legacy_referral(bea, [None, "Prefers mornings"], agency=EAST)
    gone = await svc.legacy_referral(erased, [f"{erased} sleeps at the shelter"])
    unknown = await svc.legacy_referral(stranger, ["Left a message", "Called back"])
    svc.intake.erased.add(erased)
    svc.intake.unknown.add(stranger)
    readable = {first: HOME, second: HOME, east: EAST}
    before = {r: await svc.shown(r, agency, "care-manager") for r, agency in readable.items()}
    stored = {r: await svc.stored(r) for r in readable}
    assert svc.intake.asked == []  # notes in the clear are read without a key

    assert await svc.seal_until_done(svc.replica(batch_size=3)) == 3  # seven notes, three a transaction

    assert await svc.in_the_clear() == ["Left a message", "Called back"]  # intake knows not their patient
    for r in readable:
        after = await svc.stored(r)
        assert [(n, s is not None) for n, s, _ in after] == [(None, n is not None) for n, _, _ in stored[r]]
        assert [at for *_, at in after] == [at for *_, at in stored[r]]  # changed_at as it was
        assert not any(word in str(after) for word in ("daughter", "Quietcanary", "sister", "mornings"))
    assert await svc.stored(gone) == [(None, None, WRITTEN)]  # blanked, as erasure leaves it
    assert {r: await svc.shown(r, agency, "care-manager") for r, agency in readable.items()} == before
    assert await svc.shown(first, FOOD_BANK, "provider") == before[first]  # the agency that wrote it
    # Asked for the patient's agency, whoever wrote the notes, and while no note was locked.
    assert {(agency, p) for agency, p, _ in svc.intake.asked} == {
        (HOME, ana),
        (EAST, bea),
        (HOME, erased),
        (HOME, stranger),
    }
    assert {locked for *_, locked in svc.intake.asked} == {0}

    # Once intake knows the patient, the next pass seals their notes too; then none is left at all.
    svc.intake.unknown.clear()
    await svc.seal_until_done(svc.replica(batch_size=3))
    assert await svc.in_the_clear() == []
    assert await svc.shown(unknown, HOME, "care-manager") == ["Left a message", "Called back"]


async def test_while_intake_cannot_answer_nothing_is_sealed_and_the_next_round_seals(referral):
    svc = referral
    patient = uuid.uuid4()
    referral_id = await svc.legacy_referral(patient, ["Needs a ride on Fridays"])
    stored = await svc.stored(referral_id)
    svc.intake.down = True
    try:
        assert await svc.seal_until_done(svc.replica(batch_size=10)) == 1
        assert await svc.stored(referral_id) == stored
    finally:
        svc.intake.down = False
    await svc.seal_until_done(svc.replica(batch_size=10))
    assert await svc.in_the_clear() == []
    assert await svc.shown(referral_id, HOME, "care-manager") == ["Needs a ride on Fridays"]


async def test_two_replicas_seal_disjoint_notes_without_waiting_on_each_other(referral):
    svc = referral
    patients = [uuid.uuid4() for _ in range(3)]
    referrals = [await svc.legacy_referral(p, [f"First about {p}", f"Second about {p}"]) for p in patients]
    a, b = svc.replica(batch_size=2), svc.replica(batch_size=2)

    async with svc.runtime.uow() as uow:
        assert await seal_notes_in_the_clear(a, uow) is True  # the first two, held until it commits
        # Meanwhile the other replica passes over them and seals the rest, never waiting on them.
        await asyncio.wait_for(svc.seal_until_done(b), timeout=20)
        assert await svc.in_the_clear() == [f"First about {patients[0]}", f"Second about {patients[0]}"]
        sealed_by_b = await svc.pool.fetchval(
            "SELECT count(*) FROM referral_status_history"
            " WHERE note_sealed IS NOT NULL AND referral_id = ANY($1)",
            referrals,
        )
        assert sealed_by_b == 4
    assert await svc.in_the_clear() == []
    for p, r in zip(patients, referrals, strict=True):
        assert await svc.shown(r, HOME, "care-manager") == [f"First about {p}", f"Second about {p}"]


@pytest_asyncio.fixture
async def ticking(infra, database_factory):
    app, intake, keys = await start_referral(infra, database_factory, "referral_legacy_tick", seal_tick_s=0.2)
    async with served(app, "http://referral") as (c, runtime):
        intake.pool = runtime.pool
        yield Referral(c, runtime, intake)
    await keys.aclose()


async def test_the_running_service_seals_notes_in_the_clear_in_the_background(ticking):
    svc = ticking
    notes = {uuid.uuid4(): [None, f"Note {i} kept before sealing"] for i in range(30)}
    referrals = {p: await svc.legacy_referral(p, n) for p, n in notes.items()}

    async def none_left() -> bool:
        return await svc.in_the_clear() == []

    await eventually(none_left, timeout=30, what="every note in the clear sealed by the service")
    for p, r in referrals.items():
        assert await svc.shown(r, HOME, "care-manager") == notes[p]
