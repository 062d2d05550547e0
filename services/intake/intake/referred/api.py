"""What a receiving agency's providers see of the patients referred to it (``referred-patient:read``).

Only while a referral to their agency is open and the patient's consent covers it (``may_see``), and
only the minimum to act on it. Every patient shown is audited first, as a disclosure outside the
patient's agency when the caller's agency is not the patient's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from careloop_shared.http import (
    Audit,
    Auditor,
    CurrentPrincipal,
    Page,
    Paging,
    needs,
    read_store,
    service_context,
)
from intake.config import IntakeContext
from intake.domain.referred import Consent, Grant, may_see, permitted_contact
from intake.handlers import PatientNotFound
from intake.identity.sealed import identified
from intake.referred.schemas import ReferralReason, ReferredPatientOut
from intake.store import IntakeStore

router = APIRouter(prefix="/v1", tags=["referred patients"])
Store = Annotated[IntakeStore, Depends(read_store)]
Ctx = Annotated[IntakeContext, Depends(service_context)]
READ = needs("referred-patient:read")


@dataclass(frozen=True)
class Seen:
    """A patient the caller's agency may see now, whose patient it is, and the referrals allowing it."""

    patient_id: uuid.UUID
    patient_agency_id: str
    referrals: list[ReferralReason]


def _consent(row: Any) -> Consent:
    return Consent(
        purpose=row["purpose"],
        agencies=frozenset(row["agencies"]),
        program_categories=frozenset(row["program_categories"]),
        period_start=row["period_start"],
        period_end=row["period_end"],
        revoked=row["status"] == "revoked",
    )


async def visible_to(
    store: IntakeStore, agency_id: str, at: datetime, patient_id: uuid.UUID | None = None
) -> list[Seen]:
    """The patients the agency may see now, in the order of their first open referral to it."""
    grants = await store.referred.open_grants(agency_id, patient_id)
    consents: dict[uuid.UUID, list[Consent]] = defaultdict(list)
    for row in await store.referred.consents_of(list({g["patient_id"] for g in grants})):
        consents[row["patient_id"]].append(_consent(row))
    seen: dict[uuid.UUID, Seen] = {}
    for g in grants:
        grant = Grant(g["referral_id"], g["receiving_agency_id"], g["program_category"], g["ended_at"])
        patient = g["patient_id"]
        owner = g["patient_agency_id"]
        if may_see(grant, caller_agency=agency_id, patient_agency=owner, consents=consents[patient], at=at):
            reason = ReferralReason(
                referral_id=grant.referral_id, need=g["need"], program_category=grant.program_category
            )
            seen.setdefault(patient, Seen(patient, owner, [])).referrals.append(reason)
    return list(seen.values())


async def minimum_shown(ctx: IntakeContext, store: IntakeStore, seen: list[Seen]) -> list[ReferredPatientOut]:
    """The minimum to act: name, language, and the one contact detail their preference permits, if safe."""
    found = await store.referred.patients_seen([s.patient_id for s in seen])
    rows = {r["id"]: r for r in identified(ctx.keys, found)}
    shown = []
    for s in seen:
        p = rows.get(s.patient_id)
        # None: the referral closed since ``seen`` was read (row-level security hides them now); erased:
        # nothing identifying is left to show.
        if p is None or p["erased_at"] is not None:
            continue
        phone, email = permitted_contact(
            p["contact_preference"],
            p["phone"],
            p["email"],
            safe_channels=p["safe_channels"],
            needs=frozenset(r.need for r in s.referrals),
        )
        shown.append(
            ReferredPatientOut(
                patient_id=s.patient_id,
                given_name=p["given_name"],
                family_name=p["family_name"],
                preferred_language=p["preferred_language"],
                contact_preference=p["contact_preference"],
                phone=phone,
                email=email,
                referrals=s.referrals,
            )
        )
    return shown


async def _audit(audit: Auditor, shown: Iterable[Seen]) -> None:
    """One entry per patient shown, in the accounting of disclosures of the patient's agency."""
    by_agency: dict[str, list[tuple[uuid.UUID, Any]]] = defaultdict(list)
    for s in shown:
        by_agency[s.patient_agency_id].append((s.patient_id, s.patient_id))
    await asyncio.gather(
        *(
            audit.read_many(each, "referred-patient", patient_agency_id=agency)
            for agency, each in by_agency.items()
        )
    )


@router.get("/referred-patients", response_model=Page[ReferredPatientOut], openapi_extra=READ)
async def list_referred_patients(
    who: CurrentPrincipal, store: Store, ctx: Ctx, audit: Audit, page: Paging
) -> Page[ReferredPatientOut]:
    """The patients referred to the caller's agency that it may see now, with how to reach them."""
    # Decided here, not in SQL, so one rule decides; an agency's open referrals bound the work.
    visible = await visible_to(store, who.agency_id, ctx.clock())
    on_page = visible[page.offset : page.offset + page.fetch_limit]
    shown = Page.of(await minimum_shown(ctx, store, on_page), page)
    ids = {p.patient_id for p in shown.items}
    await _audit(audit, [s for s in on_page if s.patient_id in ids])
    return shown


@router.get(
    "/referred-patients/{patient_id}",
    response_model=ReferredPatientOut,
    responses={404: {"description": "Not referred to your agency, or no consent covers it now"}},
    openapi_extra=READ,
)
async def get_referred_patient(
    patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, ctx: Ctx, audit: Audit
) -> ReferredPatientOut:
    """One patient referred to the caller's agency, while it may see them; else 404, as for nobody."""
    visible = await visible_to(store, who.agency_id, ctx.clock(), patient_id)
    if not visible:
        raise PatientNotFound()
    shown = await minimum_shown(ctx, store, visible)
    if not shown:
        raise PatientNotFound()
    await _audit(audit, visible)
    return shown[0]
