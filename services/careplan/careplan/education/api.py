"""The education wing's HTTP routes: the materials (not patient data: any role that reads education may
read them), and education given for an intervention of a patient's plan (a command: it answers with a
version number only)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from careloop_shared.errors import NotFound
from careloop_shared.http import CodePath, Commands, CurrentPrincipal, Page, Paging, needs, service_context
from careplan.config import CareplanContext
from careplan.domain.commands import RecordEducation
from careplan.domain.education import Material
from careplan.education import handlers
from careplan.schemas import EducationIn, MaterialInLanguage, MaterialOut, TopicOut, VersionRef

router = APIRouter()
Ctx = Annotated[CareplanContext, Depends(service_context)]
Language = Query(None, max_length=35, pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")


class MaterialNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("education material not found")


def _in_language(material: Material) -> MaterialInLanguage:
    return MaterialInLanguage(
        material_id=material.id,
        language=material.language,
        title=material.title,
        version=material.version,
        reviewed=material.reviewed,
    )


@router.get(
    "/v1/education/materials",
    tags=["education"],
    response_model=Page[TopicOut],
    openapi_extra=needs("education:read"),
)
async def education_materials(
    ctx: Ctx,
    page: Paging,
    need: str | None = Query(
        None,
        max_length=64,
        pattern=r"^[a-z][a-z0-9-]*$",
        description="Only the topic that explains this need.",
    ),
    language: str | None = Language,
) -> Page[TopicOut]:
    """Every topic with its texts (only those in ``language`` when given), by topic."""
    topics = sorted(ctx.education.by_topic)
    if need is not None:
        topic = ctx.library.need_topic(need)
        topics = [topic] if topic in ctx.education.by_topic else []
    listed = [
        TopicOut(
            topic=topic,
            materials=[
                _in_language(m)
                for lang, m in sorted(ctx.education.by_topic[topic].items())
                if language is None or lang == language
            ],
        )
        for topic in topics
    ]
    return Page.of(listed[page.offset : page.offset + page.fetch_limit], page)


@router.get(
    "/v1/education/materials/{material_id}",
    tags=["education"],
    response_model=MaterialOut,
    openapi_extra=needs("education:read"),
)
async def education_material(material_id: CodePath, ctx: Ctx, language: str | None = Language) -> MaterialOut:
    """A topic (``depression``) or a material id (``edu-depression-es``) in ``language`` (by default the
    id's own, else the agency's); when not written in it, in the agency's language, saying so."""
    shown = ctx.education.show(material_id, language)
    if shown is None:
        raise MaterialNotFound()
    material = shown.material
    return MaterialOut(
        material_id=material.id,
        topic=material.topic,
        title=material.title,
        version=material.version,
        reviewed=material.reviewed,
        language=material.language,
        requested_language=shown.requested_language,
        fell_back=shown.fell_back,
        note=(
            f"not available in {shown.requested_language}; shown in {material.language}"
            if shown.fell_back
            else None
        ),
        markdown=material.markdown,
    )


@router.post(
    "/v1/patients/{patient_id}/care-plan/interventions/{intervention_id}/education",
    tags=["care plans"],
    status_code=201,
    response_model=VersionRef,
    openapi_extra=needs("plan:change"),
)
async def record_education(
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    body: EducationIn,
    who: CurrentPrincipal,
    commands: Commands,
) -> Any:
    command = RecordEducation(
        who.agency_id,
        who.subject,
        who.role,
        patient_id,
        intervention_id,
        body.materials,
        body.channel,
        body.teach_back_confirmed,
    )
    return await commands.run(handlers.record_education, command, status_code=201, respond=VersionRef.of)
