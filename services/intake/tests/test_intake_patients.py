import pytest

from careloop_shared.contracts import ContactChannel
from intake.domain.care_manager import (
    CareManagerRules,
    NoCareManager,
    UnknownReason,
    check_reassignment_reason,
    responsible_at_registration,
)
from intake.domain.patients import contact_problems, normalised_name, postal_area, safe_channels

RULES = CareManagerRules(
    version="t",
    registering_roles_made_responsible=frozenset({"care-manager"}),
    reassignment_reasons=frozenset({"staff-leave"}),
)


def test_names_differing_only_in_accents_case_spacing_and_punctuation_share_a_key():
    assert normalised_name("José-María", "  de la Cruz ") == normalised_name("jose maria", "De La  Cruz")
    assert normalised_name("Ann", "Lee") != normalised_name("Anne", "Lee")


def test_postal_area_keeps_only_the_first_three_characters():
    assert postal_area("90210") == "902"
    assert postal_area("sw1a 1aa") == "SW1"
    assert postal_area(None) is None


def test_chosen_contact_needs_its_detail():
    assert contact_problems("text", None, None) == ["contact_preference text needs a phone number"]
    assert contact_problems("email", "555-0100", None) == ["contact_preference email needs an email address"]
    assert contact_problems("do-not-contact", None, None) == []


def test_safe_channels_are_kept_once_each_in_one_order_and_not_said_stays_not_said():
    assert safe_channels(["in-person", "text", "in-person"]) == [
        ContactChannel.text,
        ContactChannel.in_person,
    ]
    assert safe_channels([]) == []  # said: no channel is safe
    assert safe_channels(None) is None
    with pytest.raises(ValueError):
        safe_channels(["pigeon"])


def test_the_care_manager_named_at_registration_is_responsible_else_a_registering_care_manager():
    assert responsible_at_registration(RULES, "cm-bo", "sv-sam", "supervisor") == "cm-bo"
    assert responsible_at_registration(RULES, None, "cm-ana", "care-manager") == "cm-ana"
    with pytest.raises(NoCareManager) as refused:
        responsible_at_registration(RULES, None, "sv-sam", "supervisor")
    assert refused.value.problems == [
        {
            "loc": ["body", "care_manager_id"],
            "type": "missing",
            "msg": "a supervisor registering a patient names the responsible care manager",
        }
    ]


def test_a_reassignment_reason_is_one_of_the_codes_or_none():
    check_reassignment_reason(RULES, None)
    check_reassignment_reason(RULES, "staff-leave")
    with pytest.raises(UnknownReason):
        check_reassignment_reason(RULES, "felt-like-it")
