"""Reading the audit log: every service answers for what it disclosed, to the patient's own agency.

``GET /v1/audit?patient_id=`` lists every entry about the patient (reads and refusals, by anyone; oldest
first, or ``&order=newest``);
``GET /v1/audit/disclosures?patient_id=`` is the accounting of disclosures: what people outside the
patient's agency were shown. Both need ``audit:read`` and answer 404 for another agency's patient.
``GET /v1/audit/activity?subject=`` lists what one person of the caller's agency was shown here: every
read, refusal and search, a search that found nobody too (its entry names no patient). A
service with a FHIR router serves the first as ``GET /fhir/R4/AuditEvent?patient=`` too
(``add_audit_events``; ``_sort=-date`` for the newest first).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from careloop_shared.body import Moment
from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.errors import Invalid, NotFound
from careloop_shared.fhir import (
    BundleDoc,
    FhirResponse,
    PatientQuery,
    coding,
    documented,
    instant,
    interaction,
    reference,
    searched_patient,
    searchset_page,
)
from careloop_shared.fhir import Paging as FhirPaging
from careloop_shared.fhir_dates import DOCUMENTATION as DATE_DOCUMENTATION
from careloop_shared.fhir_dates import Period, searched_period
from careloop_shared.http import CurrentPrincipal, Page, Paging, Runtime, get_runtime, needs, read_store

router = APIRouter(prefix="/v1/audit", tags=["audit"])

_ANYONE = "AND $2::text IS NOT NULL"  # every entry about the patient ($2, the caller's agency, unused)
_COLUMNS = (
    "id, recorded_at, action, outcome, outcome_detail, subject, role, agency_id, network_address, source,"
    " patient_id, patient_agency_id, what, entity_id, route"
)


class PatientOwner(Protocol):
    """What a service's store must answer for its audit log to be read: whose patient this is."""

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None: ...


class AuditEntryOut(BaseModel):
    """A FHIR AuditEvent in short: agent (subject, role, agency, address), source, entity, outcome."""

    id: uuid.UUID
    recorded_at: datetime
    action: str
    outcome: str
    outcome_detail: str | None
    subject: str
    role: str
    agency_id: str
    network_address: str | None
    source: str
    patient_id: uuid.UUID | None
    patient_agency_id: str | None
    what: str
    entity_id: str | None
    route: str


Store = Annotated[PatientOwner, Depends(read_store)]


Order = Annotated[
    Literal["oldest", "newest"],
    Query(description="oldest first (the default), or newest first: the latest reads on the first page"),
]


async def _period(
    since: Annotated[Moment | None, Query(description="Keep entries recorded at or after this time")] = None,
    until: Annotated[Moment | None, Query(description="Keep entries recorded before this time")] = None,
) -> Period:
    """When: the entries recorded from ``since`` (included) until ``until`` (not included)."""
    return Period(since, until)


When = Annotated[Period, Depends(_period)]
OutcomeQuery = Annotated[
    Literal["allowed", "denied"] | None,
    Query(description="allowed: only what was shown; denied: only the refused attempts"),
]


async def _rows(
    request: Request,
    store: PatientOwner,
    who: Any,
    patient_id: uuid.UUID,
    page: Any,
    where: str,
    order: str,
    period: Period,
    outcome: str | None = None,
) -> list[Any]:
    """The patient's entries as kept (``page.fetch_limit`` of them from ``page.offset``) within the
    period (and of that outcome); NotFound for a patient not of the caller's agency."""
    if await store.agency_of_patient(patient_id) != who.agency_id:
        raise NotFound("no such patient in your agency")
    within, bounds = _within(period, 5, outcome)
    # The patient is the caller's: every attempt on them counts, a refused one by another agency's
    # caller too (its row names that agency only), so this read is deliberately wider than the
    # row-level policy (which shows rows naming the caller's agency).
    with as_agency(ALL_AGENCIES):
        rows: list[Any] = await get_runtime(request).pool.fetch(
            f"SELECT {_COLUMNS} FROM audit_log WHERE patient_id = $1 {where}{within}"
            f" ORDER BY position {'DESC' if order == 'newest' else 'ASC'} LIMIT $3 OFFSET $4",
            patient_id,
            who.agency_id,
            page.fetch_limit,
            page.offset,
            *bounds,
        )
    return rows


