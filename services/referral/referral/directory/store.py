"""The directory's tables: organizations, their locations, services (programs). Shared by all agencies.

Rows saved through the API are the organisation's word: a seed load (``source = 'seed'``) leaves
them as they are. A program's quality history is read from the referrals it was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import ALL_AGENCIES, Db, Store, insert_row, insert_rows, update_by_id
from referral.domain import matching
from referral.domain.quality import History
from referral.row_security import acting_for

ORGANIZATION_COLUMNS = (
    "id, agency_id, name, description, url, email, phone, updated_at, changed_by, changed_by_role"
)
SERVICE_COLUMNS = (
    "s.id, s.organization_id, s.name, s.description, s.program_category, s.needs, s.status, s.languages,"
    " s.interpretation_services, s.eligibility, s.hours, s.capacity_status, s.capacity_notes,"
    " s.capacity_updated_at, s.contact, s.location_ids, s.updated_at, s.changed_by, s.changed_by_role,"
    " s.capacity_changed_by, s.capacity_changed_by_role, o.agency_id AS receiving_agency_id"
)
_SERVICES = "services s JOIN organizations o ON o.id = s.organization_id"
_CAPACITY_MOVED = (
    "(services.capacity_status, services.capacity_notes)"
    " IS DISTINCT FROM (EXCLUDED.capacity_status, EXCLUDED.capacity_notes)"
)
# A seed load changes a row only while the seed still owns it.
_SEED_YIELDS = " WHERE EXCLUDED.source = 'api' OR {table}.source = 'seed'"


def _keeps_hsds(row: dict[str, Any]) -> str:
    """An HSDS import sets what the entry keeps of HSDS; any other save leaves it as it is."""
    return ", hsds = EXCLUDED.hsds" if "hsds" in row else ""


def service_out(row: Any) -> dict[str, Any]:
    """A services row with its capacity as one part, as the directory shows it."""
    out = dict(row)
    out["capacity"] = {"status": out.pop("capacity_status"), "notes": out.pop("capacity_notes")}
    return out


def service_of(row: Any) -> matching.Service:
    """What ranking needs of a services row."""
    e = row["eligibility"]
    return matching.Service(
        id=row["id"],
        agency_id=row["receiving_agency_id"],
        program_category=row["program_category"],
        needs=tuple(row["needs"]),
        languages=tuple(row["languages"]),
        interpretation_services=row["interpretation_services"],
        eligibility=matching.Eligibility(
            min_age=e.get("min_age"),
            max_age=e.get("max_age"),
            postal_prefixes=tuple(e.get("postal_prefixes", ())),
            requirements=tuple(e.get("requirements", ())),
        ),
        capacity_status=row["capacity_status"],
        status=row["status"],
    )


class DirectoryStore(Store):
    async def upsert_organization(self, row: dict[str, Any], locations: list[dict[str, Any]]) -> bool | None:
        """Insert or update with its locations; True when created, None when a seed load met a row the
        API changed (then nothing changes)."""
        changed = await insert_row(
            self.db,
            "organizations",
            row,
            conflict="(id) DO UPDATE SET agency_id = EXCLUDED.agency_id, name = EXCLUDED.name,"
            " description = EXCLUDED.description, url = EXCLUDED.url, email = EXCLUDED.email,"
            " phone = EXCLUDED.phone, source = EXCLUDED.source, updated_at = EXCLUDED.updated_at,"
            " changed_by = EXCLUDED.changed_by, changed_by_role = EXCLUDED.changed_by_role"
            + _keeps_hsds(row)
            + _SEED_YIELDS.format(table="organizations"),
            returning="(xmax = 0) AS created",
        )
        if changed is None:
            return None
        await self.db.execute(
            "DELETE FROM locations WHERE organization_id = $1 AND NOT (id = ANY($2::text[]))",
            row["id"],
            [loc["id"] for loc in locations],
        )
        # A location id another organisation holds stays theirs.
        await insert_rows(
            self.db,
            "locations",
            locations,
            conflict="(id) DO UPDATE SET name = EXCLUDED.name, location_type = EXCLUDED.location_type,"
            " postal_code = EXCLUDED.postal_code"
            + _keeps_hsds(locations[0] if locations else {})
            + " WHERE locations.organization_id = EXCLUDED.organization_id",
        )
        return bool(changed["created"])

    async def upsert_service(self, row: dict[str, Any]) -> bool | None:
        """Insert or update; True when created, None when a seed load met a row the API changed.
        ``capacity_updated_at`` and who changed the capacity move only when the capacity did."""
        changed = await insert_row(
            self.db,
            "services",
            row,
            conflict="(id) DO UPDATE SET organization_id = EXCLUDED.organization_id,"
            " name = EXCLUDED.name, description = EXCLUDED.description,"
            " program_category = EXCLUDED.program_category, needs = EXCLUDED.needs,"
            " status = EXCLUDED.status, languages = EXCLUDED.languages,"
            " interpretation_services = EXCLUDED.interpretation_services,"
            " eligibility = EXCLUDED.eligibility, hours = EXCLUDED.hours,"
            " capacity_status = EXCLUDED.capacity_status, capacity_notes = EXCLUDED.capacity_notes,"
            + ", ".join(
                f" {c} = CASE WHEN {_CAPACITY_MOVED} THEN EXCLUDED.{c} ELSE services.{c} END"
                for c in ("capacity_updated_at", "capacity_changed_by", "capacity_changed_by_role")
            )
            + ", changed_by = EXCLUDED.changed_by, changed_by_role = EXCLUDED.changed_by_role,"
            " contact = EXCLUDED.contact, location_ids = EXCLUDED.location_ids,"
            " source = EXCLUDED.source, updated_at = EXCLUDED.updated_at"
            + _keeps_hsds(row)
            + _SEED_YIELDS.format(table="services"),
            returning="(xmax = 0) AS created",
        )
        return None if changed is None else bool(changed["created"])

    async def hsds_entries(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every organization (with its locations) and service, with what each keeps of HSDS."""
        orgs = [dict(r) for r in await self.db.fetch(
            f"SELECT {ORGANIZATION_COLUMNS}, hsds FROM organizations ORDER BY id")]  # fmt: skip
        locations: dict[str, list[dict[str, Any]]] = {}
        for r in await self.db.fetch(
            "SELECT id, organization_id, name, location_type, postal_code, hsds FROM locations ORDER BY id"
        ):
            locations.setdefault(r["organization_id"], []).append(dict(r))
        services = await self.db.fetch(f"SELECT {SERVICE_COLUMNS}, s.hsds FROM {_SERVICES} ORDER BY s.id")
        return [{**o, "locations": locations.get(o["id"], [])} for o in orgs], [dict(r) for r in services]

    async def hsds_shared(self) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.db.fetch("SELECT table_name, data FROM hsds_shared ORDER BY table_name, id")
        return [(r["table_name"], r["data"]) for r in rows]

    async def save_hsds_shared(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """A dataset's rows that belong to no entry, by table and id (a later import replaces them)."""
        await insert_rows(
            self.db,
            "hsds_shared",
            [{"table_name": t, "id": str(r["id"]), "data": r} for t, r in rows],
            conflict="(table_name, id) DO UPDATE SET data = EXCLUDED.data",
        )

    async def get_organization(self, org_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            f"SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1", org_id
        )
        if row is None:
            return None
        locations = await self.db.fetch(
            "SELECT id, name, location_type, postal_code FROM locations WHERE organization_id = $1"
            " ORDER BY id",
            org_id,
        )
        return {**dict(row), "locations": [dict(r) for r in locations]}

    async def list_organizations(self, limit: int, offset: int) -> list[dict[str, Any]]:
        ids = await self.db.fetch(
            "SELECT id FROM organizations ORDER BY id LIMIT $1 OFFSET $2", limit, offset
        )
        return [org for r in ids if (org := await self.get_organization(r["id"])) is not None]

    async def get_service(self, service_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            f"SELECT {SERVICE_COLUMNS} FROM {_SERVICES} WHERE s.id = $1"
            + (" FOR UPDATE OF s" if lock else ""),
            service_id,
        )
        return None if row is None else service_out(row)

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
        rows = await self.db.fetch(
            f"SELECT {SERVICE_COLUMNS} FROM {_SERVICES}"
            " WHERE ($1::text IS NULL OR s.needs ? $1 OR s.program_category = $1)"
            " AND ($2::text IS NULL OR s.program_category = $2)"
            " AND ($3::text IS NULL OR s.interpretation_services OR EXISTS (SELECT 1 FROM"
            "   jsonb_array_elements_text(s.languages) l WHERE lower(split_part(l, '-', 1)) = $3))"
            " AND ($4::text IS NULL OR jsonb_array_length(s.eligibility->'postal_prefixes') = 0"
            "   OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(s.eligibility->'postal_prefixes') p"
            "   WHERE $4 LIKE upper(p) || '%' OR upper(p) LIKE $4 || '%'))"
            " AND ($5::text IS NULL OR s.capacity_status = $5)"
            " AND ($6::text IS NULL OR s.organization_id = $6)"
            " AND ($9::text IS NULL OR o.agency_id = $9)"
            " ORDER BY s.id LIMIT $7 OFFSET $8",
            need,
            category,
            language,
            postal_area,
            capacity,
            organization_id,
            limit,
            offset,
            receiving_agency_id,
        )
        return [service_out(r) for r in rows]

    async def update_capacity(
        self, service_id: str, status: str, notes: str | None, at: datetime, *, by: str, by_role: str
    ) -> None:
        """The organisation's word on its capacity (``by`` the person who gave it): a later seed load
        leaves the service alone."""
        await update_by_id(
            self.db,
            "services",
            service_id,
            {
                "capacity_status": status,
                "capacity_notes": notes,
                "capacity_updated_at": at,
                "capacity_changed_by": by,
                "capacity_changed_by_role": by_role,
                "changed_by": by,
                "changed_by_role": by_role,
                "source": "api",
            },
            at=at,
        )

    async def program(self, service_id: str) -> matching.Service | None:
        """What ranking needs of one service, whatever its status."""
        row = await self.db.fetchrow(f"SELECT {SERVICE_COLUMNS} FROM {_SERVICES} WHERE s.id = $1", service_id)
        return None if row is None else service_of(row)

    async def candidate_services(self, category: str | None, need: str) -> list[matching.Service]:
        """Active services in the category or addressing the need; ranking decides the rest."""
        found: list[matching.Service] = await self.one(_candidates, (category, need))
        return found

    async def histories(self, service_ids: Sequence[str]) -> dict[str, History]:
        """What happened to the referrals each program was sent (drafts and entries in error left out)."""
        # A program's figures count every agency's referrals (and name none), whoever reads the directory.
        async with acting_for(self.db, ALL_AGENCIES):
            rows: list[asyncpg.Record] = await self.db.fetch(
                "SELECT program_id, count(*) AS sent,"
                " count(*) FILTER (WHERE accepted_at IS NOT NULL) AS accepted,"
                " count(*) FILTER (WHERE status = 'rejected') AS rejected,"
                " count(*) FILTER (WHERE accepted_at IS NOT NULL"
                "   AND status IN ('completed', 'failed', 'cancelled')) AS closed,"
                " count(*) FILTER (WHERE status = 'completed') AS completed,"
                " count(*) FILTER (WHERE accepted_at IS NOT NULL AND outcome IS NOT NULL"
                "   AND status IN ('completed', 'failed', 'cancelled')) AS closed_with_outcome,"
                " percentile_cont(0.5) WITHIN GROUP"
                "   (ORDER BY extract(epoch FROM accepted_at - made_at) / 3600)"
                "   FILTER (WHERE accepted_at IS NOT NULL) AS median_hours_to_accept"
                " FROM referrals WHERE program_id = ANY($1::text[]) AND made_at IS NOT NULL"
                " AND status <> 'entered-in-error' GROUP BY program_id",
                list(service_ids),
            )
        return {
            r["program_id"]: History(
                sent=r["sent"],
                accepted=r["accepted"],
                rejected=r["rejected"],
                closed=r["closed"],
                completed=r["completed"],
                closed_with_outcome=r["closed_with_outcome"],
                median_hours_to_accept=None
                if r["median_hours_to_accept"] is None
                else round(float(r["median_hours_to_accept"]), 2),
            )
            for r in rows
        }


async def _candidates(db: Db, asks: list[tuple[str | None, str]]) -> list[list[matching.Service]]:
    """One statement per different (category, need) asked at once (most patients ask the same)."""
    found: dict[tuple[str | None, str], list[matching.Service]] = {}
    for category, need in dict.fromkeys(asks):
        rows = await db.fetch(
            f"SELECT {SERVICE_COLUMNS} FROM {_SERVICES}"
            " WHERE s.status = 'active' AND (s.program_category = $1 OR s.needs ? $2) ORDER BY s.id",
            category,
            need,
        )
        found[(category, need)] = [service_of(r) for r in rows]
    return [list(found[ask]) for ask in asks]
