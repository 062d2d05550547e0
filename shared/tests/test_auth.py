import time
from typing import Any

import jwt
import pytest

from careloop_shared import auth
from careloop_shared.auth import (
    PEOPLE_ROLES,
    ROLES,
    InvalidToken,
    Principal,
    VerifiedTokens,
    issue_token,
    verify_token,
)
from careloop_shared.settings import ServiceSettings
from careloop_shared.testing import app_of, client_of

SECRET = "test-secret-0123456789-0123456789-abcd"


def test_token_names_agency_and_role():
    principal = verify_token(
        issue_token(SECRET, agency="a1", role="care-manager", subject="u1"), SECRET, issuer="careloop-dev"
    )
    assert (principal.agency_id, principal.role, principal.subject) == ("a1", "care-manager", "u1")


def test_token_signed_with_another_secret_is_refused():
    token = issue_token("another-secret-0123456789-0123456789", agency="a1", role="admin")
    with pytest.raises(InvalidToken):
        verify_token(token, SECRET, issuer="careloop-dev")


def test_expired_token_is_refused():
    token = issue_token(SECRET, agency="a1", role="admin", ttl_s=-10)
    with pytest.raises(InvalidToken, match="Expired"):
        verify_token(token, SECRET, issuer="careloop-dev")


def test_token_without_agency_is_refused():
    now = int(time.time())
    token = jwt.encode(
        {"sub": "u", "role": "admin", "iss": "careloop-dev", "iat": now, "exp": now + 60},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(InvalidToken, match="no agency"):
        verify_token(token, SECRET, issuer="careloop-dev")


def test_a_service_token_names_the_service_as_its_subject():
    token = issue_token(SECRET, agency="a1", role="service", subject="careplan", ttl_s=300)
    principal = verify_token(token, SECRET, issuer="careloop-dev")
    assert (principal.agency_id, principal.role, principal.subject) == ("a1", "service", "careplan")
    assert "service" in ROLES and "service" not in PEOPLE_ROLES


def test_unknown_role_cannot_be_issued():
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(SECRET, agency="a1", role="superuser")


def test_a_token_cannot_name_the_agency_that_stands_for_every_agency():
    """'*' is how the services' own work acts for every agency under row-level security."""
    token = issue_token(SECRET, agency="*", role="supervisor")
    with pytest.raises(InvalidToken, match="no agency a caller can act for"):
        verify_token(token, SECRET, issuer="careloop-dev")


# Tokens verified lately (VerifiedTokens): a caller's token is checked once, not on every request


def _counting_verifications(monkeypatch):
    calls = []
    real = auth._verify_bearer

    async def counted(token, settings):
        calls.append(token)
        return await real(token, settings)

    monkeypatch.setattr(auth, "_verify_bearer", counted)
    return calls


async def test_a_token_verified_once_is_taken_again_without_checking_its_signature(monkeypatch):
    calls = _counting_verifications(monkeypatch)
    tokens = VerifiedTokens(ServiceSettings(jwt_secret=SECRET))
    token = issue_token(SECRET, agency="a1", role="care-manager", subject="u1")
    for _ in range(3):
        assert await tokens.verify(token) == Principal("a1", "care-manager", "u1")
    assert calls == [token]


async def test_a_token_that_differs_in_any_byte_is_verified_afresh_and_a_forgery_is_refused(monkeypatch):
    tokens = VerifiedTokens(ServiceSettings(jwt_secret=SECRET))
    token = issue_token(SECRET, agency="a1", role="care-manager", subject="u1")
    await tokens.verify(token)
    header, claims, signature = token.split(".")
    forged_claims = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(claims).replace(b'"a1"', b'"a2"')
    ).decode()
    with pytest.raises(InvalidToken):
        await tokens.verify(f"{header}.{forged_claims}.{signature}")
    # The signature's first character: all six of its bits are signature (the last one's low bits are
    # base64 padding, which decodes to the same signature).
    other_signature = ("B" if signature[0] == "A" else "A") + signature[1:]
    with pytest.raises(InvalidToken):
        await tokens.verify(f"{header}.{claims}.{other_signature}")


