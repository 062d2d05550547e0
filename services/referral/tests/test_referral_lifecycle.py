import pytest

from referral.domain.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    IncompleteChange,
    Outcome,
    Party,
    WrongParty,
    check_transition,
)

R, T = Party.requester, Party.target
BOTH = frozenset({R, T})
DELIVERED = Outcome(service_delivered=True, enrollment_status="enrolled")

LEGAL = [
    ("requested", "accepted", T),
    ("requested", "rejected", T),
    ("requested", "cancelled", R),
    ("requested", "cancelled", T),
    ("accepted", "in-progress", T),
    ("accepted", "on-hold", T),
    ("accepted", "completed", T),
    ("accepted", "failed", T),
    ("accepted", "cancelled", R),
    ("in-progress", "on-hold", T),
    ("on-hold", "in-progress", T),
    ("in-progress", "completed", T),
    ("in-progress", "failed", T),
    ("in-progress", "cancelled", R),
    ("on-hold", "completed", T),
    ("on-hold", "failed", T),
    ("on-hold", "cancelled", R),
    ("requested", "entered-in-error", R),
    ("completed", "entered-in-error", R),
    ("draft", "cancelled", R),
]


def _args(to: str) -> dict:
    return {
        "reason": "other" if to in ("rejected", "cancelled", "on-hold", "failed") else None,
        "outcome": DELIVERED if to == "completed" else None,
    }


@pytest.mark.parametrize(("current", "to", "party"), LEGAL)
def test_legal_transition_by_the_allowed_party(current, to, party):
    assert check_transition(current, to, frozenset({party}), **_args(to)) == party


@pytest.mark.parametrize(
    ("current", "to"),
    [
        ("requested", "completed"),
        ("requested", "in-progress"),
        ("rejected", "accepted"),
        ("completed", "in-progress"),
        ("cancelled", "requested"),
        ("accepted", "requested"),
        ("accepted", "rejected"),
        ("entered-in-error", "entered-in-error"),
        ("requested", "made-up"),
    ],
)
def test_illegal_transition_is_refused_whoever_asks(current, to):
    with pytest.raises(IllegalTransition):
        check_transition(current, to, BOTH, **_args(to))


@pytest.mark.parametrize(
    ("current", "to", "party", "message"),
    [
        ("requested", "accepted", R, "only the receiving agency may set accepted"),
        ("requested", "rejected", R, "only the receiving agency may set rejected"),
        ("accepted", "completed", R, "only the receiving agency may set completed"),
        ("in-progress", "on-hold", R, "only the receiving agency may set on-hold"),
        ("requested", "entered-in-error", T, "only the referring agency may set entered-in-error"),
        ("draft", "cancelled", T, "only the referring agency may set cancelled"),
    ],
)
def test_wrong_party_is_refused_with_who_may(current, to, party, message):
    with pytest.raises(WrongParty, match=message):
        check_transition(current, to, frozenset({party}), **_args(to))


@pytest.mark.parametrize(
    ("current", "to"),
    [("requested", "rejected"), ("requested", "cancelled"), ("accepted", "on-hold"), ("accepted", "failed")],
)
def test_reason_is_required_for_rejected_cancelled_on_hold_and_failed(current, to):
    with pytest.raises(IncompleteChange, match="reason is required") as caught:
        check_transition(current, to, BOTH, reason=None, outcome=None)
    assert caught.value.field == "reason"


def test_reason_must_come_from_the_vocabulary():
    with pytest.raises(IncompleteChange, match="not a known code"):
        check_transition("requested", "rejected", BOTH, reason="they were rude", outcome=None)


@pytest.mark.parametrize(
    "outcome",
    [None, Outcome(), Outcome(service_delivered=False), Outcome(enrollment_status="maybe")],
)
def test_completing_needs_a_meaningful_outcome(outcome):
    with pytest.raises(IncompleteChange) as caught:
        check_transition("in-progress", "completed", BOTH, reason=None, outcome=outcome)
    assert caught.value.field == "outcome"


def test_completing_without_service_is_fine_when_it_says_why():
    outcome = Outcome(service_delivered=False, reason="client-declined")
    assert check_transition("accepted", "completed", BOTH, reason=None, outcome=outcome) == T


def test_terminal_statuses_lead_only_to_entered_in_error():
    for terminal in ("rejected", "cancelled", "completed", "failed"):
        assert {to for (frm, to) in TRANSITIONS if frm == terminal} == {"entered-in-error"}
