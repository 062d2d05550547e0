"""followup's ``/fhir/R4/`` routes and the permission each names. Every route of every service, these
included, is walked for every role by ``tests/test_permissions.py`` (refusals as OperationOutcomes,
audited)."""

from careloop_shared.audit_api import OUTCOME_DOCUMENTATION
from careloop_shared.auth import issue_token
from careloop_shared.fhir import FHIR_JSON
from careloop_shared.fhir_dates import DOCUMENTATION as DATE_DOCUMENTATION
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import client_of, route_permissions
from followup.main import build_app


def _fhir_operations() -> dict[tuple[str, str], str]:
    return route_permissions(build_app(), "/fhir/R4/")


def test_the_openapi_document_lists_the_fhir_routes_with_their_permissions():
    listed = _fhir_operations()
    assert listed == {
        ("get", "/fhir/R4/metadata"): "capabilities:read",
        ("get", "/fhir/R4/Task/{task_id}"): "task:read",
        ("get", "/fhir/R4/Task"): "task:read",
        ("get", "/fhir/R4/AuditEvent"): "audit:read",  # every FHIR service's audit log (the kernel's)
        ("post", "/fhir/R4/Task/_search"): "task:read",  # each search by POST too
        ("post", "/fhir/R4/AuditEvent/_search"): "audit:read",
    }


async def test_the_capability_statement_names_task_read_and_its_searches():
    app = build_app()
    token = issue_token(DEV_JWT_SECRET, agency="agency-a", role="analyst", subject="s")
    async with client_of(app, "http://f") as client:
        r = await client.get("/fhir/R4/metadata", headers={"Authorization": f"Bearer {token}"})
    assert (r.status_code, r.headers["content-type"]) == (200, FHIR_JSON)
    [rest] = r.json()["rest"]
    assert rest["resource"] == [
        {
            "type": "Task",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [
                {"name": "patient", "type": "reference"},
                {"name": "owner", "type": "reference"},
                {"name": "status", "type": "token"},
            ],
        },
        {
            "type": "AuditEvent",
            "interaction": [{"code": "search-type"}],
            "searchParam": [
                {"name": "patient", "type": "reference"},
                {"name": "altid", "type": "token"},
                {"name": "date", "type": "date", "documentation": DATE_DOCUMENTATION},
                {"name": "outcome", "type": "token", "documentation": OUTCOME_DOCUMENTATION},
            ],
        },
    ]
