"""What the patient forms offer to choose from matches what the services accept (their rules and domain
files, read as text: the workspace imports no service); the plan's diff reads as sentences; and the
patient pages' addresses carry ids, offsets and codes only."""

import ast
import json
import re
import uuid
from pathlib import Path

from fastapi.routing import APIRoute

from careloop_shared.logging import PHI_KEYS
from workspace import (
    assessment,
    followup_actions,
    necessity,
    patient,
    plan_actions,
    referral_actions,
    registration,
    team_actions,
)
from workspace.choices import form_choices
from workspace.plan_diff import DiffLine, diff_lines, names_in

SERVICES = Path(__file__).resolve().parents[2]
ROUTERS = (
    registration,
    patient,
    assessment,
    plan_actions,
    team_actions,
    necessity,
    referral_actions,
    followup_actions,
)


def rules(path: str) -> dict:
    return json.loads((SERVICES / path).read_text())


def literal_of(path: str, name: str) -> object:
    """A module-level constant of a service's source, read without importing it (frozensets as sets)."""
    tree = ast.parse((SERVICES / path).read_text())
    for node in tree.body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            source = ast.unparse(node.value).replace("frozenset(", "(")
            return ast.literal_eval(source)
    raise AssertionError(f"{name} not in {path}")


def test_the_choices_mirror_the_services_rules():
    choices = form_choices()
    directory = rules("referral/referral/rules/directory.v1.json")["services"]
    library = rules("careplan/careplan/rules/plan-library.v1.json")
    follow_up = rules("followup/followup/rules/follow-up-rules.v1.json")
    assert choices.program_categories == sorted({s["program_category"] for s in directory})
    assert choices.needs == sorted(set(library["needs"]) | {n for s in directory for n in s["needs"]})
    assert choices.stated_needs == sorted(library["needs"])
    assert {lang for s in directory for lang in s["languages"]} <= set(choices.languages)
    necessity_services = rules("careplan/careplan/rules/necessity-criteria.v1.json")["services"]
    assert choices.services == {code: s["title"] for code, s in necessity_services.items()}
    assert choices.goal_progress == follow_up["progress"]
    assert choices.barriers == follow_up["barriers"]
    assert choices.next_steps == follow_up["next_steps"]
    assert choices.reschedule_reasons == follow_up["reschedule_reasons"]
    arranged = follow_up["arranged_contact"]
    assert choices.arranged_contact.model_dump() == {
        k: arranged[k] for k in ("purposes", "channels", "always_allowed", "cancel_reasons")
    }
    task_rules = rules("followup/followup/rules/tasks.v1.json")
    assert choices.task_close_reasons == task_rules["close_reasons"]
    assert choices.to_do.model_dump() == {
        k: task_rules["to_do"][k] for k in ("purposes", "priorities", "furthest_days")
    }


def test_the_plan_moves_offered_are_careplans():
    transitions = literal_of("careplan/careplan/domain/versions.py", "PLAN_TRANSITIONS")
    assert isinstance(transitions, dict)
    offered = form_choices().plan_transitions
    assert {k: set(v) for k, v in offered.items()} == {k: set(v) for k, v in transitions.items()}


def test_the_goal_and_intervention_moves_offered_are_careplans():
    choices = form_choices()
    for name, offered in (
        ("ACTIVITY_TRANSITIONS", choices.activity_transitions),
        ("GOAL_TRANSITIONS", choices.goal_transitions),
    ):
        transitions = literal_of("careplan/careplan/domain/versions.py", name)
        assert isinstance(transitions, dict)
        assert {k: set(v) for k, v in offered.items()} == {k: set(v) for k, v in transitions.items()}, name
    source = (SERVICES / "careplan/careplan/domain/versions.py").read_text()
    [literal] = re.findall(r"^GoalAchievement = Literal\[(.*?)\]$", source, re.M | re.S)
    assert choices.goal_achievements == ast.literal_eval(f"[{literal}]")


def test_a_diff_reads_as_added_changed_and_removed_lines():
    goal = {
        "id": "g1",
        "need": "depression",
        "description": "depression-symptoms-reduced",
        "target": "PHQ-9 below 10",
    }
    ride = {
        "id": "i1",
        "need": "transportation-insecurity",
        "kind": "referral",
        "program_category": "transportation",
        "priority": "urgent",
    }
    diff = {
        "plan": {"status": {"from": "draft", "to": "active"}, "risk_level": {"from": "low", "to": "high"}},
        "goals": {"added": [goal], "changed": [], "removed": []},
        "interventions": {
            "added": [],
            "changed": [
                {
                    "id": "i1",
                    "fields": {
                        "status": {"from": "not-started", "to": "scheduled"},
                        "due": {"from": None, "to": "2026-05-01T08:30:00+00:00"},
                    },
                }
            ],
            "removed": [{"id": "i2", "need": "food-insecurity", "kind": "education"}],
        },
    }
    assert diff_lines(diff, names_in({"goals": [goal], "interventions": [ride]})) == [
        DiffLine("changed", "Plan status changed from draft to active."),
        DiffLine("changed", "Risk level changed from low to high."),
        DiffLine("added", "Goal added: “Depression symptoms reduced”, target: PHQ-9 below 10."),
        DiffLine(
            "changed",
            "Intervention “referral for transportation insecurity (transportation)” changed:"
            " status from not started to scheduled; due from none to 2026-05-01.",
        ),
        DiffLine("removed", "Intervention removed: “education for food insecurity”."),
    ]


def test_a_change_to_something_no_longer_in_the_plan_is_named_by_its_id():
    diff = {
        "goals": {
            "added": [],
            "changed": [{"id": "abcdef12-0000", "fields": {"target": {"from": "a", "to": "b"}}}],
            "removed": [],
        }
    }
    assert diff_lines(diff, {}) == [DiffLine("changed", "Goal goal abcdef12 changed: target from a to b.")]


OFFSETS = {
    "consents",
    "assessments",
    "members",
    "versions",
    "contributions",
    "requests",
    "referrals",
    "follow_ups",
    "tasks",
    "timeline",
}
ALLOWED_QUERY = OFFSETS | {"from", "to", "instrument"}  # offsets, plan version numbers, an instrument code


def test_the_patient_pages_addresses_carry_ids_offsets_and_codes_only():
    for module in ROUTERS:
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            for param in route.dependant.path_params:
                assert param.name.endswith("_id"), f"{route.path}: {param.name}"
                assert param.field_info.annotation is uuid.UUID
            names = {p.alias for p in route.dependant.query_params}
            for dependency in route.dependant.dependencies:
                names |= {p.alias for p in dependency.query_params}
            assert names <= ALLOWED_QUERY, f"{route.path} takes {names - ALLOWED_QUERY}"
            assert not names & PHI_KEYS
            if "POST" in route.methods:
                assert not names, f"{route.path}: a form's fields go in its body"
