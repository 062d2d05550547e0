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
    assert len({path for _, path in operations}) == 11
