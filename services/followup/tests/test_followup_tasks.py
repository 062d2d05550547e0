"""The task rules as data, and the pure decisions they drive: no store, no broker."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from careloop_shared.contracts import (
    AppointmentStatusChanged,
    FollowUpCadence,
    FollowUpDue,
    NetworkGapDetected,
    PlanUpdated,
    ReferralMade,
    ReferralOutcome,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.events import REGISTRY
from careloop_shared.rules import InvalidRulesFile, load_rules
from careloop_shared.testing.keys import FakePatientKeys
from followup.config import FollowupContext, FollowupSettings
from followup.domain.follow_up import Actor
from followup.domain.task_facts import facts_of
from followup.domain.task_rules import ABOUT_BY_EVENT, OWN_EVENTS, TASK_RULES_FILE, TaskRules
from followup.domain.tasks import IllegalMove, change_status, resolutions, task_id, tasks_to_open

T = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
RULES = load_rules(TaskRules, TASK_RULES_FILE)


def test_the_shipped_rules_name_every_kind_of_work_with_its_priority_and_owner():
    kinds = {k.kind: (k.priority, k.for_role, k.escalate_after_minutes) for k in RULES.kinds}
    assert kinds["safety-check"] == ("stat", "care-manager", 60)
    assert kinds["recruit-provider"][1] == "admin"
    assert set(kinds) == {
        "safety-check",
        "do-instrument",
        "follow-up",
        "reassess",
        "chase-referral",
        "re-refer",
        "missed-appointment",
        "confirm-attendance",
        "discuss-alternatives",
        "recruit-provider",
    }
    assert kinds["missed-appointment"] == ("high", "care-manager", 4320)
    assert kinds["confirm-attendance"] == ("routine", "care-manager", 4320)
    assert RULES.priorities == ("stat", "urgent", "high", "routine")


def own_rules(tmp_path, change):
    rules = json.loads(TASK_RULES_FILE.read_text())
    change(rules)
    path = tmp_path / "our-task-rules.json"
    path.write_text(json.dumps(rules))
    return path


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            lambda r: r["kinds"][0]["opened_by"].update(event="careloop.intake.patient_sneezed.v1"),
            "unknown event",
        ),
        (lambda r: r["kinds"][4].update(about="assessment"), "is not about a assessment"),
        (lambda r: r["kinds"][0].update(priority="asap"), "unknown priority asap"),
        (lambda r: r["kinds"].append(r["kinds"][0]), "a kind is listed twice"),
        (
            lambda r: r["kinds"][5]["opened_by"].update(urgent_flags=["x"]),
            "urgent_flags apply to PatientAssessed",
        ),
        (
            lambda r: r["kinds"][4]["opened_by"].update(not_delivered=True),
            "not_delivered goes with to_statuses",
        ),
        (
            lambda r: r["kinds"][0]["opened_by"].update(deadlines=["response"]),
            "deadlines apply to ReferralOverdue only",
        ),
    ],
)
def test_a_rules_file_the_code_cannot_follow_stops_the_service_at_start_saying_where(tmp_path, change, says):
    with pytest.raises(InvalidRulesFile, match=says):
        load_rules(TaskRules, own_rules(tmp_path, change))


def test_an_organisation_s_own_task_rules_configure_the_use_cases(tmp_path, monkeypatch, clock):
    path = own_rules(tmp_path, lambda r: r["kinds"][0].update(due_after_minutes=30))
    monkeypatch.setenv("FOLLOWUP_TASK_RULES_FILE", str(path))
    ctx = FollowupContext.from_settings(FollowupSettings(), clock, keys=FakePatientKeys())
    assert ctx.tasks.kind("safety-check").due_after_minutes == 30


def test_a_follow_up_task_takes_its_priority_from_the_follow_up_and_falls_due_when_its_grace_ends():
    due = FollowUpDue(
        patient_id=uuid.uuid4(),
        agency_id="a",
        follow_up_id=uuid.uuid4(),
        reason="plan-cadence",
        due_at=T,
        priority=RiskLevel.moderate,
    )
    event_id = uuid.uuid4()
    facts = facts_of(due, event_id, T, due_base=T + timedelta(hours=72))
    [row] = tasks_to_open(RULES, facts, T, care_manager="cm-ana")
    assert (row["priority"], row["due_at"], row["escalate_at"], row["assignee_id"]) == (
        "routine",
        T + timedelta(hours=72),
        None,  # escalated by FollowUpOverdue, not by the clock
        "cm-ana",
    )
    assert (
        row["id"]
        == task_id("follow-up", str(event_id))
        == tasks_to_open(RULES, facts, T, care_manager=None)[0]["id"]
    )


def _moved(to_status, outcome=None):
    return ReferralStatusChanged(
        patient_id=uuid.uuid4(),
        agency_id="a",
        referral_id=uuid.uuid4(),
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        from_status="in-progress",
        to_status=to_status,
        by_agency_id="b",
        by_party="target",
        reason="unable-to-contact" if to_status == "failed" else None,
        outcome=outcome,
        changed_at=T,
    )


@pytest.mark.parametrize(
    ("to_status", "outcome", "opens"),
    [
        ("failed", None, True),
        ("rejected", None, True),
        ("completed", ReferralOutcome(service_delivered=False, reason="service-not-obtained"), True),
        ("completed", ReferralOutcome(service_delivered=True), False),
        ("completed", ReferralOutcome(enrollment_status="enrolled"), False),
        ("cancelled", None, False),  # the referring agency withdrew it: its own decision
    ],
)
def test_a_referral_ended_without_the_service_opens_a_re_refer_task(to_status, outcome, opens):
    facts = facts_of(_moved(to_status, outcome), uuid.uuid4(), T)
    kinds = [row["kind"] for row in tasks_to_open(RULES, facts, T, care_manager="cm-ana")]
    assert kinds == (["re-refer"] if opens else [])


def test_a_re_route_is_about_the_referral_it_replaces_and_a_gap_is_read_on_the_cloudevents_clock():
    replaced = uuid.uuid4()
    made = _made(replaces_referral_id=replaced)
    facts = facts_of(made, uuid.uuid4(), T)
    assert facts.about["referral"] == str(replaced)
    assert {(r["kind"], r["any_time"]) for r in resolutions(RULES, facts)} == {
        ("re-refer", True),
        ("recruit-provider", False),
    }
    gap = NetworkGapDetected(
        patient_id=made.patient_id,
        agency_id="a",
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        need="n",
        program_category=None,
        postal_area=None,
        language=None,
        detected_at=T - timedelta(days=9),
    )
    assert facts_of(gap, uuid.uuid4(), T).at == T


def test_a_resolution_is_kept_only_where_its_cause_can_be_heard_after_it():
    """A cause on the resolver's own topic comes in order (a patient's events on one topic are heard as
    they were published), and one followup publishes is tracked as it is published: neither can come
    late, so only the resolutions of causes heard on other topics are kept."""
    kept = {(k.kind, r.event) for k in RULES.kinds for r in k.resolved_by if k.remembers(r.event)}
    assert kept == {
        ("chase-referral", ReferralStatusChanged.type),  # the overdue is referral's, on its own topic
        ("re-refer", ReferralMade.type),  # the rejection is a status change
        ("missed-appointment", ReferralStatusChanged.type),  # the appointment is on its own topic
        ("confirm-attendance", AppointmentStatusChanged.type),  # the overdue is on referral's own topic
        ("discuss-alternatives", PlanUpdated.type),
        ("recruit-provider", ReferralMade.type),  # the gap is on its own topic
    }
    early = {k.kind for k in RULES.kinds if k.resolved_early}
    assert early == {
        "chase-referral",
        "re-refer",
        "missed-appointment",
        "confirm-attendance",
        "discuss-alternatives",
        "recruit-provider",
    }
    made = resolutions(RULES, facts_of(_made(), uuid.uuid4(), T))
    assert [(r["kind"], RULES.remembers(r)) for r in made] == [("recruit-provider", True)]


def test_followup_s_own_events_are_every_event_it_reads_that_it_publishes():
    published_here = {t for t in ABOUT_BY_EVENT if REGISTRY[t].source == "/careloop/followup"}
    assert OWN_EVENTS == published_here


def _made(**changes) -> ReferralMade:
    fields = {
        "patient_id": uuid.uuid4(),
        "agency_id": "a",
        "referral_id": uuid.uuid4(),
        "plan_id": uuid.uuid4(),
        "intervention_id": uuid.uuid4(),
        "need": "food-insecurity",
        "program_id": "food-bank-2",
        "receiving_agency_id": "agency-food",
        "status": "requested",
        "response_due_at": T,
    }
    return ReferralMade(**(fields | changes))


def test_only_a_plan_version_made_for_a_chosen_alternative_resolves_a_discussion():
    def plan(reason):
        return PlanUpdated(
            patient_id=uuid.UUID(int=1),
            agency_id="a",
            plan_id=uuid.uuid4(),
            version=2,
            status="active",
            risk_level=RiskLevel.low,
            goals=[],
            interventions=[],
            follow_up=FollowUpCadence(every_days=30, priority=RiskLevel.low),
            reason=reason,
        )

    assert resolutions(RULES, facts_of(plan("assessment"), uuid.uuid4(), T)) == []
    [resolution] = resolutions(RULES, facts_of(plan("alternative-chosen"), uuid.uuid4(), T))
    assert (resolution["kind"], resolution["subject"], resolution["resolved_at"]) == (
        "discuss-alternatives",
        "",
        T,
    )


@pytest.mark.parametrize(
    ("status", "to", "allowed"),
    [
        ("open", "in-progress", True),
        ("open", "done", True),
        ("open", "cancelled", True),
        ("in-progress", "done", True),
        ("in-progress", "cancelled", True),
        ("in-progress", "in-progress", False),
        ("in-progress", "open", False),
        ("done", "cancelled", False),
        ("cancelled", "in-progress", False),
    ],
)
def test_a_task_moves_open_in_progress_done_or_cancelled_and_never_back(status, to, allowed):
    task = {
        "id": uuid.uuid4(),
        "patient_id": uuid.uuid4(),
        "agency_id": "a",
        "status": status,
        "assignee_id": "cm-ana",
        "assignee_role": "care-manager",
    }
    by = Actor("cm-ana", "care-manager")
    if allowed:
        changes, announcement = change_status(RULES, task, to, None, by, T)
        assert changes["status"] == to and announcement.event.to_status == to
        assert ("closed_by" in changes) == (to in ("done", "cancelled"))
    else:
        with pytest.raises(IllegalMove):
            change_status(RULES, task, to, None, by, T)
