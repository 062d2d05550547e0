"""referral's unit-test fixtures: an in-memory store behaving like ``ReferralStore``, a context, a clock."""

from __future__ import annotations

import contextlib
import statistics
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from careloop_shared.rules import load_rules
from careloop_shared.testing.fakes import FakeClock
from careloop_shared.testing.keys import FakePatientKeys
from referral.config import QualityCache, ReferralContext
from referral.directory.store import service_of, service_out
from referral.domain import matching
from referral.domain.consent import Consent
from referral.domain.deadlines import DEADLINES_FILE, Deadlines
from referral.domain.directory import DIRECTORY_FILE, SeedDirectory
from referral.domain.matching import RANKING_FILE, Weights
from referral.domain.quality import History

_ORGANIZATION_COLUMNS = (
    *("id", "agency_id", "name", "description", "url", "email", "phone", "updated_at"),
    *("changed_by", "changed_by_role"),
)
_LOCATION_COLUMNS = ("id", "name", "location_type", "postal_code")
_REFERRAL_COLUMNS = (
    "id, service_request_id, patient_id, agency_id, plan_id, intervention_id, need, program_category,"
    " program_id, receiving_agency_id, status, status_reason, priority, language, postal_area, consent_id,"
    " outcome, replaces_referral_id, made_at, response_due_at, outcome_due_at, accepted_at, created_at,"
    " updated_at, choice, made_by, made_by_role"
).split(", ")
_OPEN = ("requested", "accepted", "in-progress", "on-hold")
_PROSPECT_DETAILS = (
    *("name", "agency_id", "description", "url", "email", "phone", "program_categories", "needs"),
    *("languages", "interpretation_services", "postal_prefixes", "owner_id", "notes", "updated_at"),
    *("changed_by", "changed_by_role"),
)


def _seed_yields(new: dict[str, Any], existing: dict[str, Any] | None) -> bool:
    """The upserts' ``WHERE EXCLUDED.source = 'api' OR <row>.source = 'seed'``."""
    return existing is None or new["source"] == "api" or existing["source"] == "seed"


def _area_served(area: str, prefixes: list[str]) -> bool:
    return not prefixes or any(area.startswith(p.upper()) or p.upper().startswith(area) for p in prefixes)


