"""Tokens from an OpenID Connect provider, against a provider run here: discovery and JWKS on 127.0.0.1."""

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from careloop_shared.auth import (
    InvalidToken,
    Principal,
    VerifiedTokens,
    authenticate,
    issue_token,
    verify_bearer,
)
from careloop_shared.http import CurrentPrincipal
from careloop_shared.oidc import OidcConfig, OidcVerifier, TokenRejected
from careloop_shared.settings import DEV_JWT_SECRET, ServiceSettings
from careloop_shared.testing import client_of

AUDIENCE = "careloop-api"
JWKS_PATH = "/protocol/openid-connect/certs"
DISCOVERY_PATH = "/.well-known/openid-configuration"


class SigningKey:
    """A provider's private key and the public JWK it publishes."""

    def __init__(self, private_key: Any, alg: str) -> None:
        self.private_key, self.alg, self.kid = private_key, alg, uuid.uuid4().hex
        to_jwk = RSAAlgorithm.to_jwk if alg == "RS256" else ECAlgorithm.to_jwk
        self.jwk = {**to_jwk(private_key.public_key(), as_dict=True), "kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers={"kid": self.kid, **header})


def rsa_key() -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


@pytest.fixture(scope="module")
def rs256() -> SigningKey:
    return rsa_key()


@pytest.fixture(scope="module")
def es256() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256")


class Provider:
    """What the identity provider publishes; counts the requests it answers."""

    def __init__(self, port: int, keys: list[SigningKey]) -> None:
        self.issuer = f"http://127.0.0.1:{port}/realms/care"
        self.keys = keys
        self.requests: Counter[str] = Counter()
        self.failing = False
        self.hanging = False
        self.released = threading.Event()

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        self.requests[path.removeprefix("/realms/care")] += 1
        if self.hanging:
            self.released.wait(10)
        if self.failing:
            return 503, {}
        if path.endswith(DISCOVERY_PATH):
            return 200, {"issuer": self.issuer, "jwks_uri": self.issuer + JWKS_PATH}
        if path.endswith(JWKS_PATH):
            return 200, {"keys": [key.jwk for key in self.keys]}
        return 404, {}

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": AUDIENCE, "sub": "user-7", "iat": now, "exp": now + 300}
        claims |= {"agency": "agency-a", "role": "care-manager", **changes}
        return {name: value for name, value in claims.items() if value is not None}

    def config(self, **changes: Any) -> OidcConfig:
        return OidcConfig(**{"issuer": self.issuer, "audience": AUDIENCE, "timeout_s": 2.0, **changes})

    def settings(self, **changes: Any) -> ServiceSettings:
        return ServiceSettings(
            **{"oidc_issuer": self.issuer, "oidc_audience": AUDIENCE, "oidc_http_timeout_s": 2.0, **changes}
        )


@pytest.fixture
def provider(rs256, es256):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProviderHandler)
    server.provider = Provider(server.server_address[1], [rs256, es256])  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server.provider  # type: ignore[attr-defined]
    server.provider.released.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join()


