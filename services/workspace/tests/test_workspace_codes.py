"""The codes the supervisor's and provider's forms offer are the services' own: read from their rules and
domain files as text (the workspace imports no service), so a code renamed there fails here."""

import ast
import json
import re
import uuid
from pathlib import Path

from fastapi.routing import APIRoute

from workspace import codes, provider, recruitment, supervisor

SERVICES = Path(__file__).resolve().parents[2]


class _Sets(ast.NodeTransformer):
    """``frozenset({...})`` and ``frozenset()`` as set literals, so ``ast.literal_eval`` reads them."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if getattr(node.func, "id", "") == "frozenset":
            return node.args[0] if node.args else ast.Call(ast.Name("set", ast.Load()), [], [])
        return node


def constants(path: Path) -> dict[str, object]:
    """A module's top-level literal constants, frozensets read as sets."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            try:
                value = ast.literal_eval(_Sets().visit(node.value))
            except ValueError:
                continue
            if isinstance(target, ast.Name):
                found[target.id] = value
    return found


def test_reassignment_reasons_are_intakes():
    rules = json.loads((SERVICES / "intake/intake/rules/care-manager.v1.json").read_text())
    assert set(codes.REASSIGNMENT_REASONS) == set(rules["reassignment_reasons"])


def test_referral_reasons_and_outcomes_are_referrals():
    lifecycle = constants(SERVICES / "referral/referral/domain/lifecycle.py")
    offered = {*codes.REJECT_REASONS, *codes.HOLD_REASONS, *codes.FAILED_REASONS, *codes.WITHDRAW_REASONS}
    assert offered <= lifecycle["REASONS"]
    assert set(codes.ENROLLMENT_STATUSES) == lifecycle["ENROLLMENT_STATUSES"]


def test_the_inbox_offers_only_moves_the_receiving_agency_may_make():
    source = (SERVICES / "referral/referral/domain/lifecycle.py").read_text()
    for current, moves in codes.PROVIDER_MOVES.items():
        for move in moves:
            assert f'("{current}", "{move}"): frozenset({{T}})' in source, (current, move)
    assert set(codes.PROVIDER_MOVES) == codes.OPEN_REFERRAL_STATUSES


def test_appointments_are_kept_where_referral_keeps_them_with_its_statuses():
    appointments = constants(SERVICES / "referral/referral/domain/appointments.py")
    assert codes.APPOINTMENT_REFERRALS == appointments["WORKED_ON"]
    assert codes.APPOINTMENT_ANSWERED_AFTER == appointments["ANSWERED_AFTER"]
    source = (SERVICES / "referral/referral/domain/appointments.py").read_text()
    assert '"booked": frozenset({"booked", "fulfilled", "noshow", "cancelled"})' in source
    assert set(codes.APPOINTMENT_OUTCOMES) == {"fulfilled", "noshow", "cancelled"}


def test_a_referral_is_offered_for_withdrawal_only_where_the_referring_agency_may_cancel_it():
    source = (SERVICES / "referral/referral/domain/lifecycle.py").read_text()
    for current in codes.WITHDRAWABLE:
        assert f'("{current}", "cancelled"): frozenset({{R' in source, current
    lifecycle = constants(SERVICES / "referral/referral/domain/lifecycle.py")
    assert not codes.WITHDRAWABLE & lifecycle["TERMINAL"]


def test_prospect_moves_and_decline_reasons_are_referrals():
    recruiting = constants(SERVICES / "referral/referral/domain/recruitment.py")
    assert set(codes.DECLINE_REASONS) == recruiting["DECLINE_REASONS"]
    assert {s: set(m) for s, m in codes.PROSPECT_MOVES.items()} == {
        s: set(m) for s, m in recruiting["MOVES"].items()
    }


def test_these_pages_take_pseudonymous_ids_in_paths_and_offsets_only_in_query_strings():
    offsets = {"caseload", "tasks", "queue", "gaps", "prospects", "referrals"}
    offsets |= {"view"}  # the inbox's open or closed referrals: a word of ours, no patient's
    for router in (supervisor.router, recruitment.router, provider.router):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for param in route.dependant.path_params:
                assert param.name.endswith("_id") and param.field_info.annotation is uuid.UUID, route.path
            names = {p.name for p in route.dependant.query_params}
            assert names <= offsets, route.path
            if "POST" in route.methods:
                assert not names, f"{route.path}: a form's fields go in its body"


def test_the_capacity_statuses_are_referrals():
    source = (SERVICES / "referral/referral/domain/matching.py").read_text()
    [literal] = re.findall(r"^CapacityStatus = Literal\[(.*)\]$", source, re.M)
    assert set(codes.CAPACITY_STATUSES) == set(ast.literal_eval(f"[{literal}]"))


def test_a_goal_in_the_patient_s_own_words_is_careplans_kind_and_its_librarys_description():
    plan = constants(SERVICES / "careplan/careplan/domain/plan.py")
    library = json.loads((SERVICES / "careplan/careplan/rules/plan-library.v1.json").read_text())
    assert codes.PERSONAL_GOAL == plan["PERSONAL_GOAL"] == library["personal_goal"]["description"]
    assert codes.GOAL_REWORDED == plan["GOAL_REWORDED"]
    paging = (SERVICES.parent / "shared/careloop_shared/http.py").read_text()
    assert f"limit: int = Field(50, ge=1, le={codes.OWN_WORDS_SHOWN})" in paging
