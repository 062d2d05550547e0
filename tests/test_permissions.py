"""Every route of every service, for every role, decides as the permission matrix says.

Both kinds of route are walked: ``/v1/`` answers a refusal as the kernel's JSON problem, ``/fhir/R4/``
as a FHIR OperationOutcome (the same status, permission and audit entry).

The walk reads each service's OpenAPI document: every operation must name a permission the matrix
knows; then each role's token is sent to it. A denied role gets 403 naming the missing permission
before anything else runs; an allowed role gets past the check and reaches the route's store, command
runner or runtime, where this test stops it (no database or broker needed).
"""

import importlib
import re

import pytest
from fastapi import Request
from fastapi.responses import JSONResponse

from careloop_shared.auth import ROLES
from careloop_shared.fhir import FHIR_JSON
from careloop_shared.http import (
    PERMISSION_KEY,
    command_runner,
    read_store,
    runtime_dependency,
    service_context,
)
from careloop_shared.permissions import PERMISSIONS_FILE, load_matrix, markdown_table
from careloop_shared.testing import bearer, client_of
from tests.conftest import SERVICES

MATRIX = load_matrix()
REACHED = 299


class Reached(Exception):
    """The request got past authorization to the route's own dependencies."""


def _reached(request: Request) -> None:
    raise Reached


class _Trail:
    """Stands in for the audit trail: keeps what would be written."""

    def __init__(self) -> None:
        self.entries: list = []

    async def record(self, entries) -> None:
        self.entries += entries


def _app(service: str):
    app = importlib.import_module(f"{service}.main").build_app()
    app.state.runtime.audit = _Trail()
    for dependency in (read_store, command_runner, service_context, runtime_dependency):
        app.dependency_overrides[dependency] = _reached

    async def on_reached(_: Request, __: Exception) -> JSONResponse:
        return JSONResponse(status_code=REACHED, content={})

    app.add_exception_handler(Reached, on_reached)
    return app


def _operations(app):
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            if path.startswith(("/v1/", "/fhir/R4/")):
                yield method, path, operation


def _is_fhir(path: str) -> bool:
    return path.startswith("/fhir/R4/")


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_and_role_decides_as_the_matrix_says(service):
    app = _app(service)
    walked = 0
    async with client_of(app, f"http://{service}", raise_app_exceptions=False) as client:
        for method, path, operation in _operations(app):
            permission = operation.get(PERMISSION_KEY)
            assert permission in MATRIX.permissions(), f"{method.upper()} {path} names no known permission"
            url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000001", path)
            # A search by POST takes a form (FHIR's ``_search``); everything else JSON.
            form = "application/x-www-form-urlencoded" in operation.get("requestBody", {}).get("content", {})
            # An empty form: every search's parameters are optional to the permission check.
            body: dict = {"content": b""} if form else {"json": {}}
            sent = {"content-type": "application/x-www-form-urlencoded"} if form else {}
            for role in sorted(ROLES):
                r = await client.request(method, url, headers={**bearer("agency-a", role), **sent}, **body)
                if MATRIX.allows(role, permission):
                    # A FHIR CapabilityStatement is served by the route itself, without a store.
                    answered = (REACHED, 200) if _is_fhir(path) else (REACHED,)
                    assert r.status_code in answered, (role, method, path, r.status_code, r.text)
                elif _is_fhir(path):
                    assert (r.status_code, r.headers["content-type"]) == (403, FHIR_JSON), (role, path)
                    [issue] = r.json()["issue"]
                    assert issue["code"] == "forbidden"
                    assert issue["diagnostics"] == f"role {role} lacks permission {permission}"
                    assert issue["details"] == {"text": f"missing_permission: {permission}"}
                else:
                    assert r.status_code == 403, (role, method, path, r.status_code)
                    assert r.json() == {
                        "detail": f"role {role} lacks permission {permission}",
                        "missing_permission": permission,
                    }
                # A refused attempt at a patient's data, or at one record, is audited.
                if "{" in path and not MATRIX.allows(role, permission):
                    denied = app.state.runtime.audit.entries[-1]
                    assert (denied.outcome, denied.outcome_detail, denied.role) == (
                        "denied",
                        permission,
                        role,
                    )
                    assert denied.route == f"{method.upper()} {path}"
                walked += 1
    assert walked >= len(ROLES) * 2


@pytest.mark.parametrize("service", SERVICES)
async def test_no_token_is_401_before_any_permission_is_looked_at(service):
    app = _app(service)
    async with client_of(app, f"http://{service}", raise_app_exceptions=False) as client:
        for method, path, _ in _operations(app):
            r = await client.request(method, re.sub(r"\{[^}]+\}", "x", path))
            assert r.status_code == 401, path
            if _is_fhir(path):
                assert r.json()["issue"][0]["code"] == "login", path


def test_every_permission_is_granted_to_someone_and_roles_are_as_documented():
    assert set(MATRIX.roles) == ROLES
    granted = {p for role in MATRIX.roles.values() for p in role.grants}
    assert granted == set(MATRIX.permissions())


def test_the_readme_shows_the_matrix_as_the_data_file_says():
    readme = (PERMISSIONS_FILE.parents[3] / "README.md").read_text()
    assert markdown_table(MATRIX) in readme, "run: python -m careloop_shared.permissions table"
