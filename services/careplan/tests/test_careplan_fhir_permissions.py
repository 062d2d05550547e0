"""careplan's ``/fhir/R4/`` routes and the permission each names. Every route of every service, these
included, is walked for every role by ``tests/test_permissions.py`` (refusals as OperationOutcomes,
audited)."""

from careloop_shared.testing import route_permissions
from careplan.main import build_app


def _fhir_operations() -> dict[tuple[str, str], str]:
    return route_permissions(build_app(), "/fhir/R4/")


EXPECTED = {
    "/fhir/R4/metadata": "capabilities:read",
    "/fhir/R4/CarePlan": "plan:read",
    "/fhir/R4/CarePlan/{care_plan_id}": "plan:read",
    "/fhir/R4/Goal": "plan:read",
    "/fhir/R4/Goal/{goal_id}": "plan:read",
    "/fhir/R4/CareTeam": "care-team:read",
    "/fhir/R4/CareTeam/{care_team_id}": "care-team:read",
    "/fhir/R4/ServiceRequest": "service-request:read",
    "/fhir/R4/ServiceRequest/{request_id}": "service-request:read",
    "/fhir/R4/AuditEvent": "audit:read",  # every FHIR service's audit log (the kernel's)
}
# Every search by POST too, under the GET search's permission (the kernel's fhir_searches).
EXPECTED |= {
    f"{path}/_search": p for path, p in EXPECTED.items() if "{" not in path and "metadata" not in path
}


def test_the_fhir_routes_name_the_plan_permissions():
    assert {path: permission for (_, path), permission in _fhir_operations().items()} == EXPECTED
