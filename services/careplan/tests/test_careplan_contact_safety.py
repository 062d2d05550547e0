"""The plan's follow-up channel: the contact preference, and for an interpersonal-safety need only a
channel the patient marked safe. Pure: no store, broker or database."""

import uuid
from datetime import UTC, datetime

import pytest

from careloop_shared.rules import load_rules
from careplan.domain.contact_safety import InterpersonalSafety, follow_up_channel
from careplan.domain.planning import DEFAULT_LIBRARY, PlanInputs, PlanLibrary, draft_plan

LIBRARY = load_rules(PlanLibrary, DEFAULT_LIBRARY)
SAFETY = InterpersonalSafety(
    needs=["intimate-partner-violence"], safe_channel_order=["phone", "in-person", "text", "email"]
)
CHANNELS = {"do-not-contact": "in-person-only", "in-person": "in-person-only"}
IPV = ["food-insecurity", "intimate-partner-violence"]


def channel(preference, needs, safe, safety=SAFETY):
    return follow_up_channel(
        contact_preference=preference, needs=needs, safe_channels=safe, safety=safety, channels=CHANNELS
    )


@pytest.mark.parametrize(
    ("preference", "safe", "expected"),
    [
        ("text", ["phone", "text"], "text"),  # the preferred channel is safe
        ("text", ["email", "phone"], "phone"),  # else the first safe one in the library's order
        ("email", ["text", "in-person"], "in-person-only"),
        ("phone", ["email"], "email"),
        (None, ["phone"], "phone"),  # no preference: the default channel, when safe
        (None, ["text"], "text"),
        ("text", [], "in-person-only"),  # nothing safe
        ("text", None, "in-person-only"),  # not said: not safe
        ("do-not-contact", ["phone", "text"], "in-person-only"),  # do not contact wins
    ],
)
def test_an_interpersonal_safety_need_is_followed_up_only_through_a_channel_marked_safe(
    preference, safe, expected
):
    assert channel(preference, IPV, safe) == expected


@pytest.mark.parametrize("safe", [None, [], ["email"]])
@pytest.mark.parametrize(
    ("preference", "expected"), [("text", "text"), (None, "phone"), ("do-not-contact", "in-person-only")]
)
def test_without_such_a_need_safe_channels_change_nothing(preference, expected, safe):
    assert channel(preference, ["depression", "food-insecurity"], safe) == expected


def test_which_needs_count_and_the_order_are_the_librarys():
    stricter = SAFETY.model_copy(update={"needs": ["depression"], "safe_channel_order": ["text", "phone"]})
    assert channel("email", ["depression"], ["phone", "text"], stricter) == "text"
    assert channel("email", IPV, None, stricter) == "email"
    assert LIBRARY.interpersonal_safety.needs == ["intimate-partner-violence"]


NOW = datetime(2026, 11, 30, tzinfo=UTC)


def drafted(needs, preference=None, safe=None, language="en"):
    inputs = PlanInputs(
        uuid.uuid4(),
        needs,
        "high",
        preferred_language=language,
        contact_preference=preference,
        safe_channels=safe,
    )
    return draft_plan(LIBRARY, inputs, now=NOW)


def test_a_drafted_plan_with_intimate_partner_violence_uses_a_safe_channel_or_none():
    assert drafted(IPV, "text", ["phone", "text"]).follow_up.channel == "text"
    assert drafted(IPV, "text", ["in-person"]).follow_up.channel == "in-person-only"
    assert drafted(IPV, "email", None).follow_up.channel == "in-person-only"
    assert drafted(["intimate-partner-violence"], None, ["phone"]).follow_up.channel == "phone"


def test_a_drafted_plan_without_such_a_need_is_the_same_whatever_the_safe_channels():
    patient = uuid.uuid4()
    base = PlanInputs(patient, ["depression", "housing-instability"], "moderate", contact_preference="email")
    plans = [
        draft_plan(LIBRARY, PlanInputs(**{**base.__dict__, "safe_channels": safe}), now=NOW).stored()
        for safe in (None, [], ["phone"])
    ]
    assert plans[0] == plans[1] == plans[2]
    assert plans[0]["follow_up"]["channel"] == "email"
