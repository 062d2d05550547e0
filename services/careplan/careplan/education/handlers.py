"""The education wing's use case: education given for an intervention of the plan is recorded, with
which version of each material, how it was given and whether the patient explained it back."""

from __future__ import annotations

from careloop_shared.contracts import EducationProvided
from careloop_shared.errors import Conflict, Invalid, NotFound, problem
from careloop_shared.ids import new_id
from careplan.config import CareplanContext
from careplan.domain.commands import RecordEducation
from careplan.domain.education import Material, material_id
from careplan.domain.plan import Intervention, PlanDocument
from careplan.domain.versions import complete_intervention
from careplan.plans.revision import Change, plan_to_change, save
from careplan.store import Uow


class InterventionNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("intervention not found in the current plan")


class NoEducationMaterial(Conflict):
    def __init__(self) -> None:
        super().__init__("no education material to record for this intervention")


class UnknownMaterials(Invalid):
    """Materials named by the caller that careplan does not have."""

    def __init__(self, positions: list[int]) -> None:
        super().__init__(
            [
                problem(["body", "materials", i], "unknown_material", "no such education material")
                for i in positions
            ]
        )


class MaterialGone(Conflict):
    """The plan names a material that is no longer in the catalogue: the caller names what was given."""

    def __init__(self) -> None:
        super().__init__(
            "the intervention names education material careplan no longer has; name the materials given"
        )


async def record_education(ctx: CareplanContext, uow: Uow, cmd: RecordEducation) -> int:
    """Record that education was given; an education intervention is then completed. Returns the plan's
    version after."""
    plan = await plan_to_change(uow, cmd.agency_id, cmd.patient_id)
    intervention = plan.drafted.intervention(cmd.intervention_id)
    if intervention is None:
        raise InterventionNotFound()
    # Documents from before interventions named their language were in the agency's language.
    language = intervention.language or ctx.library.agency_language
    given = (
        cmd.materials or intervention.education_materials or _need_material(ctx, plan.drafted, intervention)
    )
    if not given:
        raise NoEducationMaterial()
    materials = _materials(ctx, given, named=bool(cmd.materials))
    at = ctx.clock()
    provided = EducationProvided(
        patient_id=cmd.patient_id,
        agency_id=cmd.agency_id,
        plan_id=plan.plan_id,
        intervention_id=cmd.intervention_id,
        materials=given,
        language=language,
        provided_at=at,
        material_versions=[m.version for m in materials],
        channel=cmd.channel,
        teach_back_confirmed=cmd.teach_back_confirmed,
        actor_id=cmd.by,
        actor_role=cmd.by_role,
    )
    # The record keeps what the event says, and who recorded it (the person and their role).
    await uow.store.education.insert_education(
        {
            **provided.model_dump(exclude={"actor_id", "actor_role"}),
            "id": new_id(),
            "recorded_by": cmd.by_role,
            "recorded_by_subject": cmd.by,
        }
    )
    uow.emit(provided)
    document = plan.drafted
    if intervention.kind == "education":
        document = complete_intervention(document, cmd.intervention_id)
    return await save(uow, plan, document, plan.status, Change.by(cmd, "education-provided", at))


def _need_material(ctx: CareplanContext, document: PlanDocument, intervention: Intervention) -> list[str]:
    """The material explaining the assessed need the intervention serves, in the patient's language."""
    if intervention.need not in document.needs:
        return []  # language access, a clinical service, an urgent flag: no need to explain
    topic = ctx.library.need_topic(intervention.need)
    language = ctx.library.education_language(intervention.language or ctx.library.agency_language)
    return [material_id(topic, language)] if topic else []


def _materials(ctx: CareplanContext, given: list[str], *, named: bool) -> list[Material]:
    found = [ctx.education.material(m) for m in given]
    unknown = [i for i, m in enumerate(found) if m is None]
    if unknown:
        raise UnknownMaterials(unknown) if named else MaterialGone()
    return [m for m in found if m is not None]
