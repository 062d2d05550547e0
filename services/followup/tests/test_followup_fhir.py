"""followup's FHIR mappers, pure: every follow-up and work-queue task, in every status and of every kind
the rules know, validates as a FHIR Task (``fhir.resources``, R4B: the nearest to R4 it ships); statuses
map onto FHIR's with careloop's own kept; only what followup serves is referenced literally."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import get_args

from fhir.resources.R4B import get_fhir_model_class

from careloop_shared.contracts import TaskOpened
from careloop_shared.rules import load_rules
from followup.domain.follow_up import ARRANGED_CONTACT, PLAN_CADENCE, REFERRAL_CHECK_IN, SERVICE_CHECK_IN
from followup.domain.rules import PRIORITIES
from followup.domain.scheduling import new_follow_up
from followup.domain.task_rules import TASK_RULES_FILE, TaskRules
from followup.fhir import resources
from followup.fhir.resources import FOLLOW_UP_STATUS, STAFF, TASK_STATUS, TASK_TYPE, statuses_of
from followup.schemas import Status
from followup.tasks.store import TASK_COLUMNS

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PATIENT_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
TASK_RULES = load_rules(TaskRules, TASK_RULES_FILE)
REASONS = (PLAN_CADENCE, REFERRAL_CHECK_IN, SERVICE_CHECK_IN, ARRANGED_CONTACT)
STATUSES = get_args(Status)
OUTCOME = {"attempt": 2, "reached": True, "barriers": ["transportation", "cost"], "next_step": "reassess"}


def valid(resource: dict) -> dict:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def follow_up_row(rules, reason: str, status: str, priority: str = "high", assignee: str | None = "cm-ana"):
    row = new_follow_up(
        rules,
        AT - timedelta(days=1),
        patient_id=PATIENT_ID,
        agency_id="agency-a",
        reason=reason,
        priority=priority,
        due_at=AT,
        plan_id=uuid.uuid4() if reason == PLAN_CADENCE else None,
        referral_id=uuid.uuid4() if reason in (REFERRAL_CHECK_IN, SERVICE_CHECK_IN) else None,
        purpose="plan-review" if reason == ARRANGED_CONTACT else None,
    )
    done = status == "completed"
    return {**row, "status": status, "completed_at": AT if done else None, "assignee_id": assignee}


def task_row(kind, status: str = "open", **changes):
    about = {
        "assessment": "assessment_id",
        "follow-up": "follow_up_id",
        "referral": "referral_id",
        "intervention": "intervention_id",
    }
    row = dict.fromkeys(c.strip() for c in TASK_COLUMNS.split(","))
    closed = status in ("done", "cancelled")
    row |= {
        "id": uuid.uuid4(),
        "kind": kind.kind,
        "patient_id": PATIENT_ID,
        "agency_id": "agency-a",
        "cause_event_id": uuid.uuid4(),
        "cause_event_type": kind.opened_by.event,
        "priority": kind.priority,
        "status": status,
        "due_at": AT,
        "for_role": kind.for_role,
        "assignee_id": "cm-ana" if kind.for_role == "care-manager" else None,
        "assignee_role": kind.for_role,
        "instrument": "phq-9" if kind.about == "instrument" else None,
        "closed_at": AT if closed else None,
        "closed_reason": "not-needed" if closed else None,
        "created_at": AT - timedelta(hours=1),
        "updated_at": AT,
    }
    if kind.about in about:
        row[about[kind.about]] = uuid.uuid4()
    return row | changes


def test_every_follow_up_of_every_reason_status_and_priority_validates_as_a_fhir_task(rules):
    for reason in REASONS:
        for status in STATUSES:
            for priority in PRIORITIES:
                row = follow_up_row(rules, reason, status, priority)
                task = valid(resources.follow_up(row, OUTCOME))
                assert task["status"] == FOLLOW_UP_STATUS[status]
                assert task["businessStatus"]["coding"][0]["code"] == status
                assert (task["intent"], task["for"]) == ("plan", {"reference": f"Patient/{PATIENT_ID}"})
                assert task["code"]["text"] == reason
                assert task["meta"]["tag"] == [{"system": TASK_TYPE, "code": "follow-up"}]
                assert task["owner"] == {
                    "type": "Practitioner",
                    "identifier": {"system": STAFF, "value": "cm-ana"},
                }
                assert "output" in task if status == "completed" else "output" not in task


def test_an_arranged_contact_says_what_it_is_for_and_focuses_on_nothing_else(rules):
    task = valid(resources.follow_up(follow_up_row(rules, ARRANGED_CONTACT, "scheduled")))
    assert task["code"]["coding"][0]["code"] == ARRANGED_CONTACT
    assert task["reasonCode"]["coding"] == [{"system": resources.CONTACT_PURPOSE, "code": "plan-review"}]
    assert "focus" not in task
    assert "reasonCode" not in resources.follow_up(follow_up_row(rules, PLAN_CADENCE, "scheduled"))


def test_a_follow_up_is_sought_from_due_until_its_grace_ends_and_names_its_plan_or_referral_by_id(rules):
    row = follow_up_row(rules, PLAN_CADENCE, "due", assignee=None)
    task = valid(resources.follow_up(row))
    assert task["restriction"]["period"] == {"start": AT.isoformat(), "end": row["overdue_at"].isoformat()}
    assert "owner" not in task  # followup does not know the patient's care manager yet
    assert task["focus"]["identifier"]["value"] == str(row["plan_id"]) and "reference" not in task["focus"]
    check_in = resources.follow_up(follow_up_row(rules, REFERRAL_CHECK_IN, "scheduled"))
    assert check_in["focus"]["type"] == "ServiceRequest" and "reference" not in check_in["focus"]


def test_a_completed_follow_up_shows_its_last_coded_outcome_never_a_note(rules):
    row = follow_up_row(rules, PLAN_CADENCE, "completed") | {"reassessment": "worsening"}
    task = valid(resources.follow_up(row, {**OUTCOME, "note": "lives with her sister"}))
    shown = [
        (o["type"]["text"], o.get("valueBoolean", o.get("valueCodeableConcept", {}).get("text")))
        for o in task["output"]
    ]
    assert shown == [
        ("reached", True),
        ("barrier", "transportation"),
        ("barrier", "cost"),
        ("next-step", "reassess"),
        ("reassessment", "worsening"),
    ]
    assert "sister" not in str(task)
    assert task["executionPeriod"] == {"end": AT.isoformat()}


def test_every_kind_of_task_in_every_status_validates_and_points_at_what_it_is_about():
    for kind in TASK_RULES.kinds:
        for status in TASK_STATUS:
            row = task_row(kind, status)
            task = valid(resources.work_item(row))
            assert (task["status"], task["businessStatus"]["text"]) == (TASK_STATUS[status], status)
            assert task["code"]["text"] == kind.kind
            assert task["meta"]["tag"] == [{"system": TASK_TYPE, "code": "work-item"}]
            assert task["performerType"][0]["text"] == kind.for_role
            assert ("statusReason" in task) == (status in ("done", "cancelled"))
        focus = resources.work_item(task_row(kind)).get("focus")
        if kind.about == "follow-up":  # the follow-up is a Task served here: a literal reference
            assert focus == {
                "reference": f"Task/{task_row(kind)['follow_up_id']}"[:5] + focus["reference"][5:]
            }
        elif kind.about in ("assessment", "referral", "intervention"):
            assert set(focus) == {"type", "identifier"}
        else:
            assert focus is None


def test_a_to_do_says_what_it_is_for_and_focuses_on_nothing():
    [paperwork] = [k for k in TASK_RULES.kinds if k.kind == "reassess"]  # any kind about the patient
    row = task_row(paperwork) | {"kind": "to-do", "purpose": "paperwork", "cause_event_type": TaskOpened.type}
    task = valid(resources.work_item(row))
    assert task["code"]["text"] == "to-do" and "focus" not in task
    assert task["reasonCode"]["coding"] == [{"system": resources.TO_DO_PURPOSE, "code": "paperwork"}]
    assert valid(resources.work_item(task_row(paperwork)))["reasonCode"]["coding"][0]["code"] == (
        paperwork.opened_by.event
    )
    assert "requester" not in task and "requester" not in resources.work_item(task_row(paperwork))
    asked = valid(resources.work_item(row | {"opened_by": "sv-sam", "opened_by_role": "supervisor"}))
    assert asked["requester"] == resources.staff("sv-sam")  # added for the care manager by a supervisor


def test_a_task_for_a_role_has_no_owner_and_one_for_a_person_names_them_by_staff_id():
    [recruit] = [k for k in TASK_RULES.kinds if k.for_role == "admin"][:1]
    for_role = valid(resources.work_item(task_row(recruit)))
    assert "owner" not in for_role and for_role["performerType"][0]["coding"][0]["code"] == "admin"
    escalated = valid(resources.work_item(task_row(recruit, assignee_role="supervisor")))
    assert escalated["performerType"][0]["text"] == "supervisor"
    mine = valid(resources.work_item(task_row(TASK_RULES.kinds[0])))
    assert mine["owner"]["identifier"] == {"system": STAFF, "value": "cm-ana"}


def test_a_fhir_status_stands_for_the_careloop_statuses_that_map_onto_it():
    assert statuses_of("ready", FOLLOW_UP_STATUS) == ["scheduled", "due", "overdue"]
    assert statuses_of("ready", TASK_STATUS) == ["open"]
    assert statuses_of("in-progress", FOLLOW_UP_STATUS) == []
    assert statuses_of("completed", TASK_STATUS) == ["done"]
