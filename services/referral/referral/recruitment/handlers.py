"""The recruitment pipeline's use cases: prospects added and moved along, and an activated prospect
put in the directory, where it takes the patients waiting on the gaps it fills."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from careloop_shared.errors import Conflict, Invalid, NotFound
from referral.config import ReferralContext
from referral.directory.handlers import save_organization, save_service
from referral.domain.commands import (
    ChangeProspectStatus,
    ReferWaitingPatients,
    SaveOrganization,
    SaveProspect,
    SaveService,
)
from referral.domain.recruitment import FINAL, Prospect, check_move, directory_entries
from referral.gaps.handlers import refer_patients_waiting_on_gaps
from referral.recruitment.store import RecruitmentStore
from referral.store import Uow


class ProspectNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("prospect not found")


@dataclass(frozen=True)
class ProspectShown:
    """A prospect as it now is, with its history; whether saving created it; once it is active, the
    programs it became and how many waiting patients were referred to the network then."""

    created: bool
    prospect: dict[str, Any]
    history: list[dict[str, Any]]
    service_ids: list[str] = field(default_factory=list)
    referred: int | None = None


async def _shown(store: RecruitmentStore, prospect_id: str, **more: Any) -> ProspectShown:
    row = await store.get_prospect(prospect_id)
    assert row is not None  # just saved
    history = [dict(h) for h in await store.history_of(prospect_id)]
    return ProspectShown(prospect=dict(row), history=history, **more)


def _step(
    cmd: SaveProspect | ChangeProspectStatus, prospect_id: str, from_: str | None, to: str, at: datetime
) -> dict[str, Any]:
    """One step in the prospect's history, by the person asking."""
    moved = cmd if isinstance(cmd, ChangeProspectStatus) else None
    return {
        "prospect_id": prospect_id,
        "from_status": from_,
        "to_status": to,
        "reason": moved.reason if moved else None,
        "note": moved.note if moved else None,
        "by_subject": cmd.by,
        "by_role": cmd.role,
        "by_agency_id": cmd.agency_id,
        "changed_at": at,
    }


async def save_prospect(ctx: ReferralContext, uow: Uow, cmd: SaveProspect) -> ProspectShown:
    """Add a prospect (status ``prospect``, owned by the person adding it unless they name the owner),
    or change its details; its status moves only along the pipeline."""
    store, prospect, now = uow.store.recruitment, cmd.prospect, ctx.clock()
    existing = await store.get_prospect(prospect.id, lock=True)
    if existing is not None and existing["status"] in FINAL:
        raise Conflict(f"a prospect that is {existing['status']} is not changed any more")
    owner = prospect.owner_id or (existing["owner_id"] if existing else cmd.by)
    row = {
        **prospect.model_dump(),
        "owner_id": owner,
        "status": "prospect",
        "status_reason": None,
        "created_at": now,
        "updated_at": now,
        "changed_by": cmd.by,
        "changed_by_role": cmd.role,
    }
    created = await store.save_prospect(row)
    if created:
        await store.add_history(_step(cmd, prospect.id, None, "prospect", now))
    return await _shown(store, prospect.id, created=created)


async def change_prospect_status(ctx: ReferralContext, uow: Uow, cmd: ChangeProspectStatus) -> ProspectShown:
    """Move a prospect along the pipeline. Active, it joins the directory as an organisation with one
    program per category (saved as the person's change), and every patient waiting on a gap one of
    them can take is referred now."""
    store = uow.store.recruitment
    existing = await store.get_prospect(cmd.prospect_id, lock=True)
    if existing is None:
        raise ProspectNotFound()
    check_move(existing["status"], cmd.status, reason=cmd.reason)
    service_ids, referred = [], None
    if cmd.status == "active":
        prospect = _as_saved_now(existing)
        service_ids = await _join_directory(ctx, uow, cmd, prospect)
        referred = await refer_patients_waiting_on_gaps(
            ctx, uow, ReferWaitingPatients(tuple(service_ids), cmd.by, cmd.role)
        )
    now = ctx.clock()
    await store.set_status(
        cmd.prospect_id, status=cmd.status, reason=cmd.reason, at=now, by=cmd.by, by_role=cmd.role
    )
    await store.add_history(_step(cmd, cmd.prospect_id, existing["status"], cmd.status, now))
    return await _shown(store, cmd.prospect_id, created=False, service_ids=service_ids, referred=referred)


def _as_saved_now(row: Any) -> Prospect:
    """The stored prospect under today's rules; one saved under an earlier, looser rule (a web address
    with a control character, say) is refused at the fields to correct, never quoting their values."""
    try:
        return Prospect.model_validate({k: row[k] for k in Prospect.model_fields})
    except ValidationError as exc:
        problems = exc.errors(include_input=False, include_url=False)
        raise Invalid(
            [
                {
                    "loc": ["prospect", *e["loc"]],
                    "msg": "saved under an earlier rule: save the prospect again with a value "
                    "today's rules take",
                }
                for e in problems
            ]
        ) from None


async def _join_directory(
    ctx: ReferralContext, uow: Uow, cmd: ChangeProspectStatus, prospect: Prospect
) -> list[str]:
    """The prospect's organisation and programs, new in the directory; their ids."""
    organization, services = directory_entries(prospect)
    directory = uow.store.directory
    if await directory.get_organization(organization.id) is not None:
        raise Conflict("the directory already has an organization with the prospect's id")
    if any([await directory.get_service(s.id) is not None for s in services]):
        raise Conflict("the directory already has a program with the id the prospect's would take")
    await save_organization(ctx, uow, SaveOrganization(cmd.agency_id, cmd.role, cmd.by, organization))
    for service in services:
        await save_service(ctx, uow, SaveService(cmd.agency_id, cmd.role, cmd.by, service))
    return [s.id for s in services]
