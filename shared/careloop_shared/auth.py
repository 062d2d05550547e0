"""Bearer JWTs that name the caller's agency and role.

Every HTTP endpoint except health requires one. A caller sees only its own agency's patients.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ROLES = frozenset({"care-manager", "supervisor", "admin", "analyst", "provider"})
ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    agency_id: str
    role: str
    subject: str


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or names no agency or a role we do not know."""


def issue_token(
    secret: str,
    *,
    agency: str,
    role: str,
    subject: str = "dev-user",
    issuer: str = "careloop-dev",
    ttl_s: int = 12 * 3600,
) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; known roles: {', '.join(sorted(ROLES))}")
    if not agency:
        raise ValueError("agency must not be empty")
    now = int(time.time())
    claims = {"sub": subject, "agency": agency, "role": role, "iss": issuer, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str, *, issuer: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(type(exc).__name__) from exc
    agency, role = claims.get("agency"), claims.get("role")
    if not isinstance(agency, str) or not agency:
        raise InvalidToken("token names no agency")
    if role not in ROLES:
        raise InvalidToken("token names no known role")
    return Principal(agency_id=agency, role=role, subject=str(claims["sub"]))


_bearer = HTTPBearer(auto_error=False)


def authenticate(credentials: HTTPAuthorizationCredentials | None, secret: str, issuer: str) -> Principal:
    """Answer 401 unless a valid bearer token is presented."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "bearer token required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return verify_token(credentials.credentials, secret, issuer=issuer)
    except InvalidToken as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"invalid token: {exc}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
