"""What a plan holds, drafted from assessed needs and a versioned plan library. Pure: no I/O.

A plan is drafted from everything known about the patient (the latest result of each instrument,
preferences, services approved or chosen, goals agreed with the care team), then carried over from the
previous version so progress on a goal or an intervention is never lost by a revision.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import Field, model_validator

from careloop_shared.contracts import RiskLevel
from careloop_shared.contracts.careplan import LONGEST_CADENCE_DAYS
from careloop_shared.errors import Invalid, problem
from careloop_shared.ids import NameBased
from careloop_shared.rules import Rule, RulesFile
from careplan.domain.contact_safety import InterpersonalSafety, follow_up_channel
from careplan.domain.education import material_id
from careplan.domain.plan import FollowUp, Goal, Intervention, PersonalGoal, PlanDocument, PlanState

DEFAULT_LIBRARY = Path(__file__).resolve().parent.parent / "rules" / "plan-library.v1.json"
RISK_ORDER = ("low", "moderate", "high", "urgent")

# Stable ids: the same patient, need and intervention slot keep their id across plan versions,
# so downstream services (referral) recognise an intervention they already acted on.
_IDS = uuid.UUID("6d1f4f4e-8d8e-4c55-9b65-3f1c2a7e0c11")


class GoalTemplate(Rule):
    description: str
    target: str
    # A goal's due time goes into PlanUpdated, whose times lie before the year 3000 (contracts.EventTime).
    due_days: float = Field(ge=0, le=LONGEST_CADENCE_DAYS)


class InterventionTemplate(Rule):
    kind: str
    program_category: str | None = None
    needs_referral: bool
    priority: str = "routine"
    service_code: str | None = None
    education_topics: list[str] = Field(default_factory=list)  # given in the patient's language


class NeedTemplate(Rule):
    goal: GoalTemplate
    interventions: list[InterventionTemplate]
    education_topic: str | None = None  # what explains the need to the patient


class PlanLibrary(RulesFile):
    agency_language: str
    education_languages: list[str]  # every topic is written in each; others get the agency's language
    needs: dict[str, NeedTemplate]
    default_need: NeedTemplate  # for a need the library does not name
    language_support: InterventionTemplate  # when the patient's language is not the agency's
    urgent_flags: dict[str, InterventionTemplate]
    follow_up_days_by_risk: dict[RiskLevel, int | float]  # kept as written: it goes into the plan
    # A contact preference or a safe channel -> the follow-up channel, e.g. do-not-contact -> in-person-only.
    contact_preference_follow_up: dict[str, str] = Field(default_factory=dict)
    interpersonal_safety: InterpersonalSafety
    instrument_groups: dict[str, str] = Field(default_factory=dict)
    # A goal in the patient's own words: its coded description and target, and how soon it is due by default.
    personal_goal: GoalTemplate = GoalTemplate(
        description="personal-goal", target="In the patient's own words", due_days=90
    )

    @model_validator(mode="after")
    def _a_cadence_for_every_risk(self) -> PlanLibrary:
        missing = [r.value for r in RiskLevel if r not in self.follow_up_days_by_risk]
        if missing:
            raise ValueError(f"follow_up_days_by_risk lacks {', '.join(missing)}")
        if any(not 0 < days <= LONGEST_CADENCE_DAYS for days in self.follow_up_days_by_risk.values()):
            raise ValueError(
                f"follow_up_days_by_risk: each more than 0 and at most {LONGEST_CADENCE_DAYS} days"
            )
        if self.agency_language not in self.education_languages:
            raise ValueError("education_languages lacks the agency_language")
        return self

    def personal_goal_due(self, requested: datetime | None, now: datetime) -> datetime:
        """When a goal in the patient's own words is due: as asked, in the future and within the longest
        cadence, else the library's default."""
        if requested is None:
            return now + timedelta(days=self.personal_goal.due_days)
        if not now < requested <= now + timedelta(days=LONGEST_CADENCE_DAYS):
            raise Invalid(
                [problem(["body", "due"], "out_of_range", "must be in the future, within ten years")]
            )
        return requested

    def group_of(self, instrument: str) -> str:
        """Instruments in one group supersede each other (a PHQ-9 answers what a PHQ-2 asked)."""
        return self.instrument_groups.get(instrument, instrument)

    def education_language(self, language: str) -> str:
        """The language materials are given in: the patient's when the topics are written in it."""
        return language if language in self.education_languages else self.agency_language

    def need_topic(self, need: str) -> str | None:
        """The topic that explains an assessed need (the default need's for one the library lacks)."""
        return self.needs.get(need, self.default_need).education_topic

    def topics(self) -> list[str]:
        """Every education topic the library can name."""
        needs = [*self.needs.values(), self.default_need]
        items = [
            *(i for n in needs for i in n.interventions),
            self.language_support,
            *self.urgent_flags.values(),
        ]
        named = [
            *(n.education_topic for n in needs if n.education_topic),
            *(t for i in items for t in i.education_topics),
        ]
        return list(dict.fromkeys(named))


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan is drafted from."""

    patient_id: uuid.UUID
    needs: list[str]  # need codes, in the order they were assessed
    risk_level: str
    urgent_flags: list[str] = field(default_factory=list)
    preferred_language: str | None = None
    contact_preference: str | None = None
    services: list[str] = field(default_factory=list)  # approved or chosen service codes
    agreed_goals: list[uuid.UUID] = field(default_factory=list)  # goals agreed with the care team
    safe_channels: list[str] | None = None  # channels the patient marked safe; None: not said
    personal_goals: list[PersonalGoal] = field(default_factory=list)  # goals in the patient's own words
    # Services a provider delivers -> the program category to refer them to; others are careplan's own.
    service_programs: Mapping[str, str] = field(default_factory=dict)


_IDS_NAMED = NameBased(_IDS)


def stable_id(*parts: object) -> uuid.UUID:
    """``uuid5(_IDS, "/".join(parts))``: a plan mints one per goal and intervention each time it is
    drafted (``NameBased`` computes the namespace's share of the hash once)."""
    return _IDS_NAMED("/".join(map(str, parts)))


def highest_risk(levels: list[str]) -> str:
    return max(levels, key=RISK_ORDER.index, default="low")


def _intervention(
    item: InterventionTemplate, *, iid: uuid.UUID, need: str, language: str, materials_in: str, urgent: bool
) -> Intervention:
    return Intervention(
        id=iid,
        need=need,
        kind=item.kind,
        program_category=item.program_category,
        needs_referral=item.needs_referral,
        status="not-started",
        priority="urgent" if urgent and item.priority == "routine" else item.priority,
        language=language,
        education_materials=[material_id(t, materials_in) for t in item.education_topics],
        service_code=item.service_code,
    )


def draft_plan(library: PlanLibrary, inputs: PlanInputs, *, now: datetime) -> PlanDocument:
    """Goals and interventions for each need, personalised, with the follow-up cadence for the risk."""
    language = inputs.preferred_language or library.agency_language
    materials_in = library.education_language(language)
    urgent = bool(inputs.urgent_flags)
    pid = str(inputs.patient_id)  # once, not for every id minted below
    goals: list[Goal] = []
    interventions: list[Intervention] = []
    for need in dict.fromkeys(inputs.needs):  # each need once, in assessed order
        entry = library.needs.get(need, library.default_need)
        goal_id = stable_id(pid, need, "goal")
        goals.append(
            Goal(
                id=goal_id,
                need=need,
                description=entry.goal.description,
                target=entry.goal.target,
                due=now + timedelta(days=entry.goal.due_days),
                lifecycle_status="accepted" if goal_id in inputs.agreed_goals else "active",
                achievement_status=None,
            )
        )
        for slot, item in enumerate(entry.interventions):
            interventions.append(
                _intervention(
                    item,
                    iid=stable_id(pid, need, item.kind, slot),
                    need=need,
                    language=language,
                    materials_in=materials_in,
                    urgent=urgent,
                )
            )
    own = library.personal_goal
    goals += [
        Goal(
            id=g.id,
            need=g.need,
            description=own.description,
            target=own.target,
            due=g.due,
            lifecycle_status="accepted",  # set with the patient: agreed from the start
            achievement_status=None,
        )
        for g in inputs.personal_goals
    ]
    for flag in inputs.urgent_flags:
        flagged = library.urgent_flags.get(flag)
        if flagged is not None:
            interventions.insert(
                0,
                _intervention(
                    flagged,
                    iid=stable_id(pid, "urgent", flag),
                    need=flag,
                    language=language,
                    materials_in=materials_in,
                    urgent=True,
                ),
            )
    if language != library.agency_language:
        interventions.append(
            _intervention(
                library.language_support,
                iid=stable_id(pid, "language-access", language),
                need="language-access",
                language=language,
                materials_in=materials_in,
                urgent=False,
            )
        )
    for code in dict.fromkeys(inputs.services):
        program = inputs.service_programs.get(code)  # a provider delivers it: refer the patient
        interventions.append(
            _intervention(
                InterventionTemplate(
                    kind="clinical", program_category=program, needs_referral=bool(program), service_code=code
                ),
                iid=stable_id(pid, "service", code),
                need="clinical-service",
                language=language,
                materials_in=materials_in,
                urgent=False,
            )
        )
    risk = RiskLevel.urgent if urgent else RiskLevel(inputs.risk_level)
    return PlanDocument(
        library_version=library.version,
        risk_level=risk,
        urgent_flags=list(inputs.urgent_flags),
        needs=list(inputs.needs),
        preferred_language=language,
        contact_preference=inputs.contact_preference,
        goals=goals,
        interventions=interventions,
        follow_up=FollowUp(
            every_days=library.follow_up_days_by_risk[risk],
            priority=risk,
            channel=follow_up_channel(
                contact_preference=inputs.contact_preference,
                needs=inputs.needs,
                safe_channels=inputs.safe_channels,
                safety=library.interpersonal_safety,
                channels=library.contact_preference_follow_up,
            ),
        ),
    )


_CARRIED_GOAL = ("lifecycle_status", "achievement_status", "due")
_CARRIED_INTERVENTION = ("status",)


def carry_over(previous: PlanDocument | None, drafted: PlanDocument) -> PlanDocument:
    """Keep what happened to goals and interventions that stay in the plan; agreed goals stay agreed."""
    if previous is None:
        return drafted
    old_goals = {g.id: g for g in previous.goals}
    old_interventions = {i.id: i for i in previous.interventions}
    goals = []
    for goal in drafted.goals:
        old = old_goals.get(goal.id)
        if old is not None:
            carried = {k: getattr(old, k) for k in _CARRIED_GOAL if k in old.model_fields_set}
            if goal.lifecycle_status == "accepted" and carried.get("lifecycle_status") == "active":
                carried.pop("lifecycle_status")
            goal = goal.model_copy(update=carried)
        goals.append(goal)
    interventions = []
    for intervention in drafted.interventions:
        before = old_interventions.get(intervention.id)
        if before is not None:
            carried = {k: getattr(before, k) for k in _CARRIED_INTERVENTION if k in before.model_fields_set}
            intervention = intervention.model_copy(update=carried)
        interventions.append(intervention)
    return drafted.model_copy(update={"goals": goals, "interventions": interventions})


def redraft(
    library: PlanLibrary, plan: PlanState, at: datetime, service_programs: Mapping[str, str]
) -> PlanDocument:
    """The plan drafted anew from its inputs, keeping the progress recorded on the previous version.
    ``service_programs``: the services a provider delivers, and the program category for each."""
    assessments = sorted(plan.assessments.values(), key=lambda a: a.assessed_at)
    inputs = PlanInputs(
        patient_id=plan.patient_id,
        needs=[n.code for a in assessments for n in a.needs] + list(plan.stated_needs),
        risk_level=highest_risk([a.risk_level for a in assessments]),
        urgent_flags=list(dict.fromkeys(f for a in assessments for f in a.urgent_flags)),
        preferred_language=plan.overrides.preferred_language or plan.preferred_language,
        contact_preference=plan.overrides.contact_preference or plan.contact_preference,
        services=list(plan.services),
        agreed_goals=list(plan.agreed_goals),
        safe_channels=plan.safe_channels,
        personal_goals=list(plan.personal_goals),
        service_programs=service_programs,
    )
    return carry_over(plan.document, draft_plan(library, inputs, now=at))
