"""Every ``/fhir/R4/`` route of followup, for every role, decides as the permission matrix says and
answers a refusal as an OperationOutcome; the OpenAPI document and the CapabilityStatement list the
routes. An allowed role gets past the check to the route's store or context, where this test stops it."""

import re

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from careloop_shared.auth import ROLES, issue_token
from careloop_shared.fhir import FHIR_JSON
from careloop_shared.http import PERMISSION_KEY, read_store, service_context
from careloop_shared.permissions import load_matrix
from careloop_shared.settings import DEV_JWT_SECRET
from followup.main import build_app

MATRIX = load_matrix()
REACHED = 299


class Reached(Exception):
    pass


def _reached(_: Request) -> None:
    raise Reached


class _Trail:
    def __init__(self) -> None:
        self.entries: list = []

    async def record(self, entries) -> None:
        self.entries += entries


def _app():
    app = build_app()
    app.state.runtime.audit = _Trail()
    for dependency in (read_store, service_context):
        app.dependency_overrides[dependency] = _reached

    async def on_reached(_: Request, __: Exception) -> JSONResponse:
        return JSONResponse(status_code=REACHED, content={})

    app.add_exception_handler(Reached, on_reached)
    return app


def _operations(app):
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/fhir/R4/"):
                yield method, path, operation


def test_the_openapi_document_lists_the_fhir_routes_with_their_permissions():
    listed = {(m, p): o[PERMISSION_KEY] for m, p, o in _operations(_app())}
    assert listed == {
        ("get", "/fhir/R4/metadata"): "capabilities:read",
        ("get", "/fhir/R4/Task/{task_id}"): "task:read",
        ("get", "/fhir/R4/Task"): "task:read",
    }


async def test_every_fhir_route_and_role_decides_as_the_matrix_says():
    app = _app()
    walked = set()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as client:
        for method, path, operation in _operations(app):
            permission = operation[PERMISSION_KEY]
            assert permission in MATRIX.permissions(), f"{method.upper()} {path} names no known permission"
            url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000001", path)
            for role in sorted(ROLES):
                token = issue_token(DEV_JWT_SECRET, agency="agency-a", role=role, subject="s")
                r = await client.request(method, url, headers={"Authorization": f"Bearer {token}"})
                if MATRIX.allows(role, permission):
                    assert r.status_code in (REACHED, 200), (role, method, path, r.status_code, r.text)
                    continue
                assert (r.status_code, r.headers["content-type"]) == (403, FHIR_JSON), (role, path)
                [issue] = r.json()["issue"]
                assert issue["code"] == "forbidden"
                assert issue["diagnostics"] == f"role {role} lacks permission {permission}"
                if "{" in path:  # a refused attempt at one record is audited
                    denied = app.state.runtime.audit.entries[-1]
                    assert (denied.outcome, denied.outcome_detail, denied.role) == (
                        "denied",
                        permission,
                        role,
                    )
            walked.add(path)
    assert len(walked) == 3


async def test_no_token_is_401_as_an_operation_outcome():
    app = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as client:
        for method, path, _ in _operations(app):
            r = await client.request(method, re.sub(r"\{[^}]+\}", "x", path))
            assert (r.status_code, r.json()["issue"][0]["code"]) == (401, "login"), path


async def test_the_capability_statement_names_task_read_and_its_searches():
    app = _app()
    app.dependency_overrides.clear()
    token = issue_token(DEV_JWT_SECRET, agency="agency-a", role="analyst", subject="s")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as client:
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
        }
    ]