class _ProviderHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = self.server.provider.answer(self.path)  # type: ignore[attr-defined]
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unsigned(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A token put together by hand, signed by ``sign(signing_input)`` (or not at all)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b64(sign(signing_input.encode())) if sign else ""
    return f"{signing_input}.{signature}"


# Accepted


async def test_rs256_token_names_agency_and_role_from_the_configured_claims(provider, rs256):
    settings = provider.settings(
        oidc_agency_claim="https://careloop.example/agency", oidc_role_claim="realm_access.roles"
    )
    token = rs256.sign(
        provider.claims(
            agency=None,
            role=None,
            **{"https://careloop.example/agency": "agency-b"},
            realm_access={"roles": ["offline_access", "supervisor", "admin"]},
        )
    )
    # The first careloop role in the list wins; names careloop does not know are ignored.
    assert await verify_bearer(token, settings) == Principal("agency-b", "supervisor", "user-7")


async def test_es256_token_is_accepted(provider, es256):
    token = es256.sign(provider.claims(role="analyst"))
    assert await verify_bearer(token, provider.settings()) == Principal("agency-a", "analyst", "user-7")
    assert provider.requests == {DISCOVERY_PATH: 1, JWKS_PATH: 1}


async def test_a_configured_jwks_url_needs_no_discovery(provider, rs256):
    verifier = OidcVerifier(provider.config(jwks_url=provider.issuer + JWKS_PATH))
    assert (await verifier.verify(rs256.sign(provider.claims())))["sub"] == "user-7"
    assert provider.requests == {JWKS_PATH: 1}


async def test_keys_are_cached_between_tokens(provider, rs256, es256):
    verifier = OidcVerifier(provider.config())
    for key in (rs256, es256, rs256):
        await verifier.verify(key.sign(provider.claims()))
    assert provider.requests[JWKS_PATH] == 1


async def test_clock_skew_within_the_leeway_is_tolerated(provider, rs256):
    now = int(time.time())
    verifier = OidcVerifier(provider.config(leeway_s=30))
    await verifier.verify(rs256.sign(provider.claims(exp=now - 10, nbf=now + 10, iat=now + 10)))


# Key rotation


async def test_a_token_signed_with_a_rotated_key_is_accepted_after_the_refetch(provider, rs256):
    clock = Clock()
    verifier = OidcVerifier(provider.config(refetch_min_s=30), clock=clock)
    await verifier.verify(rs256.sign(provider.claims()))
    rotated = rsa_key()
    provider.keys = [rotated]
    clock.advance(31)

    claims = await verifier.verify(rotated.sign(provider.claims(agency="agency-r")))

    assert claims["agency"] == "agency-r"
    assert provider.requests[JWKS_PATH] == 2
    with pytest.raises(TokenRejected, match="unknown key"):  # the provider withdrew the old key
        await verifier.verify(rs256.sign(provider.claims()))


async def test_refetching_for_unknown_keys_is_rate_limited(provider, rs256):
    clock = Clock()
    verifier = OidcVerifier(provider.config(refetch_min_s=30), clock=clock)
    await verifier.verify(rs256.sign(provider.claims()))
    clock.advance(31)

    def made_up_key() -> str:
        return rs256.sign(provider.claims(), kid=uuid.uuid4().hex)

    results = await asyncio.gather(
        *(verifier.verify(made_up_key()) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, TokenRejected) and "unknown key" in str(r) for r in results)
    for _ in range(10):
        with pytest.raises(TokenRejected, match="unknown key"):
            await verifier.verify(made_up_key())
    assert provider.requests[JWKS_PATH] == 2

    clock.advance(31)
    with pytest.raises(TokenRejected, match="unknown key"):
        await verifier.verify(made_up_key())
    assert provider.requests[JWKS_PATH] == 3


async def test_held_keys_keep_working_while_the_provider_is_down(provider, rs256):
    clock = Clock()
    verifier = OidcVerifier(provider.config(max_age_s=600), clock=clock)
    await verifier.verify(rs256.sign(provider.claims()))
    provider.failing = True
    clock.advance(601)

    await verifier.verify(rs256.sign(provider.claims()))

    assert provider.requests[JWKS_PATH] == 2


# Refused


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (lambda now: {"exp": now - 120}, "ExpiredSignatureError"),
        (lambda now: {"nbf": now + 120}, "ImmatureSignatureError"),
        (lambda now: {"iat": now + 120}, "ImmatureSignatureError"),
        (lambda now: {"aud": "another-api"}, "InvalidAudienceError"),
        (lambda now: {"iss": "https://idp.example/realms/other"}, "InvalidIssuerError"),
        (lambda now: {"exp": None}, "MissingRequiredClaimError"),
        (lambda now: {"aud": None}, "MissingRequiredClaimError"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "issued-in-the-future",
        "wrong-audience",
        "wrong-issuer",
        "no-exp",
        "no-aud",
    ],
)
async def test_a_token_outside_its_time_audience_or_issuer_is_refused(provider, rs256, changes, reason):
    verifier = OidcVerifier(provider.config(leeway_s=30))
    with pytest.raises(TokenRejected, match=reason):
        await verifier.verify(rs256.sign(provider.claims(**changes(int(time.time())))))


