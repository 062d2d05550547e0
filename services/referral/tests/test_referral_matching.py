import pytest

from careloop_shared.rules import load_rules
from referral.directory.store import service_of
from referral.domain.directory import DIRECTORY_FILE, SeedDirectory
from referral.domain.matching import (
    RANKING_FILE,
    WHY_NOT,
    Eligibility,
    MatchRequest,
    Service,
    Weights,
    ineligible,
    rank,
)
from referral.domain.quality import History, Quality

WEIGHTS = load_rules(Weights, RANKING_FILE)


def svc(id: str, **kw) -> Service:
    return Service(
        id=id, agency_id=f"agency-{id}", program_category=kw.pop("category", "food-assistance"), **kw
    )


def ids(request: MatchRequest, services, **kw) -> list[str]:
    return [r.service.id for r in rank(request, services, WEIGHTS, **kw)]


FOOD = MatchRequest("food-insecurity", "food-assistance", language="es", postal_area="941")


def test_a_program_speaking_the_patients_language_ranks_above_one_with_interpretation():
    services = [
        svc("a-interp", languages=("en",), interpretation_services=True),
        svc("b-spanish", languages=("es-MX",)),
    ]
    assert ids(FOOD, services) == ["b-spanish", "a-interp"]


def test_a_program_neither_speaking_nor_interpreting_the_language_is_not_eligible():
    assert ids(FOOD, [svc("english-only", languages=("en",))]) == []


def test_unknown_language_excludes_nobody():
    request = MatchRequest("food-insecurity", "food-assistance")
    assert ids(request, [svc("english-only", languages=("en",))]) == ["english-only"]


def test_a_program_outside_the_patients_area_is_not_eligible_and_one_serving_it_ranks_first():
    services = [
        svc("elsewhere", languages=("es",), eligibility=Eligibility(postal_prefixes=("100",))),
        svc("everywhere", languages=("es",)),
        svc("local", languages=("es",), eligibility=Eligibility(postal_prefixes=("94",))),
    ]
    assert ids(FOOD, services) == ["local", "everywhere"]


def test_unknown_patient_area_does_not_exclude_area_bound_programs():
    request = MatchRequest("food-insecurity", "food-assistance", language="es")
    services = [svc("local", languages=("es",), eligibility=Eligibility(postal_prefixes=("941",)))]
    assert ids(request, services) == ["local"]


def test_capacity_orders_programs_and_no_capacity_excludes():
    services = [
        svc("full", languages=("es",), capacity_status="no-capacity"),
        svc("waitlist", languages=("es",), capacity_status="waitlist"),
        svc("open", languages=("es",), capacity_status="capacity"),
        svc("assess", languages=("es",), capacity_status="additional-assessment-required"),
    ]
    assert ids(FOOD, services) == ["open", "assess", "waitlist"]


def test_age_eligibility_applies_only_when_the_age_is_known():
    adults = svc("adults", languages=("es",), eligibility=Eligibility(min_age=18, max_age=64))
    assert ids(FOOD, [adults]) == ["adults"]
    child = MatchRequest("food-insecurity", "food-assistance", language="es", age=10)
    assert ids(child, [adults]) == []


def test_other_categories_inactive_programs_and_excluded_ids_are_not_eligible():
    services = [
        svc("housing", languages=("es",), category="housing-assistance"),
        svc("closed", languages=("es",), status="temporarily closed"),
        svc("tried", languages=("es",)),
        svc("fine", languages=("es",)),
    ]
    assert ids(FOOD, services, exclude={"tried"}) == ["fine"]


def test_without_a_category_the_need_selects_programs():
    request = MatchRequest("food-insecurity", None, language="es")
    services = [svc("pantry", languages=("es",), needs=("food-insecurity",)), svc("other", languages=("es",))]
    assert ids(request, services) == ["pantry"]


def test_better_history_breaks_an_otherwise_even_match_and_ties_go_to_the_lower_id():
    services = [svc("b", languages=("es",)), svc("a", languages=("es",))]
    assert ids(FOOD, services) == ["a", "b"]
    good = Quality(History(sent=10, accepted=10, closed=10, completed=10, closed_with_outcome=10))
    assert ids(FOOD, services, quality={"b": good}) == ["b", "a"]


def test_unverified_program_requirements_lower_the_rank():
    services = [
        svc("medicaid-only", languages=("es",), eligibility=Eligibility(requirements=("medicaid",))),
        svc("z-open", languages=("es",)),
    ]
    assert ids(FOOD, services) == ["z-open", "medicaid-only"]


def test_ranking_is_a_pure_function_of_its_inputs():
    services = [svc(f"s{i}", languages=("es",)) for i in range(5)]
    assert rank(FOOD, services, WEIGHTS) == rank(FOOD, list(reversed(services)), WEIGHTS)


def test_ineligible_names_the_first_reason_a_program_cannot_take_the_patient():
    cases = {
        "inactive": svc("x", languages=("es",), status="inactive"),
        "not-taking-referrals": svc("x", languages=("es",), capacity_status="no-capacity"),
        "language": svc("x", languages=("en",)),
        "outside-area": svc("x", languages=("es",), eligibility=Eligibility(postal_prefixes=("100",))),
        "age": svc("x", languages=("es",), eligibility=Eligibility(max_age=17)),
    }
    adult = MatchRequest("food-insecurity", "food-assistance", language="es", postal_area="941", age=40)
    assert {why: ineligible(s, adult, WEIGHTS) for why, s in cases.items()} == {w: w for w in cases}
    assert set(WHY_NOT) == set(cases)
    # Whatever the need asked: a program chosen by hand in another category may still take the patient.
    other = svc("x", languages=("es",), category="case-management")
    assert ineligible(other, FOOD, WEIGHTS) is None and ids(FOOD, [other]) == []


SEED = load_rules(SeedDirectory, DIRECTORY_FILE)
# Services careplan approves under medical necessity become interventions in these categories.
CLINICAL = ("home-health", "medical-equipment", "specialty-care", "community-health-workers", "telehealth")


def test_seed_directory_is_valid_and_covers_each_plan_library_category():
    categories = {s.program_category for s in SEED.services}
    assert {
        "behavioral-health",
        "food-assistance",
        "housing-assistance",
        "transportation",
        "case-management",
        *CLINICAL,
        "primary-care",
    } <= categories
    orgs = {o.id for o in SEED.organizations}
    assert all(s.organization_id in orgs for s in SEED.services)
    assert len({s.id for s in SEED.services}) == len(SEED.services)


@pytest.mark.parametrize("category", [*CLINICAL, "primary-care"])
def test_an_approved_clinical_service_is_matched_to_a_seeded_program_of_its_category(category):
    by_agency = {o.id: o.agency_id for o in SEED.organizations}
    services = [
        service_of(
            {
                **s.model_dump(exclude={"capacity"}),
                "eligibility": s.eligibility.model_dump(),
                "capacity_status": s.capacity.status,
                "receiving_agency_id": by_agency[s.organization_id],
            }
        )
        for s in SEED.services
    ]
    for language in ("en", "es", "so"):  # a language no program speaks: interpreted
        request = MatchRequest("clinical-service", category, language=language, postal_area="94110")
        [best, *_] = rank(request, services, WEIGHTS)
        assert best.service.program_category == category and "clinical-service" in best.service.needs
