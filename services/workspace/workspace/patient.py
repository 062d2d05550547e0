"""The patient page: everything careloop knows of one patient, each section read as the signed-in person.

It is for the roles that may read patients; another agency's patient (or none) is "not found", and then no
other service is asked about it. Every section is shown only to a role the permission matrix lets read it,
is read at the same time as the others, and fails on its own (says so in place). Long lists go a page at a
time (``?<list>=<offset>``); a plan not drafted yet (it follows the first assessment, asynchronously) says
so and offers a refresh.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import Listing, ServiceError, Services
from workspace.codes import WITHDRAWABLE
from workspace.errors import error_page
from workspace.fhir_record import EXPORTS
from workspace.forms import new_form_key
from workspace.notices import notice_of
from workspace.own_words import goal_words
from workspace.pages import Offset, may
from workspace.plan_diff import DiffLine, diff_lines, names_in
from workspace.web import CallServices, SignedInSession, render, workspace_of

router = APIRouter()

EDUCATION_PROVIDED = "careloop.careplan.education_provided.v1"
TIMELINE_PAGE = 50  # the case record reads best in long pages
READS = (
    "patient:read",
    "consent:read",
    "assessment:read",
    "plan:read",
    "care-team:read",
    "service-request:read",
    "referral:read",
    "follow-up:read",
    "task:read",
    "record:read",
    "record:verify",
)
ACTIONS = (
    "consent:record",
    "consent:revoke",
    "assessment:record",
    "plan:change",
    "care-team:change",
    "service-request:request",
    "referral:make",
    "referral:change-status",  # withdraw a referral the agency made
    "follow-up:record-outcome",
    "follow-up:reschedule",
    "follow-up:arrange",  # arrange a contact with the patient, or call one off
    "task:change",
    "patient:assign",  # a supervisor reassigns the patient from their page too
    "patient:update",
    "patient:erase",
    "audit:read",  # who has seen the patient's data (a page of its own)
)


@dataclass
class Positions:
    """Where each of the page's lists is (offsets), and which plan versions to compare."""

    consents: Offset = 0
    assessments: Offset = 0
    versions: Offset = 0
    members: Offset = 0
    contributions: Offset = 0
    requests: Offset = 0
    referrals: Offset = 0
    follow_ups: Offset = 0
    tasks: Offset = 0
    timeline: Offset = 0
    diff_from: Annotated[int | None, Query(alias="from", ge=1, le=100_000)] = None
    diff_to: Annotated[int | None, Query(alias="to", ge=1, le=100_000)] = None


@dataclass(frozen=True)
class Part:
    """One section's answer, or why it could not be read (``read`` is False: not for this role)."""

    value: Any = None
    error: ServiceError | None = None
    read: bool = True

    @property
    def missing(self) -> bool:
        return self.error is not None and self.error.status == 404


async def part(allowed: bool, fetch: Callable[[], Awaitable[Any]]) -> Part:
    if not allowed:
        return Part(read=False)
    try:
        return Part(await fetch())
    except ServiceError as exc:
        if exc.status == 401:
            raise
        return Part(error=exc)


def sliced(answer: Part, offset: int, size: int) -> Listing:
    """A list a service answers whole, shown a page at a time."""
    if answer.error is not None or not answer.read:
        return Listing([], offset, size, None, answer.error)
    items = list(answer.value or [])
    more = offset + size < len(items)
    return Listing(items[offset : offset + size], offset, size, offset + size if more else None)


