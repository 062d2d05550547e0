import time

import jwt
import pytest

from careloop_shared.auth import PEOPLE_ROLES, ROLES, InvalidToken, issue_token, verify_token

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
