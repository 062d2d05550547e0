"""intake's ``/fhir/R4/`` routes and the permission each names. Every route of every service, these
included, is walked for every role by ``tests/test_permissions.py`` (refusals as OperationOutcomes,
audited)."""

from careloop_shared.permissions import load_matrix
from careloop_shared.testing import route_permissions
from intake.main import build_app


def _fhir_operations() -> dict[tuple[str, str], str]:
    return route_permissions(build_app(), "/fhir/R4/")


def test_every_fhir_route_names_a_permission_the_matrix_knows():
    operations = _fhir_operations()
    assert set(operations.values()) <= set(load_matrix().permissions())
    assert len({path for _, path in operations}) == 21  # 15, and each GET search by POST too


def test_the_questionnaires_are_read_by_the_roles_with_an_assessment_permission_and_no_other():
    app = build_app()
    operations = {**route_permissions(app, "/v1/"), **route_permissions(app, "/fhir/R4/")}
    paths = ("/fhir/R4/Questionnaire", "/fhir/R4/Questionnaire/{questionnaire_id}")
    [permission] = {operations[("get", p)] for p in paths}
    assert permission == operations[("get", "/v1/instruments")]  # the same forms, as FHIR
    matrix = load_matrix()
    readers = {role for role in matrix.roles if matrix.allows(role, permission)}
    assessing = {
        r for r, role in matrix.roles.items() if any(g.startswith("assessment:") for g in role.grants)
    }
    assert readers == assessing and readers