@router.get("/patients/{patient_id}")
async def patient_page(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    at: Annotated[Positions, Depends()],
) -> Response:
    person = session.person
    assert person is not None
    if not may(person, "patient:read"):
        # A provider sees its referrals in its inbox, an analyst aggregates: no patient pages.
        return error_page(request, 403, "Not available", "Patient pages are not available to your role.")
    size = workspace_of(request).ctx.settings.page_size
    shows = {p: may(person, p) for p in READS}
    pid = str(patient_id)
    path = f"/v1/patients/{pid}"

    def read(permission: str, service: str, route: str) -> Awaitable[Part]:
        return part(shows[permission], lambda: services.get(service, route))

    def listing(permission: str, service: str, route: str, offset: int, **params: Any) -> Awaitable[Listing]:
        if not shows[permission]:
            return _nothing(size)
        return services.page(service, route, offset=offset, limit=size, **params)

    details = await read("patient:read", "intake", path)
    if details.missing:
        # Not this agency's patient (or none): nothing more is asked or shown.
        return error_page(request, 404, "Page not found", "There is no such patient, or not one you may see.")
    wholes, pages = await asyncio.gather(
        asyncio.gather(
            read("consent:read", "intake", f"{path}/consents"),
            read("plan:read", "careplan", f"{path}/care-plan"),
            read("care-team:read", "careplan", f"{path}/care-team"),
            read("service-request:read", "careplan", f"{path}/service-requests"),
            read("record:read", "record", f"{path}/record"),
            read("record:verify", "record", f"{path}/record/verify"),
        ),
        asyncio.gather(
            listing("assessment:read", "intake", f"{path}/assessments", at.assessments),
            listing("plan:read", "careplan", f"{path}/care-plan/versions", at.versions),
            listing("care-team:read", "careplan", f"{path}/care-team/contributions", at.contributions),
            listing("referral:read", "referral", "/v1/referrals", at.referrals, patient_id=pid),
            listing("follow-up:read", "followup", "/v1/follow-ups", at.follow_ups, patient_id=pid),
            listing("task:read", "followup", "/v1/tasks", at.tasks, patient_id=pid, status="active"),
        ),
    )
    consents, plan, team, requests, record, verification = wholes
    assessments, versions, contributions, referrals, follow_ups, tasks = pages
    document = plan.value["document"] if plan.value else {}
    compared = _compared(plan, at)
    own_words = await goal_words(services, path, document, shows["care-team:read"])
    named = names_in(document) | {goal: f"“{said}”" for goal, said in own_words.items()}
    changes, referrals, follow_ups = await asyncio.gather(
        _changes(services, path, compared, named),
        _with_details(services, referrals, "referral", "/v1/referrals", "history"),
        _with_details(services, follow_ups, "followup", "/v1/follow-ups", "outcomes"),
    )
    entries = (record.value or {}).get("entries", [])
    context = {
        "title": "Patient",
        "patient_id": patient_id,
        "shows": shows,
        "may_do": {p: may(person, p) for p in ACTIONS},
        "may_export": may(person, EXPORTS),
        "details": details,
        "consents": sliced(consents, at.consents, size),
        "assessments": assessments,
        "plan": plan,
        "goals": {str(g["id"]): g for g in document.get("goals", [])},
        "own_words": own_words,
        "versions": versions,
        "compared": compared,
        "changes": changes,
        "team": team,
        "members": sliced(team, at.members, size),
        "contributions": contributions,
        "requests": sliced(requests, at.requests, size),
        "referrals": referrals,
        "withdrawable": WITHDRAWABLE,
        "follow_ups": follow_ups,
        "tasks": tasks,
        "education": [e for e in entries if e.get("type") == EDUCATION_PROVIDED],
        "record": record,
        "timeline": sliced(Part(entries, record.error, record.read), at.timeline, TIMELINE_PAGE),
        "verification": verification,
        "choices": form_choices(),
        "new_key": new_form_key,
        "me": person.subject,
        **notice_of(request),
    }
    return render(request, "patient.html", context)


async def _nothing(size: int) -> Listing:
    return Listing([], limit=size)


def _compared(plan: Part, at: Positions) -> tuple[int, int] | None:
    """The versions whose changes the page shows: those asked for, else the latest change."""
    if plan.value is None:
        return None
    if at.diff_from is not None and at.diff_to is not None:
        return at.diff_from, at.diff_to
    version = int(plan.value["version"])
    return (version - 1, version) if version > 1 else None


async def _changes(
    services: Services, path: str, compared: tuple[int, int] | None, named: dict[str, str]
) -> Part:
    if compared is None:
        return Part(None)

    async def fetch() -> list[DiffLine]:
        diff = await services.get(
            "careplan", f"{path}/care-plan/diff", {"from": compared[0], "to": compared[1]}
        )
        return diff_lines(diff.get("changes", {}), named)

    return await part(True, fetch)


async def _with_details(services: Services, listing: Listing, service: str, route: str, key: str) -> Listing:
    """Each item of the page's list with what only its own address answers (history, outcomes)."""

    async def detailed(item: dict[str, Any]) -> dict[str, Any]:
        found = await part(True, lambda: services.get(service, f"{route}/{item['id']}"))
        if found.error is not None:
            return {**item, key: None, "detail_error": found.error.message}
        return {**item, key: found.value.get(key, []), "detail_error": None}

    items = await asyncio.gather(*(detailed(item) for item in listing.items))
    return Listing(list(items), listing.offset, listing.limit, listing.next_offset, listing.error)
