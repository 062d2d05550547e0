"""intake's screening instruments as FHIR Questionnaires (included in ``intake.fhir.api``'s router).

A Questionnaire is no patient data: read with the permission that shows the instruments on
``/v1/instruments``, and not audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from careloop_shared.errors import NotFound
from careloop_shared.fhir import BundleDoc, FhirResponse, Paging, ResourceDoc, interaction, searchset
from careloop_shared.http import needs, service_context
from intake.config import IntakeContext
from intake.fhir import questionnaires
from intake.fhir.schemas import ID_PATTERN

Ctx = Annotated[IntakeContext, Depends(service_context)]
ById = Annotated[str, Path(pattern=ID_PATTERN)]
FORMS = "assessment:record"  # as /v1/instruments: the forms an assessment is recorded with
SEARCH = interaction("Questionnaire", "search-type", url="uri", name="string")


def add_routes(router: APIRouter) -> None:
    """The Questionnaire routes, declared on intake's FHIR router (its CapabilityStatement lists them)."""

    @router.get(
        "/Questionnaire/{questionnaire_id}",
        response_model=ResourceDoc,
        openapi_extra={**needs(FORMS), **interaction("Questionnaire", "read")},
        summary="A screening instrument as the form intake scores (its id is the instrument's)",
    )
    async def read_questionnaire(questionnaire_id: ById, ctx: Ctx) -> FhirResponse:
        found = questionnaires.questionnaire(ctx.rules, questionnaire_id)
        if found is None:
            raise NotFound("questionnaire not found")
        return FhirResponse(found)

    @router.get(
        "/Questionnaire",
        response_model=BundleDoc,
        openapi_extra={
            **needs(FORMS),
            **interaction("Questionnaire", "search-type", url="uri", name="string"),
        },
        summary="The instruments intake scores, as forms: by canonical url (|version), name, or all",
    )
    async def search_questionnaires(
        request: Request,
        ctx: Ctx,
        page: Paging,
        url: Annotated[str | None, Query(max_length=300, description="<canonical url>[|<version>]")] = None,
        name: Annotated[str | None, Query(max_length=100, description="the name, or its start")] = None,
    ) -> FhirResponse:
        matched = questionnaires.found(ctx.rules, url=url, name=name)
        end = page.offset + page.count
        shown, next_offset = matched[page.offset : end], (end if end < len(matched) else None)
        return FhirResponse(searchset(request, shown, next_offset=next_offset, total=len(matched)))
