"""careplan's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from careloop_shared.clock import Clock, system_clock
from careloop_shared.patient_keys import PatientKeys
from careloop_shared.rules import load_rules
from careloop_shared.settings import ServiceSettings, service_config
from careplan.domain.education import EducationCatalogue, MissingMaterials, parse_material
from careplan.domain.necessity import DEFAULT_CRITERIA, NecessityCriteria
from careplan.domain.planning import DEFAULT_LIBRARY, PlanLibrary
from careplan.team.sealed import InTheClear

DEFAULT_EDUCATION = Path(__file__).resolve().parent / "rules" / "education"


class CareplanSettings(ServiceSettings):
    model_config = service_config("CAREPLAN_")

    service_name: str = "careplan"
    port: int = 8002
    plan_library: Path = DEFAULT_LIBRARY  # CAREPLAN_PLAN_LIBRARY: an organisation's own plan library
    necessity_criteria: Path = DEFAULT_CRITERIA  # CAREPLAN_NECESSITY_CRITERIA: its own criteria
    # CAREPLAN_EDUCATION_MATERIALS: its own materials, <topic>/<language>.md under this directory
    education_materials: Path = DEFAULT_EDUCATION
    seal_tick_s: float = Field(60.0, gt=0)  # how often a replica looks for free text still in the clear
    seal_batch_size: int = Field(500, ge=1)  # members (and notes) sealed per transaction


def load_education(directory: Path, library: PlanLibrary) -> EducationCatalogue:
    """Every ``<topic>/<language>.md``; the service does not start when one does not fit, or when a
    topic the plan library names is not written in every language it gives materials in."""
    catalogue = EducationCatalogue(
        (
            parse_material(path.parent.name, path.stem, path.read_text(encoding="utf-8"))
            for path in sorted(directory.glob("*/*.md"))
        ),
        fallback_language=library.agency_language,
    )
    missing = catalogue.missing(library.topics(), library.education_languages)
    if missing:
        raise MissingMaterials(missing)
    return catalogue


@dataclass(frozen=True)
class CareplanContext:
    library: PlanLibrary
    criteria: NecessityCriteria
    education: EducationCatalogue
    keys: PatientKeys  # patients' data keys, from intake: the care team's free text is sealed with them
    clock: Clock = system_clock
    seal_batch_size: int = 500
    in_the_clear: InTheClear = field(default_factory=InTheClear)  # this replica's, not shared

    @classmethod
    def from_settings(
        cls, settings: CareplanSettings, keys: PatientKeys, clock: Clock = system_clock
    ) -> CareplanContext:
        library = load_rules(PlanLibrary, settings.plan_library)
        return cls(
            library,
            load_rules(NecessityCriteria, settings.necessity_criteria),
            load_education(settings.education_materials, library),
            keys,
            clock,
            seal_batch_size=settings.seal_batch_size,
        )
