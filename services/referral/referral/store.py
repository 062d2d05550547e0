"""referral's store: the directory's tables and the closed loop's, over one connection (or the pool)."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from typing import TypeAlias

from careloop_shared.db import Db
from careloop_shared.outbox import UnitOfWork
from referral.directory.store import DirectoryStore
from referral.erasure.store import ErasureStore
from referral.gaps.store import GapStore
from referral.loop.store import LoopStore
from referral.recruitment.store import RecruitmentStore
from referral.row_security import acting_for


class ReferralStore:
    """``directory``: organizations and programs (shared by all agencies); ``loop``: referrals and what
    they need to know of patients, consents and plans (scoped to the agencies involved); ``gaps``: the
    network's gaps and who waits on them; ``recruitment``: providers the network would like to have;
    ``erasure``: patients intake erased, and the free text about them blanked."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.directory = DirectoryStore(db)
        self.loop = LoopStore(db)
        self.gaps = GapStore(db)
        self.recruitment = RecruitmentStore(db)
        self.erasure = ErasureStore(db)

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        """Whose patient this is (the audit log answers only to the patient's agency)."""
        return await self.loop.agency_of_patient(patient_id)

    def acting_for(self, agency: str) -> AbstractAsyncContextManager[None]:
        """Inside, every wing's statements see ``agency``'s rows, not the caller's: only once the use
        case has checked that the step is that agency's (``row_security``)."""
        return acting_for(self.db, agency)


Uow: TypeAlias = UnitOfWork[ReferralStore]  # what every referral use case works in
