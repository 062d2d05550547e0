"""Medical-necessity checks of requested services against criteria held as data. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import model_validator

from careloop_shared.contracts import RiskLevel
from careloop_shared.errors import Invalid, problem
from careloop_shared.rules import Rule, RulesFile
from careplan.domain.plan import PlanDocument
from careplan.domain.planning import RISK_ORDER

DEFAULT_CRITERIA = Path(__file__).resolve().parent.parent / "rules" / "necessity-criteria.v1.json"
_TRIED = frozenset({"in-progress", "on-hold", "completed", "stopped"})
_ACTIVE = frozenset({"not-started", "scheduled", "in-progress", "on-hold"})


class Criterion(Rule):
    """One test a plan must pass; exactly one of the rules below."""

    code: str
    any_need: list[str] | None = None  # the plan has one of these needs
    min_risk: RiskLevel | None = None  # the plan's risk is at least this
    prior_intervention_kind: str | None = None  # an intervention of this kind was tried
    max_active: int | None = None  # at most this many active interventions for the service

    @model_validator(mode="after")
    def _one_rule(self) -> Criterion:
        rules = (self.any_need, self.min_risk, self.prior_intervention_kind, self.max_active)
        if sum(r is not None for r in rules) != 1:
            raise ValueError("a criterion is one of any_need, min_risk, prior_intervention_kind, max_active")
        return self


class ServiceCriteria(Rule):
    title: str
    # Delivered by a provider (the patient is referred to a program of this category), or else by the
    # care team itself.
    delivered_by_provider: bool = False
    program_category: str | None = None
    criteria: list[Criterion]
    alternatives: list[str]  # service codes to offer when a criterion fails

    @model_validator(mode="after")
    def _a_provider_through_a_program(self) -> ServiceCriteria:
        if self.delivered_by_provider != (self.program_category is not None):
            raise ValueError("a service delivered by a provider names its program_category, and only one")
        return self


class NecessityCriteria(RulesFile):
    services: dict[str, ServiceCriteria]

    def service_programs(self) -> dict[str, str]:
        """The services a provider delivers, and the program category a referral for each asks for."""
        return {
            code: spec.program_category
            for code, spec in self.services.items()
            if spec.delivered_by_provider and spec.program_category
        }


@dataclass(frozen=True)
class Decision:
    service_code: str
    met: bool
    failed_criteria: list[str]
    alternatives: list[str]
    criteria_version: str


class UnknownService(Invalid):
    """No necessity criteria name the requested service."""

    def __init__(self) -> None:
        super().__init__(
            [problem(["body", "service_code"], "unknown_service", "no necessity criteria for it")]
        )


def _holds(criterion: Criterion, plan: PlanDocument, service_code: str) -> bool:
    if criterion.any_need is not None:
        return bool(set(plan.needs) & set(criterion.any_need))
    if criterion.min_risk is not None:
        return RISK_ORDER.index(plan.risk_level) >= RISK_ORDER.index(criterion.min_risk)
    if criterion.prior_intervention_kind is not None:
        kind = criterion.prior_intervention_kind
        return any(i.kind == kind and i.status in _TRIED for i in plan.interventions)
    active = [i for i in plan.interventions if i.service_code == service_code and i.status in _ACTIVE]
    return len(active) <= (criterion.max_active or 0)


def decide(criteria: NecessityCriteria, service_code: str, plan: PlanDocument) -> Decision:
    """Which criteria fail for this service given the current plan, and what to offer instead."""
    spec = criteria.services.get(service_code)
    if spec is None:
        raise UnknownService()
    failed = [c.code for c in spec.criteria if not _holds(c, plan, service_code)]
    return Decision(
        service_code=service_code,
        met=not failed,
        failed_criteria=failed,
        alternatives=[] if not failed else list(spec.alternatives),
        criteria_version=criteria.version,
    )
