"""Every ``/fhir/R4/`` route of referral, for every role, decides as the permission matrix says, and
answers a refusal as an OperationOutcome (the kernel's own walk covers ``/v1/``). An allowed role gets
past the check to the route's store, context or command runner, where this test stops it."""

import re

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from careloop_shared.auth import ROLES, issue_token
from careloop_shared.fhir import FHIR_JSON
from careloop_shared.http import PERMISSION_KEY, command_runner, read_store, service_context
from careloop_shared.permissions import load_matrix
from careloop_shared.settings import DEV_JWT_SECRET
from referral.main import build_app

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
    for dependency in (read_store, command_runner, service_context):
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


async def test_every_fhir_route_and_role_decides_as_the_matrix_says():
    app = _app()
    walked = set()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://referral"
    ) as client:
        for method, path, operation in _operations(app):
            permission = operation.get(PERMISSION_KEY)
            assert permission in MATRIX.permissions(), f"{method.upper()} {path} names no known permission"
            url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000001", path)
            for role in sorted(ROLES):
                token = issue_token(DEV_JWT_SECRET, agency="agency-a", role=role, subject="s")
                headers = {"Authorization": f"Bearer {token}"}
                r = await client.request(method, url, headers=headers, json={})
                if MATRIX.allows(role, permission):
                    assert r.status_code in (REACHED, 200), (role, method, path, r.status_code, r.text)
                    continue
                assert (r.status_code, r.headers["content-type"]) == (403, FHIR_JSON), (role, path)
                [issue] = r.json()["issue"]
                assert issue["code"] == "forbidden"
                assert issue["diagnostics"] == f"role {role} lacks permission {permission}"
                assert issue["details"] == {"text": f"missing_permission: {permission}"}
                if "{" in path:  # a refused attempt at one record is audited
                    denied = app.state.runtime.audit.entries[-1]
                    assert (denied.outcome, denied.outcome_detail, denied.role) == (
                        "denied",
                        permission,
                        role,
                    )
            walked.add(path)
    assert len(walked) == 11


async def test_no_token_is_401_as_an_operation_outcome():
    app = _app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://referral"
    ) as client:
        for method, path, _ in _operations(app):
            r = await client.request(method, re.sub(r"\{[^}]+\}", "x", path))
            assert (r.status_code, r.json()["issue"][0]["code"]) == (401, "login"), path


def test_referrals_are_for_their_parties_roles_and_the_directory_for_every_role():
    """What the matrix grants, as this service's FHIR routes use it (no new permission was needed)."""
    permissions = {operation[PERMISSION_KEY] for _, _, operation in _operations(_app())}
    assert permissions == {"capabilities:read", "referral:read", "directory:read"}
    readers = {role for role in ROLES if MATRIX.allows(role, "referral:read")}
    assert readers == {"care-manager", "supervisor", "provider"}
    assert all(MATRIX.allows(role, "directory:read") for role in ROLES)
