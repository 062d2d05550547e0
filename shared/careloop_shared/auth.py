"""Bearer JWTs that name the caller's agency and role.

Every HTTP endpoint except health requires one. A caller sees only its own agency's patients.

Two kinds are accepted. Development tokens are HS256, signed with the shared ``CARELOOP_JWT_SECRET``
(``issue_token``, ``make token``); with the development secret only on a loopback service. When an OpenID
Connect provider is configured (``CARELOOP_OIDC_ISSUER``), a token whose ``iss`` is that provider is checked
with the provider's published keys instead (``oidc.py``); its agency and role come from configurable claims.
A service calling another signs its own short-lived HS256 token, role ``service`` and its name as ``sub``
(``patient_keys.py``); that role is never a person's, so a provider's token cannot carry it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from careloop_shared.db import ALL_AGENCIES
from careloop_shared.oidc import OidcConfig, TokenRejected, verifier_for
from careloop_shared.settings import DEV_JWT_SECRET, LOOPBACK_HOSTS, ServiceSettings

PEOPLE_ROLES = frozenset({"care-manager", "supervisor", "admin", "analyst", "provider"})
# A service calling another (careplan asking intake for a patient's data key): never a person's role, so
# no identity provider's token and no workspace sign-in carries it.
SERVICE_ROLE = "service"
ROLES = PEOPLE_ROLES | {SERVICE_ROLE}
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
    """A development token: HS256 with the shared secret."""
    principal, _ = _development_token(token, secret, issuer=issuer)
    return principal


def _development_token(token: str, secret: str, *, issuer: str) -> tuple[Principal, float]:
    """Whom a development token names, and when it expires (seconds since the epoch)."""
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
    return principal_from_claims(claims, agency_claim="agency", role_claim="role"), float(claims["exp"])


def principal_from_claims(
    claims: Mapping[str, Any], *, agency_claim: str, role_claim: str, roles: frozenset[str] = ROLES
) -> Principal:
    """The caller named by verified claims. A role claim may be one name or a list of names (providers
    often send groups); the first name in ``roles`` is the caller's role, the rest are ignored."""
    agency, role = claim(claims, agency_claim), claim(claims, role_claim)
    if not isinstance(agency, str) or not agency:
        raise InvalidToken("token names no agency")
    if agency == ALL_AGENCIES:
        # The service's own work acts for every agency under that name (row-level security): no caller may.
        raise InvalidToken("token names no agency a caller can act for")
    names = role if isinstance(role, list) else [role]
    known = [name for name in names if isinstance(name, str) and name in roles]
    if not known:
        raise InvalidToken("token names no known role")
    return Principal(agency_id=agency, role=known[0], subject=str(claims["sub"]))


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """A top-level claim, or else a dotted path into nested ones (``realm_access.roles``)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


async def verify_bearer(token: str, settings: ServiceSettings) -> Principal:
    """A provider's token when its ``iss`` is the configured OIDC issuer, else a development token."""
    principal, _ = await _verify_bearer(token, settings)
    return principal


async def _verify_bearer(token: str, settings: ServiceSettings) -> tuple[Principal, float]:
    """Whom the token names, and when it expires (seconds since the epoch)."""
    config = OidcConfig.from_settings(settings)
    if config is None or _unverified_issuer(token) != config.issuer:
        return _verify_development_token(token, settings)
    try:
        claims = await verifier_for(config).verify(token)
    except TokenRejected as exc:
        raise InvalidToken(str(exc)) from exc
    # A provider signs people in: a group it calls "service" grants nothing here.
    principal = principal_from_claims(
        claims,
        agency_claim=settings.oidc_agency_claim,
        role_claim=settings.oidc_role_claim,
        roles=PEOPLE_ROLES,
    )
    return principal, float(claims["exp"])


class VerifiedTokens:
    """Bearer tokens one service verified lately, and whom they name: a caller sends the same token with
    every request, and checking its signature each time was most of what authentication cost.

    A token is kept until it expires, and never longer than ``keep_s`` (so an identity provider's key
    withdrawn from its published set stops being honoured within that time); at most ``size`` of them,
    the oldest forgotten first. Only tokens that passed every check are kept, under the whole token:
    one that differs in any byte is verified afresh.
    """

    def __init__(self, settings: ServiceSettings, *, keep_s: float = 60.0, size: int = 4096) -> None:
        self._settings = settings
        self._keep_s = keep_s
        self._size = size
        self._kept: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        now = time.time()
        kept = self._kept.get(token)
        if kept is not None:
            if now < kept[1]:
                return kept[0]
            del self._kept[token]
        principal, expires = await _verify_bearer(token, self._settings)
        if len(self._kept) >= self._size:
            del self._kept[next(iter(self._kept))]
        self._kept[token] = (principal, min(expires, now + self._keep_s))
        return principal


def _unverified_issuer(token: str) -> str | None:
    """Only to choose how to verify: each way then checks signature and issuer for itself."""
    try:
        iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError as exc:
        raise InvalidToken(type(exc).__name__) from exc
    return iss if isinstance(iss, str) else None


def _verify_development_token(token: str, settings: ServiceSettings) -> tuple[Principal, float]:
    secret = settings.jwt_secret.get_secret_value()
    # Anyone can mint tokens with the development secret (the rule http.serve enforces at start).
    if secret == DEV_JWT_SECRET and settings.host not in LOOPBACK_HOSTS:
        raise InvalidToken("development tokens are accepted only by a service on loopback")
    return _development_token(token, secret, issuer=settings.jwt_issuer)


bearer = HTTPBearer(auto_error=False)  # the scheme the API documents; None when absent


async def authenticate(
    credentials: HTTPAuthorizationCredentials | None,
    settings: ServiceSettings,
    verified: VerifiedTokens | None = None,
) -> Principal:
    """Answer 401 unless a valid bearer token is presented (``verified``: the service's tokens verified
    lately, else it is checked afresh)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("bearer token required")
    try:
        if verified is not None:
            return await verified.verify(credentials.credentials)
        return await verify_bearer(credentials.credentials, settings)
    except InvalidToken as exc:
        raise _unauthorized(f"invalid token: {exc}") from exc


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "Bearer"})


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