async def test_an_unsigned_token_is_refused(provider, rs256):
    token = unsigned({"alg": "none", "typ": "JWT", "kid": rs256.kid}, provider.claims(role="admin"))
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        await verify_bearer(token, provider.settings())


async def test_hs256_signed_with_the_providers_public_key_is_refused(provider, rs256):
    public_pem = rs256.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = unsigned(
        {"alg": "HS256", "typ": "JWT", "kid": rs256.kid},
        provider.claims(role="admin"),
        sign=lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        await verify_bearer(token, provider.settings())
    # Settings never allow HS256; were it allowed anyway, the RSA key would still verify RS256 only.
    verifier = OidcVerifier(provider.config(algorithms=("RS256", "HS256")))
    with pytest.raises(TokenRejected, match="InvalidAlgorithmError"):
        await verifier.verify(token)


async def test_a_key_the_provider_does_not_publish_is_refused_after_one_refetch(provider):
    stranger = rsa_key()
    verifier = OidcVerifier(provider.config())
    with pytest.raises(TokenRejected, match="unknown key"):
        await verifier.verify(stranger.sign(provider.claims()))
    assert provider.requests[JWKS_PATH] == 1


async def test_a_tampered_token_is_refused(provider, rs256):
    header, _, signature = rs256.sign(provider.claims()).split(".")
    _, forged_claims, _ = unsigned({}, provider.claims(agency="agency-z", role="admin")).split(".")
    with pytest.raises(InvalidToken, match="InvalidSignatureError"):
        await verify_bearer(f"{header}.{forged_claims}.{signature}", provider.settings())


async def test_a_token_naming_no_known_role_is_refused(provider, rs256):
    token = rs256.sign(provider.claims(role=["offline_access", "uma_authorization"]))
    with pytest.raises(InvalidToken, match="no known role"):
        await verify_bearer(token, provider.settings())


async def test_a_providers_token_never_names_the_service_role(provider, rs256):
    """Services sign their own tokens: a group a provider happens to call "service" grants nothing."""
    token = rs256.sign(provider.claims(role=["service", "analyst"]))
    assert await verify_bearer(token, provider.settings()) == Principal("agency-a", "analyst", "user-7")
    with pytest.raises(InvalidToken, match="no known role"):
        await verify_bearer(rs256.sign(provider.claims(role="service")), provider.settings())


# The provider out of reach


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_provider_is_a_401_not_a_500(rs256):
    issuer = f"http://127.0.0.1:{closed_port()}"
    settings = ServiceSettings(oidc_issuer=issuer, oidc_audience=AUDIENCE, oidc_http_timeout_s=2.0)
    token = rs256.sign({"iss": issuer, "aud": AUDIENCE, "sub": "u", "iat": int(time.time()), "exp": 2**31})
    with pytest.raises(HTTPException) as refused:
        await authenticate(HTTPAuthorizationCredentials(scheme="Bearer", credentials=token), settings)
    assert refused.value.status_code == 401
    assert refused.value.detail == "invalid token: identity provider keys unavailable"
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}


async def test_a_provider_that_does_not_answer_is_given_up_on_after_the_timeout(provider, rs256):
    provider.hanging = True
    verifier = OidcVerifier(provider.config(timeout_s=0.3))
    started = time.monotonic()
    with pytest.raises(TokenRejected, match="keys unavailable"):
        await verifier.verify(rs256.sign(provider.claims()))
    assert time.monotonic() - started < 2


async def test_a_discovery_document_naming_another_issuer_is_not_trusted(provider, rs256):
    verifier = OidcVerifier(provider.config(issuer=provider.issuer + "-impostor"))
    with pytest.raises(TokenRejected, match="keys unavailable"):
        await verifier.verify(rs256.sign(provider.claims(iss=provider.issuer + "-impostor")))
    assert provider.requests[JWKS_PATH] == 0