def _within(
    period: Period, first: int, outcome: str | None = None, of: str = ""
) -> tuple[str, list[datetime]]:
    """The SQL that keeps the entries recorded within the period (and of that outcome, one of those the log
    knows), its bounds numbered from ``first`` (the columns of the table named ``of``), and their values:
    only the conditions given, so that each statement is planned for what it asks."""
    given = [(op, t) for op, t in ((">=", period.since), ("<", period.until)) if t is not None]
    sql = "".join(f" AND {of}recorded_at {op} ${first + i}" for i, (op, _) in enumerate(given))
    if outcome is not None:  # written in, so that the index of refusals alone (kernel migration 012) is used
        if outcome not in _KEPT_AS.values():
            raise ValueError(f"no outcome {outcome!r} is kept")
        sql += f" AND {of}outcome = '{outcome}'"
    return sql, [t for _, t in given]


def _page(rows: list[Any], page: Any) -> Page[AuditEntryOut]:
    return Page.of([AuditEntryOut(**dict(r)) for r in rows], page)


@router.get("", response_model=Page[AuditEntryOut], openapi_extra=needs("audit:read"))
async def audit_of_patient(
    patient_id: uuid.UUID,
    request: Request,
    store: Store,
    who: CurrentPrincipal,
    page: Paging,
    when: When,
    order: Order = "oldest",
    outcome: OutcomeQuery = None,
) -> Page[AuditEntryOut]:
    """Every read of the patient's data here, and every refused attempt, oldest first (or newest); those
    of a period, with ``since`` and ``until``; only those shown, or only the refused, with ``outcome``."""
    rows = await _rows(request, store, who, patient_id, page, _ANYONE, order, when, outcome)
    return _page(rows, page)


@router.get("/disclosures", response_model=Page[AuditEntryOut], openapi_extra=needs("audit:read"))
async def disclosures_of_patient(
    patient_id: uuid.UUID,
    request: Request,
    store: Store,
    who: CurrentPrincipal,
    page: Paging,
    when: When,
    order: Order = "oldest",
) -> Page[AuditEntryOut]:
    """The accounting of disclosures: what people outside the patient's agency were shown here, oldest
    first (or newest); those of a period, with ``since`` and ``until``."""
    where = "AND outcome = 'allowed' AND agency_id <> $2"
    return _page(await _rows(request, store, who, patient_id, page, where, order, when), page)


Subject = Annotated[
    str,
    Query(
        min_length=1,
        max_length=255,
        description="the person's id at the identity provider (their token's subject), as entries name it",
    ),
]


@router.get("/activity", response_model=Page[AuditEntryOut], openapi_extra=needs("audit:read"))
async def activity_of_person(
    subject: Subject,
    runtime: Runtime,
    store: Store,
    who: CurrentPrincipal,
    page: Paging,
    when: When,
    order: Order = "oldest",
    outcome: OutcomeQuery = None,
) -> Page[AuditEntryOut]:
    """What one person of your agency was shown here: every read of a patient's data, every refused attempt
    and every search, one that found nobody too (its entry names no patient), oldest first (or newest);
    those of a period, with ``since`` and ``until``; only those shown, or only the refused, with
    ``outcome``.
    Their changes are in the case record, not here. A person of another agency with the same id is
    another person: their entries are not listed. An entry about a patient who is not the agency's (one
    of another agency a provider was shown, or an id tried and refused) names neither the patient nor
    the record: the agency never sees another agency's patients."""
    rows = await _activity(runtime.pool, store, who.agency_id, subject, page, order, when, outcome)
    return _page(rows, page)


async def _activity(
    pool: Any,
    store: PatientOwner,
    agency_id: str,
    subject: str,
    page: Any,
    order: str,
    period: Period,
    outcome: str | None = None,
) -> list[Any]:
    """One person's entries within the period (and of that outcome; ``page.fetch_limit`` of them from
    ``page.offset``), in the order recorded, naming only the agency's own patients."""
    within, bounds = _within(period, 5, outcome)
    way = "DESC" if order == "newest" else "ASC"
    rows: list[Any] = await pool.fetch(
        f"SELECT {_COLUMNS} FROM audit_log WHERE agency_id = $1 AND subject = $2{within}"
        f" ORDER BY recorded_at {way}, position {way} LIMIT $3 OFFSET $4",
        agency_id,
        subject,
        page.fetch_limit,
        page.offset,
        *bounds,
    )
    ours = await _agencys_patients(store, rows, agency_id)
    return [r if r["patient_id"] in ours else _unnamed(r) for r in rows]


