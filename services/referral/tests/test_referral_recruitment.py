"""The recruitment pipeline's rules: legal moves, and what an activated prospect becomes."""

import pytest

from careloop_shared.errors import Invalid
from referral.domain.recruitment import (
    DECLINE_REASONS,
    FINAL,
    MOVES,
    IllegalMove,
    Prospect,
    check_move,
    directory_entries,
    service_id,
)


def prospect(**fields) -> Prospect:
    base = {
        "id": "sunrise",
        "name": "Sunrise",
        "agency_id": "agency-sunrise",
        "program_categories": ["telehealth"],
    }
    return Prospect.model_validate({**base, **fields})


def test_a_prospect_moves_forward_one_step_at_a_time_or_is_declined_before_it_is_active():
    legal = {(a, b) for a, moves in MOVES.items() for b in moves}
    assert legal == {
        ("prospect", "contacted"),
        ("contacted", "onboarding"),
        ("onboarding", "active"),
        ("prospect", "declined"),
        ("contacted", "declined"),
        ("onboarding", "declined"),
    }
    assert FINAL == {"active", "declined"}
    for current in MOVES:
        for to in MOVES:
            if (current, to) in legal:
                check_move(current, to, reason="other" if to == "declined" else None)
            else:
                with pytest.raises(IllegalMove):
                    check_move(current, to, reason="other" if to == "declined" else None)


@pytest.mark.parametrize(
    ("to", "reason"), [("declined", None), ("declined", "bored"), ("contacted", "other")]
)
def test_only_a_decline_takes_a_reason_and_it_must_be_a_known_code(to, reason):
    assert "not-interested" in DECLINE_REASONS
    with pytest.raises(Invalid) as refused:
        check_move("prospect", to, reason=reason)
    assert refused.value.problems[0]["loc"] == ["body", "reason"]


def test_an_activated_prospect_becomes_an_organisation_with_one_program_per_category():
    org, services = directory_entries(
        prospect(
            program_categories=["telehealth", "primary-care", "telehealth"],
            needs=["clinical-service"],
            languages=["en", "so"],
            interpretation_services=True,
            postal_prefixes=["100"],
            email="hello@sunrise.example.org",
        )
    )
    assert (org.id, org.agency_id, org.name, org.email) == (
        "sunrise",
        "agency-sunrise",
        "Sunrise",
        "hello@sunrise.example.org",
    )
    assert [(s.id, s.program_category) for s in services] == [
        ("sunrise-telehealth", "telehealth"),
        ("sunrise-primary-care", "primary-care"),
    ]
    [first, _] = services
    assert (first.needs, first.languages, first.interpretation_services) == (
        ["clinical-service"],
        ["en", "so"],
        True,
    )
    assert (first.eligibility.postal_prefixes, first.capacity.status, first.status) == (
        ["100"],
        "capacity",
        "active",
    )
    assert first.contact.email == "hello@sunrise.example.org"


def test_a_prospect_is_activated_only_with_its_agency_and_ids_that_fit_the_directory():
    with pytest.raises(Invalid, match="agency_id"):
        directory_entries(prospect(agency_id=None))
    long_id = "a" * 79
    assert len(service_id(long_id, "telehealth")) <= 80
    with pytest.raises(Invalid, match="too long"):
        directory_entries(prospect(id=long_id, program_categories=["telehealth", "primary-care"]))
