"""Releasing a patient's data key to a service (``patient-key:release``, the ``service`` role's only
permission), when intake's key-release rules name the service. Every release is audited."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from careloop_shared.http import Audit, CurrentPrincipal, Runtime, needs, service_context
from intake.config import IntakeContext
from intake.domain.commands import ReleaseDataKey
from intake.key_release import handlers
from intake.schemas import DataKeyOut

router = APIRouter(prefix="/v1", tags=["patients"])
Ctx = Annotated[IntakeContext, Depends(service_context)]
NO_STORE = {"Cache-Control": "no-store"}
RELEASED: dict[int | str, dict[str, Any]] = {
    200: {"headers": {"Cache-Control": {"description": "Always `no-store`.", "schema": {"type": "string"}}}},
    403: {
        "description": "The caller is not a service, or not one intake's key-release rules name"
        " (or its role lacks the permission, named in missing_permission)"
    },
    404: {"description": "No such patient in the token's agency"},
    410: {"description": "The patient was erased and their data key destroyed; body names erased_at"},
}


@router.post(
    "/patients/{patient_id}/data-key",
    response_model=DataKeyOut,
    responses=RELEASED,
    openapi_extra=needs("patient-key:release"),
)
async def release_data_key(
    patient_id: uuid.UUID, who: CurrentPrincipal, ctx: Ctx, runtime: Runtime, audit: Audit
) -> JSONResponse:
    """The patient's data key, for a service that seals their sensitive text with it (careplan, referral
    and followup, as `rules/key-release.v1.json` names them), acting for the token's agency. A patient
    registered before keys existed gets one made now. Recorded in the audit log, naming the service."""
    command = ReleaseDataKey(who.agency_id, patient_id, by=who.subject, by_role=who.role)
    # Not through Commands: a response kept for an Idempotency-Key replay would keep the key in the clear.
    async with runtime.uow() as uow:
        released = await handlers.release_data_key(ctx, uow, command)
    await audit.read(patient_id, "data-key", entity_id=released.kid)
    body = DataKeyOut(patient_id=patient_id, kid=released.kid, key=base64.b64encode(released.key).decode())
    return JSONResponse(body.model_dump(mode="json"), headers=NO_STORE)