class PersonSeenOut(BaseModel):
    """One person of the agency the log has entries of: their id, and their latest entry's time and role."""

    subject: str
    role: str
    last_recorded_at: datetime


# The agency's ($1) people, one index probe each (a skip over the index on agency, person and time rather
# than a read of every entry), each with their latest entry (of the period and outcome: ``_within`` from
# $4), latest first.
_PEOPLE = (
    "WITH RECURSIVE people AS ("
    " (SELECT subject FROM audit_log WHERE agency_id = $1 ORDER BY subject LIMIT 1)"
    " UNION ALL SELECT (SELECT a.subject FROM audit_log a WHERE a.agency_id = $1 AND a.subject > p.subject"
    " ORDER BY a.subject LIMIT 1) FROM people p WHERE p.subject IS NOT NULL)"
    " SELECT p.subject, last.role, last.recorded_at AS last_recorded_at FROM people p"
    " CROSS JOIN LATERAL (SELECT role, recorded_at FROM audit_log a WHERE a.agency_id = $1"
    " AND a.subject = p.subject{within} ORDER BY recorded_at DESC, position DESC LIMIT 1) last"
    " ORDER BY last.recorded_at DESC, p.subject LIMIT $2 OFFSET $3"
)


@router.get("/people", response_model=Page[PersonSeenOut], openapi_extra=needs("audit:read"))
async def people_seen(
    runtime: Runtime, who: CurrentPrincipal, page: Paging, when: When, outcome: OutcomeQuery = None
) -> Page[PersonSeenOut]:
    """The people of your agency this service's log has entries of (reads, refused attempts, searches),
    each with when they were last seen and as which role, the latest first; those seen in a period, with
    ``since`` and ``until`` (their latest entry of it); those refused, with ``outcome=denied`` (their latest
    refusal). What each was shown: ``/v1/audit/activity``."""
    within, bounds = _within(when, 4, outcome, of="a.")
    rows = await runtime.pool.fetch(
        _PEOPLE.format(within=within),
        who.agency_id,
        page.fetch_limit,
        page.offset,
        *bounds,
    )
    return Page.of([PersonSeenOut(**dict(r)) for r in rows], page)


async def _agencys_patients(store: PatientOwner, rows: list[Any], agency_id: str) -> set[uuid.UUID]:
    """The patients the entries name who are the agency's: as an entry that showed them says, else as the
    service knows them (a refused attempt does not say whose the patient was)."""
    ours = {r["patient_id"] for r in rows if r["patient_agency_id"] == agency_id}
    unsure = list({r["patient_id"] for r in rows if r["patient_id"] is not None} - ours)
    agencies = await asyncio.gather(*(store.agency_of_patient(p) for p in unsure))
    return ours | {p for p, agency in zip(unsure, agencies, strict=True) if agency == agency_id}


def _unnamed(row: Any) -> dict[str, Any]:
    return {**dict(row), "patient_id": None, "entity_id": None}


# -- the same entries as FHIR AuditEvents ------------------------------------------------------------

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
STAFF = "urn:careloop:staff"  # a staff member's id at the identity provider, as the services say it
_OUTCOMES = {"allowed": "0", "denied": "4"}  # success; minor failure (the request was refused)


