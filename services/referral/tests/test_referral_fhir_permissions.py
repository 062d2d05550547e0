"""referral's ``/fhir/R4/`` routes and the permission each names. Every route of every service, these
included, is walked for every role by ``tests/test_permissions.py`` (refusals as OperationOutcomes,
audited)."""

from careloop_shared.auth import PEOPLE_ROLES, ROLES
from careloop_shared.permissions import load_matrix
from careloop_shared.testing import route_permissions
from referral.main import build_app


def _fhir_operations() -> dict[tuple[str, str], str]:
    return route_permissions(build_app(), "/fhir/R4/")


MATRIX = load_matrix()


def test_every_fhir_route_names_a_permission_the_matrix_knows():
    operations = _fhir_operations()
    assert set(operations.values()) <= set(MATRIX.permissions())
    assert (
        len({path for _, path in operations}) == 18
    )  # with the kernel's AuditEvent, each search by POST too


def test_referrals_are_for_their_parties_roles_and_the_directory_for_every_role():
    """What the matrix grants, as this service's FHIR routes use it (no new permission was needed)."""
    permissions = set(_fhir_operations().values())
    assert permissions == {"capabilities:read", "referral:read", "directory:read", "audit:read"}
    readers = {role for role in ROLES if MATRIX.allows(role, "referral:read")}
    assert readers == {"care-manager", "supervisor", "provider"}
    assert all(MATRIX.allows(role, "directory:read") for role in PEOPLE_ROLES)  # every person's role