# Development tokens beside the provider


async def test_without_oidc_settings_development_tokens_work_as_before_and_provider_tokens_do_not(
    provider, rs256
):
    settings = ServiceSettings()
    dev_token = issue_token(settings.jwt_secret.get_secret_value(), agency="a1", role="admin", subject="u1")
    assert await verify_bearer(dev_token, settings) == Principal("a1", "admin", "u1")
    with pytest.raises(InvalidToken):
        await verify_bearer(rs256.sign(provider.claims()), settings)
    assert provider.requests == {}


async def test_with_oidc_settings_development_tokens_are_still_accepted_on_loopback(provider):
    settings = provider.settings()
    dev_token = issue_token(settings.jwt_secret.get_secret_value(), agency="a1", role="admin", subject="u1")
    assert await verify_bearer(dev_token, settings) == Principal("a1", "admin", "u1")
    assert provider.requests == {}


async def test_development_tokens_are_refused_beyond_loopback_with_the_development_secret(provider):
    settings = provider.settings(host="0.0.0.0", jwt_secret=DEV_JWT_SECRET)
    dev_token = issue_token(settings.jwt_secret.get_secret_value(), agency="a1", role="admin")
    with pytest.raises(InvalidToken, match="only by a service on loopback"):
        await verify_bearer(dev_token, settings)


# Through a route


async def test_a_route_answers_the_providers_caller_and_refuses_a_bad_token_with_401(provider, rs256):
    app = FastAPI()
    settings = provider.settings()
    app.state.runtime = SimpleNamespace(settings=settings, verified_tokens=VerifiedTokens(settings))

    @app.get("/me")
    async def me(who: CurrentPrincipal) -> dict[str, str]:
        return {"agency": who.agency_id, "role": who.role}

    good = rs256.sign(provider.claims())
    expired = rs256.sign(provider.claims(exp=int(time.time()) - 3600, agency="agency-secret-name"))
    async with client_of(app, "http://svc") as client:
        ok = await client.get("/me", headers={"Authorization": f"Bearer {good}"})
        refused = await client.get("/me", headers={"Authorization": f"Bearer {expired}"})
        again = await client.get("/me", headers={"Authorization": f"Bearer {good}"})
    assert (ok.status_code, ok.json()) == (200, {"agency": "agency-a", "role": "care-manager"})
    assert again.json() == ok.json()
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json() == {"detail": "invalid token: ExpiredSignatureError"}


# Settings


@pytest.mark.parametrize(
    "changes",
    [
        {"oidc_audience": None},
        {"oidc_algorithms": "HS256"},
        {"oidc_algorithms": "RS256,none"},
        {"oidc_algorithms": ""},
        {"oidc_issuer": "http://idp.example/realms/care"},
        {"oidc_jwks_url": "http://idp.example/certs"},
        {"oidc_issuer": "careloop-dev"},
    ],
    ids=[
        "no-audience",
        "hs256",
        "none",
        "no-algorithm",
        "plain-http-issuer",
        "plain-http-jwks",
        "dev-issuer",
    ],
)
def test_oidc_settings_that_would_weaken_the_check_are_refused(changes):
    with pytest.raises(ValidationError):
        ServiceSettings(
            **{"oidc_issuer": "https://idp.example/realms/care", "oidc_audience": AUDIENCE, **changes}
        )


def test_oidc_settings_are_read_from_the_global_names(monkeypatch):
    monkeypatch.setenv("CARELOOP_OIDC_ISSUER", "https://idp.example/realms/care")
    monkeypatch.setenv("CARELOOP_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("CARELOOP_OIDC_ALGORITHMS", "ES256, RS256")
    monkeypatch.setenv("CARELOOP_OIDC_ROLE_CLAIM", "groups")
    settings = ServiceSettings()
    config = OidcConfig.from_settings(settings)
    assert config is not None
    assert (config.issuer, config.audience, config.algorithms) == (
        settings.oidc_issuer,
        AUDIENCE,
        ("ES256", "RS256"),
    )
    assert settings.oidc_role_claim == "groups"