def audit_event(entry: Any) -> dict[str, Any]:
    """One audit log entry as a FHIR R4 ``AuditEvent``: who (the person's id, assigned by their agency,
    also as ``altId``, their role, from which address), what (the patient, the kind of data, the record,
    the route; a search that found nobody names no patient), when, which service observed it, and
    whether it was shown or refused (``outcomeDesc``: why)."""
    agent: dict[str, Any] = {
        "who": {
            "identifier": {
                "system": STAFF,
                "value": entry["subject"],
                "assigner": {"display": entry["agency_id"]},
            }
        },
        "altId": entry["subject"],  # the user's id at the authentication system
        "role": [{"text": entry["role"]}],
        "requestor": True,
    }
    if entry["network_address"]:
        agent["network"] = {"address": entry["network_address"], "type": "2"}  # an IP address
    details = [("data", entry["what"]), ("route", entry["route"]), ("record", entry["entity_id"])]
    entity: dict[str, Any] = {
        "detail": [{"type": kind, "valueString": str(value)} for kind, value in details if value],
    }
    if entry["patient_id"] is not None:
        entity |= {
            "what": reference("Patient", entry["patient_id"]),
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "1", "Patient"),
        }
    return {
        "resourceType": "AuditEvent",
        "id": str(entry["id"]),
        "type": coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation"),
        "action": entry["action"],
        "recorded": instant(entry["recorded_at"]),
        "outcome": _OUTCOMES.get(entry["outcome"], "4"),
        **({"outcomeDesc": entry["outcome_detail"]} if entry["outcome_detail"] else {}),
        "agent": [agent],
        "source": {
            "observer": {"display": f"careloop {entry['source']}"},
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        },
        "entity": [entity],
    }


Sort = Annotated[
    Literal["date", "-date"],
    Query(alias="_sort", description="date: oldest first (the default); -date: newest"),
]


AltId = Annotated[
    str | None,
    Query(min_length=1, max_length=255, description="one person of your agency, by their id as signed in"),
]


Dates = Annotated[
    list[Annotated[str, Query(max_length=40)]] | None,
    Query(max_length=4, description=DATE_DOCUMENTATION),
]


# AuditEvent.outcome as the log keeps it: 0 shown, 4 refused; a serious or major failure (8, 12) is never
# recorded, so a search for one finds nothing.
_KEPT_AS = {code: kept for kept, code in _OUTCOMES.items()} | {"8": "failed", "12": "failed"}
OUTCOME_DOCUMENTATION = "0: what was shown; 4: the refused attempts (8 and 12 are never recorded)"
FhirOutcome = Annotated[Literal["0", "4", "8", "12"] | None, Query(description=OUTCOME_DOCUMENTATION)]


def add_audit_events(router: APIRouter) -> None:
    """``GET /fhir/R4/AuditEvent?patient=``: the service's audit log of one patient of the caller's agency,
    as AuditEvents (``audit:read``; another agency's patient: nothing found); ``?altid=``: what one person
    of the agency was shown, as ``/v1/audit/activity`` lists it. Declared on the service's FHIR router."""

    @router.get(
        "/AuditEvent",
        response_model=BundleDoc,
        openapi_extra={
            **needs("audit:read"),
            **documented(
                interaction(
                    "AuditEvent",
                    "search-type",
                    patient="reference",
                    altid="token",
                    date="date",
                    outcome="token",
                ),
                {"date": DATE_DOCUMENTATION, "outcome": OUTCOME_DOCUMENTATION},
            ),
        },
        summary="Every read of one patient's data here, or every read by one person, and every refused"
        " attempt, as AuditEvents",
    )
    async def search_audit_events(
        request: Request,
        store: Store,
        who: CurrentPrincipal,
        page: FhirPaging,
        patient: PatientQuery = None,
        altid: AltId = None,
        date: Dates = None,
        outcome: FhirOutcome = None,
        sort: Sort = "date",
    ) -> FhirResponse:
        order, period = "newest" if sort == "-date" else "oldest", searched_period(date)
        kept = None if outcome is None else _KEPT_AS[outcome]
        if altid is not None and patient is None:
            pool = get_runtime(request).pool
            rows = await _activity(pool, store, who.agency_id, altid, page, order, period, kept)
            return searchset_page(request, page, len(rows), [audit_event(r) for r in rows[: page.count]])
        if altid is not None:
            raise Invalid.at(
                ["query", "altid"], "conflict", "search by one patient or by one person, not both"
            )
        patient_id = searched_patient(patient)
        try:
            rows = await _rows(request, store, who, patient_id, page, _ANYONE, order, period, kept)
        except NotFound:
            rows = []  # another agency's patient does not exist: nothing is found
        return searchset_page(request, page, len(rows), [audit_event(r) for r in rows[: page.count]])
