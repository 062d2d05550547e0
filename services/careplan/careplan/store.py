"""careplan's store: one per wing, over one connection (a unit of work's) or the pool (reads)."""

from __future__ import annotations

import uuid
from typing import TypeAlias

from careloop_shared.db import Db
from careloop_shared.outbox import UnitOfWork
from careplan.education.store import EducationStore
from careplan.erasure.store import ErasureStore
from careplan.necessity.store import NecessityStore
from careplan.plans.store import PlanStore
from careplan.team.store import TeamStore


class CareplanStore:
    def __init__(self, db: Db) -> None:
        self.plans = PlanStore(db)
        self.team = TeamStore(db)
        self.necessity = NecessityStore(db)
        self.education = EducationStore(db)
        self.erasure = ErasureStore(db)

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        """Whose patient this is (for reading the audit log): the plans wing knows."""
        return await self.plans.agency_of_patient(patient_id)


# What every handler works with: the wings' stores and the events it emits, committed together.
Uow: TypeAlias = UnitOfWork[CareplanStore]
