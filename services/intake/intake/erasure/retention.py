"""The retention rules applied (daily by default): the patients they select are erased through the same
use case as a supervisor's erasure, by careloop itself, the reason naming the rule and its version, so
``PatientErased`` is announced the same way.

A run starts when the last one began a period ago (``INTAKE_RETENTION_EVERY_S``) and walks the patients
by id a batch per transaction, recording how far it came, so any replica can go on with it; one replica
at a time holds the turn (an advisory lock for the transaction). Every rule's period counts back from
the run's start. A patient selected is locked and looked at again before erasure: one assessed a moment
ago is kept.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any, TypeAlias

from careloop_shared.logging import get_logger
from careloop_shared.outbox import UnitOfWork
from intake.config import IntakeContext
from intake.domain.retention import CaseActivity, erasure_reason, quiet_since, rule_for, run_due
from intake.erasure.handlers import ErasePatient, PatientErasedAlready, erase_patient
from intake.erasure.store import RetentionStore
from intake.store import IntakeStore

log = get_logger(__name__)

Uow: TypeAlias = UnitOfWork[IntakeStore]

# Who erases by the rules: careloop on its own (no person; the role says so on the event and the key).
ACTOR, ACTOR_ROLE = "careloop-retention", "system"


def _activity(row: Any) -> CaseActivity:
    return CaseActivity(row["last_activity_at"], row["engaged"], row["referral_open"])


async def apply_retention_rules(ctx: IntakeContext, uow: Uow) -> bool:
    """Periodic: one batch of a retention run (starting one when it is due). True when more of the
    run is left."""
    runs = RetentionStore(uow.store.db)
    if not await runs.take_turn():
        return False  # another replica is applying the rules: it goes on with the run
    run = await runs.run_under_way()
    if run is None:
        now = ctx.clock()
        if not run_due(await runs.last_started_at(), now, ctx.retention_every):
            return False
        run = await runs.start_run(uuid.uuid4(), ctx.retention.version, now)
        log.info("retention run started", rules_version=ctx.retention.version)
    as_of, rules = run["started_at"], ctx.retention
    since = quiet_since(rules, as_of)
    cases = [] if since is None else await runs.cases(since, run["after_patient"], ctx.retention_batch_size)
    erased: Counter[str] = Counter(run["erased"])
    for case in cases:
        if rule_for(rules, _activity(case), as_of) is not None and (
            by_rule := await _erase(ctx, uow, runs, case, as_of)
        ):
            erased[by_rule] += 1
    finished = len(cases) < ctx.retention_batch_size
    await runs.record_progress(
        run["id"],
        after_patient=cases[-1]["id"] if cases else run["after_patient"],
        examined=len(cases),
        erased=dict(erased),
        finished_at=ctx.clock() if finished else None,
    )
    if finished:
        log.info("retention run finished", rules_version=run["rules_version"], erased=dict(erased))
    return not finished


async def _erase(ctx: IntakeContext, uow: Uow, runs: RetentionStore, case: Any, as_of: Any) -> str | None:
    """Erase the patient if, locked, the rules still select them: the rule that did, or None."""
    if await uow.store.get_patient(case["agency_id"], case["id"], lock=True) is None:
        return None
    fresh = await runs.case(case["id"])  # after the lock: an assessment committed meanwhile counts
    rule = None if fresh is None else rule_for(ctx.retention, _activity(fresh), as_of)
    if rule is None:
        return None
    command = ErasePatient(
        agency_id=case["agency_id"],
        patient_id=case["id"],
        reason=erasure_reason(ctx.retention, rule),
        by=ACTOR,
        by_role=ACTOR_ROLE,
    )
    try:
        await erase_patient(ctx, uow, command)
    except PatientErasedAlready:
        return None  # a supervisor erased them a moment ago
    return rule.name
