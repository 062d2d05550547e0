"""The reads careplan's FHIR routes need beyond the wings' stores: plan versions with their documents
and the plan's current inputs, goals across versions, a plan or a service request by its id alone
(FHIR reads ``<Type>/<id>``, with no patient in the URL). Scoped to the caller's agency like every read.
"""

from __future__ import annotations

import uuid

import asyncpg

from careloop_shared.db import Store
from careplan.necessity.store import REQUEST_COLUMNS

_VERSIONS = (
    "SELECT p.plan_id, p.patient_id, p.version AS latest, p.assessments, v.version, v.status, v.document,"
    " v.changed_by_subject, v.created_at FROM plans p JOIN plan_versions v ON v.plan_id = p.plan_id"
)
# Each goal as the latest version holding it says, in the order goals first appeared.
_GOALS = (
    "SELECT goal, version, plan_id, patient_id, latest, assessments FROM ("
    " SELECT g.goal, v.version, p.plan_id, p.patient_id, p.version AS latest, p.assessments,"
    " min(v.version) OVER (PARTITION BY g.goal->>'id') AS first,"
    " row_number() OVER (PARTITION BY g.goal->>'id' ORDER BY v.version DESC) AS nth"
    " FROM plans p JOIN plan_versions v ON v.plan_id = p.plan_id"
    " CROSS JOIN LATERAL jsonb_array_elements(v.document->'goals') AS g(goal)"
    " WHERE {where}) x WHERE nth = 1 ORDER BY first, goal->>'id' LIMIT $3 OFFSET $4"
)
_PLAN = "SELECT plan_id, patient_id, status FROM plans WHERE agency_id = $1 AND version > 0"


class FhirStore(Store):
    async def versions(
        self, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        return await self.db.fetch(
            f"{_VERSIONS} WHERE p.patient_id = $1 AND p.agency_id = $2 ORDER BY v.version LIMIT $3 OFFSET $4",
            patient_id,
            agency_id,
            limit,
            offset,
        )

    async def version(self, agency_id: str, plan_id: uuid.UUID, version: int) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            f"{_VERSIONS} WHERE p.plan_id = $1 AND v.version = $2 AND p.agency_id = $3",
            plan_id,
            version,
            agency_id,
        )

    async def goals(
        self, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        where = "p.patient_id = $1 AND p.agency_id = $2"
        return await self.db.fetch(_GOALS.format(where=where), patient_id, agency_id, limit, offset)

    async def goal(self, agency_id: str, goal_id: uuid.UUID) -> asyncpg.Record | None:
        # Unindexed: goals live inside the version documents (a goal id names no plan).
        where = "p.agency_id = $1 AND g.goal->>'id' = $2::text"
        rows = await self.db.fetch(_GOALS.format(where=where), agency_id, str(goal_id), 1, 0)
        return rows[0] if rows else None

    async def plan_of_patient(self, agency_id: str, patient_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.db.fetchrow(f"{_PLAN} AND patient_id = $2", agency_id, patient_id)

    async def plan(self, agency_id: str, plan_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.db.fetchrow(f"{_PLAN} AND plan_id = $2", agency_id, plan_id)

    async def service_request(self, agency_id: str, request_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            f"SELECT {REQUEST_COLUMNS} FROM service_requests WHERE id = $1 AND agency_id = $2",
            request_id,
            agency_id,
        )