async def test_a_kept_token_is_not_taken_past_its_expiry_but_checked_afresh(monkeypatch):
    """Past ``exp`` the kept answer is dropped and the verifier decides again (it refuses an expired
    token: test_expired_token_is_refused)."""
    calls = _counting_verifications(monkeypatch)
    tokens = VerifiedTokens(ServiceSettings(jwt_secret=SECRET), keep_s=3600)
    token = issue_token(SECRET, agency="a1", role="admin", ttl_s=30)
    await tokens.verify(token)
    real_time = time.time
    monkeypatch.setattr(auth.time, "time", lambda: real_time() + 29)
    await tokens.verify(token)
    assert calls == [token]
    monkeypatch.setattr(auth.time, "time", lambda: real_time() + 31)
    await tokens.verify(token)  # PyJWT's own clock says it has not expired yet: accepted, once checked
    assert calls == [token, token]


async def test_a_kept_token_is_checked_again_after_keep_s_and_the_oldest_is_forgotten_first(monkeypatch):
    calls = _counting_verifications(monkeypatch)
    tokens = VerifiedTokens(ServiceSettings(jwt_secret=SECRET), keep_s=5, size=2)
    one, two, three = (issue_token(SECRET, agency="a1", role="admin", subject=s) for s in ("1", "2", "3"))
    await tokens.verify(one)
    real_time = time.time
    monkeypatch.setattr(auth.time, "time", lambda: real_time() + 6)
    await tokens.verify(one)  # kept 5 s at most: verified again
    await tokens.verify(two)
    await tokens.verify(three)  # two kept at most: the oldest (one) goes
    await tokens.verify(three)
    await tokens.verify(one)
    assert calls == [one, one, two, three, one]


async def test_a_route_of_create_app_signs_its_caller_in_once_and_documents_the_bearer_scheme(monkeypatch):
    """The app's ``authorized`` dependency signs the caller in; the route's principal, command runner and
    auditor read them from the request instead of being solved (and authenticated) again."""

    from fastapi import APIRouter, Request

    from careloop_shared import http
    from careloop_shared.http import Audit, CurrentPrincipal, needs
    from careloop_shared.settings import DEV_JWT_SECRET

    calls: list[str] = []
    authenticate = http.authenticate

    async def counted(credentials, settings, verified=None):  # type: ignore[no-untyped-def]
        calls.append(credentials.credentials if credentials else "")
        return await authenticate(credentials, settings, verified)

    monkeypatch.setattr(http, "authenticate", counted)
    router = APIRouter()
    routes: list[Any] = []

    @router.get("/who", openapi_extra=needs("patient:read"))
    async def who(me: CurrentPrincipal, audit: Audit, request: Request) -> dict[str, str]:
        routes.append(request.scope["route"])
        return {"agency": me.agency_id, "role": me.role}

    app = app_of("test-sign-in", [router])
    token = issue_token(DEV_JWT_SECRET, agency="agency-a", role="care-manager")
    async with client_of(app, "http://t") as client:
        ok = await client.get("/who", headers={"Authorization": f"Bearer {token}"})
        anonymous = await client.get("/who")
    assert (ok.status_code, ok.json()) == (200, {"agency": "agency-a", "role": "care-manager"})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert calls == [token, ""]  # once a request

    # ... and the route's own dependencies read the caller from the request: none has dependencies of
    # its own to solve (FastAPI's cost is per dependency solved, cached or not).
    assert [d.call.__name__ for d in routes[0].dependant.dependencies] == ["current_principal", "auditor"]
    assert all(not d.dependencies for d in routes[0].dependant.dependencies)
    operation = app.openapi()["paths"]["/who"]["get"]
    assert operation["security"] == [{"HTTPBearer": []}]
