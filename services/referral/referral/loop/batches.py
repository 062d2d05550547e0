"""The hot statements of a plan's referrals, set-based: one statement for every patient a consumed batch
handles at once (``LoopStore`` asks them through ``Store.one``)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from careloop_shared.db import Db, by_key, insert_rows_each, insert_rows_returning, probed
from careloop_shared.errors import Conflict
from referral.domain.consent import Consent

_NEWER_PLAN = (
    "(patient_id) DO UPDATE SET agency_id = EXCLUDED.agency_id, plan_id = EXCLUDED.plan_id,"
    " version = EXCLUDED.version, status = EXCLUDED.status, updated_at = EXCLUDED.updated_at"
    " WHERE plans.version < EXCLUDED.version"
)


async def upsert_patients(db: Db, rows: list[dict[str, Any]]) -> list[None]:
    """Many patients' details in one statement (see ``LoopStore.upsert_patient``)."""
    return await insert_rows_each(
        db,
        "patients",
        rows,
        conflict="(patient_id) DO UPDATE SET preferred_language = EXCLUDED.preferred_language,"
        " contact_preference = EXCLUDED.contact_preference, postal_area = EXCLUDED.postal_area,"
        " as_of = EXCLUDED.as_of WHERE patients.as_of <= EXCLUDED.as_of",
        upsert_key="patient_id",
    )


async def patients_of(db: Db, patient_ids: list[uuid.UUID]) -> list[asyncpg.Record | None]:
    rows = await db.fetch("SELECT * FROM patients WHERE patient_id = ANY($1::uuid[])", patient_ids)
    return by_key(patient_ids, rows, "patient_id")


# Each patient's consents by index (10,000 consents never analyzed, 300 patients: 2.7 ms as ``= ANY``,
# a scan; 0.6 this way; analyzed, 1.5 and 1.1).
CONSENTS_OF = probed("consents", "patient_id")


async def consents_of(db: Db, patient_ids: list[uuid.UUID]) -> list[list[Consent]]:
    rows = await db.fetch(CONSENTS_OF, list(dict.fromkeys(patient_ids)))  # each patient once
    found: dict[uuid.UUID, list[Consent]] = {p: [] for p in patient_ids}
    for r in rows:
        found[r["patient_id"]].append(Consent.from_row(r))
    return [list(found[p]) for p in patient_ids]


# The plans' earlier interventions found by index (a first plan has none) and deleted by key. As
# ``patient_id = ANY``, before a fresh platform's first analyze each batch scanned the whole table to
# delete nothing (14 ms a batch of about 370 plans in a chain of 30,000).
FORGET_INTERVENTIONS = (
    "DELETE FROM plan_interventions WHERE intervention_id = ANY(ARRAY("
    + probed("plan_interventions", "patient_id", select="intervention_id")
    + "))"
)


async def remember_plans(
    db: Db, asks: list[tuple[dict[str, Any], list[dict[str, Any]]]]
) -> list[bool | None]:
    """Each patient once per call (side by side runs one event per patient at a time): whether the plan
    was newer and kept, or None when it names an intervention another patient's plan holds, or one id
    twice (careplan gives each intervention an id of its own, so the event is not one careplan sent).
    Such an intervention is skipped, not failed on its key, so the asker can refuse its own event by name
    and the others' go on (the consumer applies them again without it)."""
    newer: list[bool | None] = list(
        await insert_rows_returning(db, "plans", [p for p, _ in asks], key="patient_id", conflict=_NEWER_PLAN)
    )
    fresh = [n for n, is_newer in enumerate(newer) if is_newer]
    if fresh:
        patients = [asks[n][0]["patient_id"] for n in fresh]
        await db.execute(FORGET_INTERVENTIONS, list(dict.fromkeys(patients)))
        items = [(n, item) for n in fresh for item in asks[n][1]]
        went_in = await insert_rows_returning(
            db,
            "plan_interventions",
            [item for _, item in items],
            key="intervention_id",
            conflict="(intervention_id) DO NOTHING",
        )
        seen: set[uuid.UUID] = set()
        for (n, item), kept in zip(items, went_in, strict=True):
            if not kept or item["intervention_id"] in seen:  # held by another plan, or named twice
                newer[n] = None
            seen.add(item["intervention_id"])
    return newer


class InterventionOfAnotherPlan(Conflict):
    """A plan names an intervention by an id another patient's plan holds, or names one twice: careplan
    gives each intervention an id of its own, so the event is not one careplan sent."""

    def __init__(self) -> None:
        super().__init__("a plan names an intervention id another patient's plan holds, or one id twice")


async def insert_referrals(db: Db, rows: list[dict[str, Any]]) -> list[bool]:
    return await insert_rows_returning(db, "referrals", rows, key="id", conflict="DO NOTHING")


# Each intervention's original referral by index, probe by probe: 370 interventions among 30,000
# referrals (analyzed) 0.7 ms, 1.4 as one index scan of ``= ANY`` (which sorts its keys first).
REFERRED = probed(
    "referrals", "intervention_id", select="intervention_id", where="replaces_referral_id IS NULL"
)


async def with_referral(db: Db, asks: list[tuple[uuid.UUID, ...]]) -> list[set[uuid.UUID]]:
    rows = await db.fetch(REFERRED, list({i for ask in asks for i in ask}))
    referred = {r["intervention_id"] for r in rows}
    return [referred.intersection(ask) for ask in asks]


async def add_histories(db: Db, rows: list[dict[str, Any]]) -> list[None]:
    return await insert_rows_each(db, "referral_status_history", rows)
