"""Ranking the directory's programs for one referral. Pure: no I/O.

Eligibility is a yes/no gate (need, status, area, age, language, capacity the organisation excludes;
``ineligible`` names the first that fails, for a program a person chose by hand);
the weights in ``rules/ranking.v1.json`` then order the eligible programs. Ties go to the lower id,
so the same inputs always pick the same program.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from careloop_shared.rules import Rule, RulesFile
from referral.domain.quality import NO_HISTORY, Quality

RANKING_FILE = Path(__file__).resolve().parent.parent / "rules" / "ranking.v1.json"

CapacityStatus = Literal["capacity", "no-capacity", "waitlist", "additional-assessment-required"]
LanguageFit = Literal["spoken", "interpretation", "unknown"]
AreaFit = Literal["served", "everywhere", "unknown"]
Ineligibility = Literal["inactive", "not-taking-referrals", "age", "language", "outside-area"]

# Why a program cannot take the patient, as a refusal says it (never quoting the patient's details).
WHY_NOT: dict[Ineligibility, str] = {
    "inactive": "the service is not active",
    "not-taking-referrals": "the service is not taking referrals now (no capacity)",
    "age": "the patient's age is outside the service's eligibility",
    "language": "the service neither speaks the patient's language nor offers interpretation",
    "outside-area": "the patient lives outside the service's area",
}


@dataclass(frozen=True)
class Eligibility:
    min_age: int | None = None
    max_age: int | None = None
    postal_prefixes: tuple[str, ...] = ()  # empty: serves everywhere
    requirements: tuple[str, ...] = ()  # e.g. medicaid, veteran: verified by the program


@dataclass(frozen=True)
class Service:
    """What ranking needs of a directory service (HSDS ``service``)."""

    id: str
    agency_id: str
    program_category: str
    needs: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("en",)
    interpretation_services: bool = False
    eligibility: Eligibility = field(default_factory=Eligibility)
    capacity_status: CapacityStatus = "capacity"
    status: str = "active"


@dataclass(frozen=True)
class MatchRequest:
    need: str
    program_category: str | None
    language: str | None = None
    postal_area: str | None = None
    age: int | None = None  # events carry no birth dates: usually unknown
    known_facts: frozenset[str] = frozenset()  # requirements known to be met


class LanguageWeights(Rule):
    spoken: float
    interpretation: float
    unknown: float  # the patient's language is not known here


class AreaWeights(Rule):
    served: float
    everywhere: float  # the program has no service area
    unknown: float  # the patient's area is not known here


class Weights(RulesFile):
    """How eligible programs are ordered: points per fit, minus a little per unverified requirement."""

    language: LanguageWeights
    capacity: dict[CapacityStatus, float]
    area: AreaWeights
    quality: float
    exact_category: float
    unverified_requirement: float
    excluded_capacity: frozenset[CapacityStatus]


@dataclass(frozen=True)
class Ranked:
    service: Service
    score: float


def primary_language(tag: str) -> str:
    return tag.split("-")[0].lower()


def area_matches(postal_area: str, prefixes: Iterable[str]) -> bool:
    area = postal_area.replace(" ", "").upper()
    return any(area.startswith(p.upper()) or p.upper().startswith(area) for p in prefixes)


def addresses(service: Service, request: MatchRequest) -> bool:
    if request.program_category is not None:
        return service.program_category == request.program_category
    return request.need in service.needs


def language_fit(service: Service, language: str | None) -> LanguageFit | None:
    """spoken, interpretation or unknown; None when the patient could not be served in their language."""
    if language is None:
        return "unknown"
    if primary_language(language) in {primary_language(s) for s in service.languages}:
        return "spoken"
    return "interpretation" if service.interpretation_services else None


def area_fit(service: Service, postal_area: str | None) -> AreaFit | None:
    if not service.eligibility.postal_prefixes:
        return "everywhere"
    if postal_area is None:
        return "unknown"  # the patient's area is not known here yet: do not exclude on it
    return "served" if area_matches(postal_area, service.eligibility.postal_prefixes) else None


def age_fits(service: Service, age: int | None) -> bool:
    e = service.eligibility
    if age is None:
        return True
    return (e.min_age is None or age >= e.min_age) and (e.max_age is None or age <= e.max_age)


def ineligible(service: Service, request: MatchRequest, weights: Weights) -> Ineligibility | None:
    """Why the program cannot take this patient, or None when it can (whatever the need asked)."""
    if service.status != "active":
        return "inactive"
    if service.capacity_status in weights.excluded_capacity:
        return "not-taking-referrals"
    if not age_fits(service, request.age):
        return "age"
    if language_fit(service, request.language) is None:
        return "language"
    if area_fit(service, request.postal_area) is None:
        return "outside-area"
    return None


def rank(
    request: MatchRequest,
    services: Iterable[Service],
    weights: Weights,
    quality: Mapping[str, Quality] | None = None,
    *,
    exclude: Collection[str] = (),
) -> list[Ranked]:
    """The eligible services for the request, best first."""
    quality = quality or {}
    ranked: list[Ranked] = []
    for s in services:
        if s.id in exclude or not addresses(s, request) or ineligible(s, request, weights):
            continue
        language, area = language_fit(s, request.language), area_fit(s, request.postal_area)
        assert language is not None and area is not None  # eligible: both fit
        unverified = len(set(s.eligibility.requirements) - request.known_facts)
        score = (
            getattr(weights.language, language)
            + weights.capacity.get(s.capacity_status, 0.0)
            + getattr(weights.area, area)
            + weights.quality * quality.get(s.id, NO_HISTORY).score()
            + (weights.exact_category if s.program_category == request.program_category else 0.0)
            - weights.unverified_requirement * unverified
        )
        ranked.append(Ranked(s, round(score, 4)))
    return sorted(ranked, key=lambda r: (-r.score, r.service.id))
