"""referral's store: the directory's tables and the closed loop's, over one connection (or the pool)."""

from __future__ import annotations

from typing import TypeAlias

from careloop_shared.db import Db
from careloop_shared.outbox import UnitOfWork
from referral.directory.store import DirectoryStore
from referral.loop.store import LoopStore


class ReferralStore:
    """``directory``: organizations and programs (shared by all agencies); ``loop``: referrals and what
    they need to know of patients and consents (scoped to the agencies involved)."""

    def __init__(self, db: Db) -> None:
        self.directory = DirectoryStore(db)
        self.loop = LoopStore(db)


Uow: TypeAlias = UnitOfWork[ReferralStore]  # what every referral use case works in
