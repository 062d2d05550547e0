"""The patient's FHIR record as a download: the ``Bundle`` that ``careloop export`` writes, put together by
the kernel (``careloop_shared.fhir_bundle``) from intake's, careplan's, referral's and followup's
``/fhir/R4/`` searches, made at the same time as the signed-in person.

Offered where the patient page is (``EXPORTS``). The services check every search again, scope it to the
person's agency and audit what they disclose, as for any read of the page. A search the role may not make
is not asked and is left out, as is one a service refuses; another agency's patient (or none) is "not
found" and nothing else is asked. A service that is down or fails gives a page saying which, never part
of a record. The file is named by the pseudonymous id alone.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from careloop_shared.fhir import FHIR_JSON, PREFIX
from careloop_shared.fhir_bundle import (
    SERVICES,
    Get,
    NotPermitted,
    PatientNotFound,
    UnusableAnswer,
    export,
    unresolved,
)
from careloop_shared.logging import get_logger
from workspace.client import ServiceError, Services
from workspace.errors import error_page, failed_call_page
from workspace.pages import may
from workspace.web import CallServices, SignedInSession, workspace_of

log = get_logger(__name__)
router = APIRouter()

# Who may download: the roles with patient pages (the download is the page's record, in one file).
EXPORTS = "patient:read"
NOT_FOUND = "There is no such patient, or not one you may see."


@router.get("/patients/{patient_id}/fhir-record")
async def download_fhir_record(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    person = session.person
    assert person is not None
    if not may(person, EXPORTS):
        return error_page(
            request, 403, "Not available", "Downloading a patient's record is not available to your role."
        )
    ctx = workspace_of(request).ctx
    urls = ctx.settings.service_urls()
    bases = {service: f"{urls[service]}{PREFIX}" for service in SERVICES}
    try:
        record = await export(
            _as_person(services), str(patient_id), bases, may=lambda p: may(person, p), clock=ctx.clock
        )
    except PatientNotFound:
        return error_page(request, 404, "Page not found", NOT_FOUND)
    except NotPermitted:
        return error_page(request, 403, "Not available", "Your role may not read this patient's record.")
    except ServiceError as exc:
        if exc.status == 401:
            raise  # the session is over: sign in again
        return failed_call_page(request, exc, "The record could not be downloaded")
    except UnusableAnswer as exc:
        log.warning("FHIR record not assembled", service=exc.service)
        message = "A service answered in a way the download cannot follow; try again shortly."
        return error_page(request, 502, "The record could not be downloaded", message)
    bundle = record.bundle
    # Counts only: the log names no patient and nothing of the record.
    log.info(
        "FHIR record downloaded",
        resources=len(bundle["entry"]),
        left_out=len(record.left_out),
        unresolved=len(unresolved(bundle)),
    )
    return Response(
        json.dumps(bundle, indent=2),
        media_type=FHIR_JSON,
        headers={"Content-Disposition": f'attachment; filename="patient-{patient_id}.fhir.json"'},
    )


def _as_person(services: Services) -> Get:
    """The kernel's ``get``: a FHIR call as the signed-in person; a 403 leaves that search out."""

    async def get(service: str, url: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        try:
            return dict(await services.fhir(service, url, params))
        except ServiceError as exc:
            if exc.status == 403:
                raise NotPermitted() from exc
            raise

    return get