class FakeDirectoryStore:
    """``DirectoryStore`` over dicts; program histories come from the loop's referrals."""

    def __init__(self, referrals: dict[uuid.UUID, dict[str, Any]]) -> None:
        self.organizations: dict[str, dict[str, Any]] = {}
        self.locations: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.shared: dict[tuple[str, str], dict[str, Any]] = {}  # HSDS rows of no entry
        self._referrals = referrals

    def _joined(self, service: dict[str, Any]) -> dict[str, Any]:
        row = {k: v for k, v in service.items() if k != "source"}
        return {**row, "receiving_agency_id": self.organizations[service["organization_id"]]["agency_id"]}

    async def upsert_organization(self, row: dict[str, Any], locations: list[dict[str, Any]]) -> bool | None:
        existing = self.organizations.get(row["id"])
        if not _seed_yields(row, existing):
            return None
        self.organizations[row["id"]] = {"hsds": (existing or {}).get("hsds"), **row}  # kept unless given
        keep = {loc["id"] for loc in locations}
        for loc_id, loc in list(self.locations.items()):
            if loc["organization_id"] == row["id"] and loc_id not in keep:
                del self.locations[loc_id]
        for loc in locations:
            held = self.locations.get(loc["id"])
            if held is None or held["organization_id"] == loc["organization_id"]:
                self.locations[loc["id"]] = {"hsds": (held or {}).get("hsds"), **loc}
        return existing is None

    async def upsert_service(self, row: dict[str, Any]) -> bool | None:
        existing = self.services.get(row["id"])
        if not _seed_yields(row, existing):
            return None
        saved = {"hsds": (existing or {}).get("hsds"), **row}
        if existing is not None and (existing["capacity_status"], existing["capacity_notes"]) == (
            row["capacity_status"],
            row["capacity_notes"],
        ):
            for kept in ("capacity_updated_at", "capacity_changed_by", "capacity_changed_by_role"):
                saved[kept] = existing[kept]
        self.services[row["id"]] = saved
        return existing is None

    async def hsds_entries(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        located = sorted(self.locations.values(), key=lambda x: x["id"])
        orgs = [
            {
                **{k: o.get(k) for k in (*_ORGANIZATION_COLUMNS, "hsds")},
                "locations": [loc for loc in located if loc["organization_id"] == o["id"]],
            }
            for _, o in sorted(self.organizations.items())
        ]
        return orgs, [{**self._joined(s), "hsds": s.get("hsds")} for _, s in sorted(self.services.items())]

    async def hsds_shared(self) -> list[tuple[str, dict[str, Any]]]:
        return [(t, row) for (t, _), row in sorted(self.shared.items())]

    async def save_hsds_shared(self, rows: Any) -> None:
        self.shared.update({(t, str(r["id"])): r for t, r in rows})

    async def get_organization(self, org_id: str) -> dict[str, Any] | None:
        org = self.organizations.get(org_id)
        if org is None:
            return None
        locations = sorted(
            (loc for loc in self.locations.values() if loc["organization_id"] == org_id),
            key=lambda x: x["id"],
        )
        return {
            **{k: org.get(k) for k in _ORGANIZATION_COLUMNS},
            "locations": [{k: loc.get(k) for k in _LOCATION_COLUMNS} for loc in locations],
        }

    async def list_organizations(self, limit: int, offset: int) -> list[dict[str, Any]]:
        ids = sorted(self.organizations)[offset : offset + limit]
        return [org for i in ids if (org := await self.get_organization(i)) is not None]

    async def get_service(self, service_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        service = self.services.get(service_id)
        return None if service is None else service_out(self._joined(service))

    async def search_services(
        self,
        *,
        need: str | None,
        category: str | None,
        language: str | None,
        postal_area: str | None,
        capacity: str | None,
        organization_id: str | None,
        receiving_agency_id: str | None = None,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        joined = [self._joined(s) for s in self.services.values()]
        found = [
            s
            for s in joined
            if (need is None or need in s["needs"] or s["program_category"] == need)
            and (category is None or s["program_category"] == category)
            and (
                language is None
                or s["interpretation_services"]
                or any(lang.split("-")[0].lower() == language for lang in s["languages"])
            )
            and (postal_area is None or _area_served(postal_area, s["eligibility"]["postal_prefixes"]))
            and (capacity is None or s["capacity_status"] == capacity)
            and (organization_id is None or s["organization_id"] == organization_id)
            and (receiving_agency_id is None or s["receiving_agency_id"] == receiving_agency_id)
        ]
        found.sort(key=lambda s: s["id"])
        return [service_out(s) for s in found[offset : offset + limit]]

    async def update_capacity(
        self, service_id: str, status: str, notes: str | None, at: datetime, *, by: str, by_role: str
    ) -> None:
        self.services[service_id].update(
            capacity_status=status,
            capacity_notes=notes,
            capacity_updated_at=at,
            capacity_changed_by=by,
            capacity_changed_by_role=by_role,
            changed_by=by,
            changed_by_role=by_role,
            updated_at=at,
            source="api",
        )

    async def program(self, service_id: str) -> matching.Service | None:
        service = self.services.get(service_id)
        return None if service is None else service_of(self._joined(service))

    async def candidate_services(self, category: str | None, need: str) -> list[matching.Service]:
        return [
            service_of(self._joined(s))
            for _, s in sorted(self.services.items())
            if s["status"] == "active" and (s["program_category"] == category or need in s["needs"])
        ]

    async def histories(self, service_ids: Any) -> dict[str, History]:
        out: dict[str, History] = {}
        for sid in service_ids:
            sent = [
                r
                for r in self._referrals.values()
                if r["program_id"] == sid and r["made_at"] is not None and r["status"] != "entered-in-error"
            ]
            if not sent:
                continue
            accepted = [r for r in sent if r["accepted_at"] is not None]
            closed = [r for r in accepted if r["status"] in ("completed", "failed", "cancelled")]
            hours = [(r["accepted_at"] - r["made_at"]).total_seconds() / 3600 for r in accepted]
            out[sid] = History(
                sent=len(sent),
                accepted=len(accepted),
                rejected=sum(r["status"] == "rejected" for r in sent),
                closed=len(closed),
                completed=sum(r["status"] == "completed" for r in sent),
                closed_with_outcome=sum(r["outcome"] is not None for r in closed),
                median_hours_to_accept=round(statistics.median(hours), 2) if hours else None,
            )
        return out


class FakeLoopStore:
    """``LoopStore`` over dicts: the same answers, including the one-referral-per-intervention and
    one-re-route-per-referral constraints, who may see a referral, and flags claimed once."""

    def __init__(self) -> None:
        self.patients: dict[uuid.UUID, dict[str, Any]] = {}
        self.consents: dict[uuid.UUID, dict[str, Any]] = {}
        self.referrals: dict[uuid.UUID, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []  # in the order written (the table's position)
        self.plans: dict[uuid.UUID, dict[str, Any]] = {}  # patient -> current plan
        self.interventions: dict[uuid.UUID, dict[str, Any]] = {}  # of the current plans

    @staticmethod
    def _out(r: dict[str, Any]) -> dict[str, Any]:
        return {
            **{k: r[k] for k in _REFERRAL_COLUMNS},
            "referring_agency_id": r["agency_id"],
            "response_overdue": r["response_overdue_at"] is not None,
            "outcome_overdue": r["outcome_overdue_at"] is not None,
            "appointment_status": r.get("appointment_status"),  # columns since migration 013
            "appointment_starts_at": r.get("appointment_starts_at"),
            "attendance_overdue": r.get("attendance_overdue_at") is not None,  # since migration 014
        }

    def _ordered(self, keep: Any) -> list[dict[str, Any]]:
        rows = sorted(
            (r for r in self.referrals.values() if keep(r)), key=lambda r: (r["created_at"], r["id"])
        )
        return [self._out(r) for r in rows]

    async def upsert_patient(self, row: dict[str, Any]) -> None:
        existing = self.patients.get(row["patient_id"])
        if existing is None:
            self.patients[row["patient_id"]] = dict(row)
        elif existing["as_of"] <= row["as_of"]:
            existing.update({k: v for k, v in row.items() if k not in ("patient_id", "agency_id")})

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        if patient_id in self.patients:
            return str(self.patients[patient_id]["agency_id"])
        return next((r["agency_id"] for r in self.referrals.values() if r["patient_id"] == patient_id), None)

    async def get_patient(self, patient_id: uuid.UUID) -> dict[str, Any] | None:
        row = self.patients.get(patient_id)
        return None if row is None else dict(row)

    async def _record_consent(self, row: dict[str, Any]) -> None:
        existing = self.consents.get(row["id"])
        if existing is None:
            self.consents[row["id"]] = {**row, "revoked_at": None}
        else:
            existing.update({k: row[k] for k in ("purpose", "agencies", "program_categories")})
            existing.update(period_start=row["period_start"], period_end=row["period_end"])

    async def record_consents(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            await self._record_consent(row)

    async def revoke_consent(
        self, consent_id: uuid.UUID, patient_id: uuid.UUID, agency_id: str, at: datetime
    ) -> None:
        existing = self.consents.setdefault(
            consent_id,
            {
                "id": consent_id,
                "patient_id": patient_id,
                "agency_id": agency_id,
                "purpose": "unknown",
                "agencies": [],
                "program_categories": [],
                "period_start": at,
                "period_end": None,
                "revoked_at": None,
            },
        )
        existing["revoked_at"] = existing["revoked_at"] or at

    async def consents_of(self, patient_id: uuid.UUID) -> list[Consent]:
        return [Consent.from_row(c) for c in self.consents.values() if c["patient_id"] == patient_id]

    async def remember_plan(self, plan: dict[str, Any], interventions: list[dict[str, Any]]) -> bool | None:
        known = self.plans.get(plan["patient_id"])
        if known is not None and known["version"] >= plan["version"]:
            return False
        ids = [i["intervention_id"] for i in interventions]
        held = {k for k, i in self.interventions.items() if i["patient_id"] != plan["patient_id"]}
        if len(set(ids)) < len(ids) or held.intersection(ids):
            return None
        self.plans[plan["patient_id"]] = dict(plan)
        for i_id, i in list(self.interventions.items()):
            if i["patient_id"] == plan["patient_id"]:
                del self.interventions[i_id]
        self.interventions.update({i["intervention_id"]: dict(i) for i in interventions})
        return True

    async def plan_intervention(
        self, patient_id: uuid.UUID, intervention_id: uuid.UUID
    ) -> dict[str, Any] | None:
        plan = self.plans.get(patient_id)
        if plan is None:
            return None
        found = self.interventions.get(intervention_id)
        found = found if found is not None and found["patient_id"] == patient_id else {}
        columns = ("intervention_id", "need", "program_category", "priority", "language", "status")
        return {
            **{k: plan[k] for k in ("agency_id", "plan_id", "version")},
            "plan_status": plan["status"],
            **{k: found.get(k) for k in columns},
        }

    async def latest_referral(self, intervention_id: uuid.UUID) -> dict[str, Any] | None:
        replaced = {r["replaces_referral_id"] for r in self.referrals.values()}
        return next(
            (
                self._out(r)
                for r in self.referrals.values()
                if r["intervention_id"] == intervention_id and r["id"] not in replaced
            ),
            None,
        )

    async def insert_referral(self, row: dict[str, Any]) -> bool:
        for r in self.referrals.values():
            if r["id"] == row["id"]:
                return False
            if row["replaces_referral_id"] is None and (r["intervention_id"], r["replaces_referral_id"]) == (
                row["intervention_id"],
                None,
            ):
                return False
            if (
                row["replaces_referral_id"] is not None
                and r["replaces_referral_id"] == row["replaces_referral_id"]
            ):
                return False
        defaults = dict.fromkeys(
            ("outcome", "accepted_at", "closed_at", "response_overdue_at", "outcome_overdue_at")
        )
        self.referrals[row["id"]] = {**defaults, **row}
        return True

    async def interventions_with_referral(self, intervention_ids: Any) -> set[uuid.UUID]:
        wanted = set(intervention_ids)
        return {
            r["intervention_id"]
            for r in self.referrals.values()
            if r["intervention_id"] in wanted and r["replaces_referral_id"] is None
        }

    async def services_tried(self, intervention_id: uuid.UUID) -> list[str]:
        return [
            r["program_id"]
            for r in self.referrals.values()
            if r["intervention_id"] == intervention_id and r["status"] != "draft"
        ]

    async def get_referral(self, referral_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
        row = self.referrals.get(referral_id)
        return None if row is None else self._out(row)

    @staticmethod
    def _visible_to(agency_id: str, r: dict[str, Any], sent_to_only: bool = False) -> bool:
        sent_to = r["receiving_agency_id"] == agency_id and r["status"] != "draft"
        return sent_to or (not sent_to_only and r["agency_id"] == agency_id)

    async def visible_referral(
        self, agency_id: str, referral_id: uuid.UUID, *, sent_to_only: bool = False
    ) -> dict[str, Any] | None:
        row = self.referrals.get(referral_id)
        return self._out(row) if row is not None and self._visible_to(agency_id, row, sent_to_only) else None

    async def list_referrals(
        self,
        agency_id: str,
        *,
        patient_id: uuid.UUID | None,
        receiving_agency: str | None,
        status: Sequence[str] | None,
        limit: int,
        offset: int,
        sent_to_only: bool = False,
        attendance_overdue: bool | None = None,
    ) -> list[dict[str, Any]]:
        rows = self._ordered(
            lambda r: (
                self._visible_to(agency_id, r, sent_to_only)
                and (patient_id is None or r["patient_id"] == patient_id)
                and (receiving_agency is None or r["receiving_agency_id"] == receiving_agency)
                and (status is None or r["status"] in status)
                and (
                    attendance_overdue is None
                    or (r.get("attendance_overdue_at") is not None) == attendance_overdue
                )
            )
        )
        return rows[offset : offset + limit]

    async def summary(
        self,
        agency_id: str,
        since: datetime | None,
        until: datetime | None,
        now: datetime,
        *,
        received: bool = False,
    ) -> dict[str, Any]:
        rows = [
            r
            for r in self.referrals.values()
            if (
                (r["receiving_agency_id"] == agency_id and r["status"] != "draft")
                if received
                else r["agency_id"] == agency_id
            )
            and r["status"] != "entered-in-error"
            and (since is None or r["created_at"] >= since)
            and (until is None or r["created_at"] < until)
        ]

        def counted(keep: Any) -> int:
            return sum(1 for r in rows if keep(r))

        def delivered(r: dict[str, Any]) -> bool:
            return (r.get("outcome") or {}).get("service_delivered") is not False

        def median_hours(ends: list[Any]) -> float | None:
            return (
                statistics.median([(end - start).total_seconds() / 3600 for start, end in ends])
                if ends
                else None
            )

        sent = {"requested", "accepted", "in-progress", "on-hold"}
        return {
            "made": len(rows),
            "needs_referred": len({r["intervention_id"] for r in rows}),
            "needs_served": len(
                {r["intervention_id"] for r in rows if r["status"] == "completed" and delivered(r)}
            ),
            "waiting_for_consent": counted(lambda r: r["status"] == "draft"),
            "open": counted(lambda r: r["status"] in sent),
            "answer_overdue": counted(lambda r: r["status"] == "requested" and r["response_due_at"] < now),
            "outcome_overdue": counted(
                lambda r: (
                    r["status"] in sent - {"requested"}
                    and r.get("outcome_due_at")
                    and r["outcome_due_at"] < now
                )
            ),
            "accepted": counted(lambda r: r.get("accepted_at") is not None),
            "rejected": counted(lambda r: r["status"] == "rejected"),
            "delivered": counted(lambda r: r["status"] == "completed" and delivered(r)),
            "not_delivered": counted(
                lambda r: r["status"] == "failed" or (r["status"] == "completed" and not delivered(r))
            ),
            "cancelled": counted(lambda r: r["status"] == "cancelled"),
            "hours_to_accept_median": median_hours(
                [(r["made_at"], r["accepted_at"]) for r in rows if r.get("accepted_at") and r.get("made_at")]
            ),
            "hours_to_deliver_median": median_hours(
                [
                    (r["made_at"], r["closed_at"])
                    for r in rows
                    if r["status"] == "completed" and delivered(r) and r.get("made_at") and r.get("closed_at")
                ]
            ),
        }

    async def history_of(self, referral_id: uuid.UUID) -> list[dict[str, Any]]:
        columns = (
            *("from_status", "to_status", "by_agency_id", "by_party", "by_subject", "by_role"),
            *("reason", "outcome", "note", "note_sealed"),
        )
        return [
            {**{k: h.get(k) for k in columns}, "changed_at": h["changed_at"]}
            for h in self.history
            if h["referral_id"] == referral_id
        ]

    async def add_history(self, row: dict[str, Any]) -> None:
        self.history.append(dict(row))

    async def set_status(
        self,
        referral_id: uuid.UUID,
        *,
        status: str,
        reason: str | None,
        outcome: dict[str, Any] | None,
        at: datetime,
        closed: bool,
    ) -> None:
        r = self.referrals[referral_id]
        r.update(status=status, status_reason=reason, updated_at=at)
        r["outcome"] = outcome if outcome is not None else r["outcome"]
        if status == "accepted" and r["accepted_at"] is None:
            r["accepted_at"] = at
        if closed:
            r["closed_at"] = at

    async def set_appointment(self, referral_id: uuid.UUID, columns: dict[str, Any], at: datetime) -> None:
        self.referrals[referral_id].update(columns, updated_at=at)

    async def send_draft(self, referral_id: uuid.UUID, sent: dict[str, Any]) -> None:
        self.referrals[referral_id].update(
            status="requested", status_reason=None, **sent, updated_at=sent["made_at"]
        )

    async def set_consent(self, referral_id: uuid.UUID, consent_id: uuid.UUID | None) -> None:
        self.referrals[referral_id]["consent_id"] = consent_id

    async def drafts_of(self, patient_id: uuid.UUID) -> list[dict[str, Any]]:
        return self._ordered(lambda r: r["patient_id"] == patient_id and r["status"] == "draft")

    async def drafts_of_patients(
        self, patient_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[dict[str, Any]]]:
        return {p: drafts for p in set(patient_ids) if (drafts := await self.drafts_of(p))}

    async def requested_under(self, consent_id: uuid.UUID) -> list[dict[str, Any]]:
        return self._ordered(lambda r: r["consent_id"] == consent_id and r["status"] == "requested")

    def _claim(self, flag: str, due: str, statuses: tuple[str, ...], now: datetime, limit: int) -> list[Any]:
        overdue = sorted(
            (
                r
                for r in self.referrals.values()
                if r["status"] in statuses and r[flag] is None and r[due] is not None and r[due] <= now
            ),
            key=lambda r: r[due],
        )[:limit]
        for r in overdue:
            r[flag] = now
        keys = ("id", "patient_id", "agency_id", "receiving_agency_id")
        return [{**{k: r[k] for k in keys}, "due_at": r[due]} for r in overdue]

    async def claim_response_overdue(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        return self._claim("response_overdue_at", "response_due_at", ("requested",), now, limit)

    async def claim_outcome_overdue(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        return self._claim("outcome_overdue_at", "outcome_due_at", _OPEN, now, limit)

    async def claim_attendance_overdue(
        self, now: datetime, limit: int, grace: timedelta, statuses: list[str]
    ) -> list[dict[str, Any]]:
        booked = sorted(
            (
                r
                for r in self.referrals.values()
                if r["status"] in statuses
                and r.get("appointment_status") == "booked"
                and r.get("attendance_overdue_at") is None
                and r["appointment_starts_at"] <= now - grace
            ),
            key=lambda r: r["appointment_starts_at"],
        )[:limit]
        for r in booked:
            r["attendance_overdue_at"] = now
        keys = ("id", "patient_id", "agency_id", "receiving_agency_id")
        return [{**{k: r[k] for k in keys}, "due_at": r["appointment_starts_at"] + grace} for r in booked]


class FakeGapStore:
    """``GapStore`` over a dict; older gaps' routing details from the loop's plans and patients."""

    def __init__(self, loop: FakeLoopStore) -> None:
        self.rows: dict[uuid.UUID, dict[str, Any]] = {}  # by intervention
        self._loop = loop

    async def record_once(self, row: dict[str, Any]) -> bool:
        gap = self.rows.get(row["intervention_id"])
        if gap is None:
            self.rows[row["intervention_id"]] = {**row, "resolved_at": None}
            return True
        if gap["resolved_at"] is not None:
            gap.update(row, resolved_at=None)
        return False

    async def resolve(self, intervention_id: uuid.UUID, at: datetime) -> None:
        gap = self.rows.get(intervention_id)
        if gap is not None and gap["resolved_at"] is None:
            gap["resolved_at"] = at

    async def report(
        self, *, need: str | None, category: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for g in self.rows.values():
            if (
                g["resolved_at"] is None
                and need in (None, g["need"])
                and category in (None, g["program_category"])
            ):
                key = (g["need"], g["program_category"], g["postal_area"], g["language"])
                groups.setdefault(key, []).append(g)
        rows = [
            {
                **dict(zip(("need", "program_category", "postal_area", "language"), key, strict=True)),
                "patients_waiting": len({g["patient_id"] for g in gaps}),
                "interventions_waiting": len(gaps),
                "oldest_waiting_since": min(g["detected_at"] for g in gaps),
            }
            for key, gaps in groups.items()
        ]
        rows.sort(key=lambda r: (r["oldest_waiting_since"], *(str(r[k] or "") for k in list(r)[:4])))
        return rows[offset : offset + limit]

    async def waiting_for(self, category: str, needs: Any) -> list[dict[str, Any]]:
        found = []
        for g in sorted(self.rows.values(), key=lambda g: (g["detected_at"], g["intervention_id"])):
            fits = g["program_category"] == category or (g["program_category"] is None and g["need"] in needs)
            if g["resolved_at"] is not None or not fits:
                continue
            plan = self._loop.plans.get(g["patient_id"]) or {}
            patient = self._loop.patients.get(g["patient_id"]) or {}
            item = self._loop.interventions.get(g["intervention_id"]) or {}
            found.append(
                {
                    **{k: g[k] for k in ("intervention_id", "patient_id", "need", "program_category")},
                    **{k: g[k] for k in ("postal_area", "language")},
                    "agency_id": g.get("agency_id") or plan.get("agency_id") or patient.get("agency_id"),
                    "plan_id": g.get("plan_id") or plan.get("plan_id"),
                    "priority": g.get("priority") or item.get("priority") or "routine",
                }
            )
        return found


class FakeRecruitmentStore:
    """``RecruitmentStore`` over dicts."""

    def __init__(self) -> None:
        self.prospects: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []

    async def save_prospect(self, row: dict[str, Any]) -> bool:
        existing = self.prospects.get(row["id"])
        if existing is None:
            self.prospects[row["id"]] = dict(row)
            return True
        existing.update({k: row[k] for k in _PROSPECT_DETAILS})
        return False

    async def get_prospect(self, prospect_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        row = self.prospects.get(prospect_id)
        return None if row is None else dict(row)

    async def list_prospects(
        self,
        *,
        status: str | None,
        owner_id: str | None,
        category: str | None,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        found = [
            dict(p)
            for _, p in sorted(self.prospects.items())
            if status in (None, p["status"])
            and owner_id in (None, p["owner_id"])
            and (category is None or category in p["program_categories"])
        ]
        return found[offset : offset + limit]

    async def set_status(
        self, prospect_id: str, *, status: str, reason: str | None, at: datetime, by: str, by_role: str
    ) -> None:
        self.prospects[prospect_id].update(
            status=status, status_reason=reason, updated_at=at, changed_by=by, changed_by_role=by_role
        )

    async def add_history(self, row: dict[str, Any]) -> None:
        self.history.append(dict(row))

    async def history_of(self, prospect_id: str) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in h.items() if k != "prospect_id"}
            for h in self.history
            if h["prospect_id"] == prospect_id
        ]


class FakeErasureStore:
    """``ErasureStore`` over a dict; the notes are the loop's history's."""

    def __init__(self, loop: FakeLoopStore) -> None:
        self.erased: dict[uuid.UUID, dict[str, Any]] = {}
        self.held: set[int] = set()  # positions of notes another transaction holds locked
        self._loop = loop

    async def record_erasure(self, row: dict[str, Any]) -> None:
        self.erased.setdefault(row["patient_id"], dict(row))

    async def blank_notes_of(self, patient_id: uuid.UUID) -> None:
        for h in self._loop.history:
            if self._loop.referrals[h["referral_id"]]["patient_id"] == patient_id:
                h["note"] = h["note_sealed"] = None

    async def has_sealed_notes(self, referral_id: uuid.UUID) -> bool:
        return any(h["referral_id"] == referral_id and h.get("note_sealed") for h in self._loop.history)

    async def erased_at(self, patient_id: uuid.UUID) -> datetime | None:
        row = self.erased.get(patient_id)
        return None if row is None else row["erased_at"]

    def _in_the_clear(self) -> list[dict[str, Any]]:
        """The notes kept in the clear, each with its position (1 + its index), referral and patient."""
        return [
            {
                "position": position,
                "referral_id": h["referral_id"],
                "note": h["note"],
                "agency_id": self._loop.referrals[h["referral_id"]]["agency_id"],
                "patient_id": self._loop.referrals[h["referral_id"]]["patient_id"],
            }
            for position, h in enumerate(self._loop.history, start=1)
            if h.get("note") is not None
        ]

    async def notes_in_the_clear(self, after: int, limit: int) -> list[dict[str, Any]]:
        found = [n for n in self._in_the_clear() if n["position"] > after][:limit]
        return [{k: n[k] for k in ("position", "agency_id", "patient_id")} for n in found]

    async def lock_notes_in_the_clear(self, positions: Any) -> list[dict[str, Any]]:
        return [
            n for n in self._in_the_clear() if n["position"] in positions and n["position"] not in self.held
        ]

    async def seal_notes(self, sealed: Any) -> None:
        for s in sealed:
            self._loop.history[s["position"] - 1].update(note=None, note_sealed=s["note_sealed"])

    async def any_notes_in_the_clear(self) -> bool:
        return bool(self._in_the_clear())


class FakeReferralStore:
    """``ReferralStore``: the wings, the directory reading the loop's referrals for quality."""

    def __init__(self) -> None:
        self.loop = FakeLoopStore()
        self.directory = FakeDirectoryStore(self.loop.referrals)
        self.gaps = FakeGapStore(self.loop)
        self.recruitment = FakeRecruitmentStore()
        self.erasure = FakeErasureStore(self.loop)
        self.acted_for: list[str] = []  # the agencies a use case acted for, beyond its caller's

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        return await self.loop.agency_of_patient(patient_id)

    @contextlib.asynccontextmanager
    async def acting_for(self, agency: str) -> AsyncIterator[None]:
        """Every row is in view here already; which agency the use case acted for is noted."""
        self.acted_for.append(agency)
        yield


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))  # a Monday


@pytest.fixture
def keys() -> FakePatientKeys:
    return FakePatientKeys()


@pytest.fixture
def ctx(clock: FakeClock, keys: FakePatientKeys) -> ReferralContext:
    return ReferralContext(
        load_rules(Weights, RANKING_FILE),
        load_rules(Deadlines, DEADLINES_FILE),
        load_rules(SeedDirectory, DIRECTORY_FILE),
        clock,
        QualityCache(ttl_s=0),  # always fresh: each test sees the history it made
        keys=keys,
    )


@pytest.fixture
def store() -> FakeReferralStore:
    return FakeReferralStore()
