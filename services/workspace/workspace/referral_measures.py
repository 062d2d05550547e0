"""How the agency's referrals went, for a supervisor: referral's ``GET /v1/referrals/summary`` for some
days (by default the last 30, in the workspace's time zone): how many were made, wait for consent, are
open or overdue, were accepted, rejected, delivered (the loop closed), not delivered or withdrawn, and the
median hours to an answer and to the service. Counts only: no patient is named, nothing is audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from workspace.audit_days import BadDays, Days
from workspace.gates import not_available, supervisor_tabs
from workspace.pages import may
from workspace.web import CallServices, SignedInSession, render, workspace_of

router = APIRouter()

READS = ("caseload:read-agency", "referral:read")
DEFAULT_DAYS = 30
CLOSED = ("delivered", "not_delivered", "rejected", "cancelled")


@router.get("/supervisor/referrals")
async def referral_measures(
    request: Request, session: SignedInSession, services: CallServices, days: Annotated[Days, Depends()]
) -> Response:
    person = session.person
    assert person is not None
    if not all(may(person, p) for p in READS):
        return not_available(request, "How referrals went is")
    ctx = workspace_of(request).ctx
    if not days.first_day and not days.last_day:
        today = ctx.today()
        days = Days((today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(), today.isoformat())
    context: dict[str, Any] = {
        "title": "How referrals went",
        "tab": "referrals",
        "tabs": supervisor_tabs(person),
        "days": days,
        "problems": {},
        "summary": None,
    }
    try:
        period = days.params(ctx.zone)
    except BadDays as bad:  # nothing is asked for them: the form says what is wrong
        return render(
            request, "referral_measures.html", {**context, "problems": bad.problems}, status_code=422
        )
    summary: dict[str, Any] = await services.get("referral", "/v1/referrals/summary", period)
    closed = sum(summary[k] for k in CLOSED)
    context |= {
        "summary": summary,
        "said": days.said(),
        "closed": closed,
        "delivered_share": round(100 * summary["delivered"] / closed) if closed else None,
    }
    return render(request, "referral_measures.html", context)
