"""Signing in at an OpenID Connect provider: the authorization-code flow with PKCE (S256), state and nonce.

1. ``authorization_url``: the provider's authorization endpoint (from discovery) with a fresh state, nonce
   and PKCE challenge; the state, nonce and verifier stay in the visitor's session row (``Login``).
2. The provider sends the browser back to ``/signin/oidc/callback?code&state``; the route checks the state
   against the session's, then ``complete`` exchanges the code (with the verifier) at the token endpoint,
   checks the ID token (signature from the provider's keys, issuer, audience = our client id, nonce) and
   reads the person from the access token exactly as the services will (``careloop_shared.auth``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt

from careloop_shared.auth import PEOPLE_ROLES, InvalidToken, verify_bearer
from careloop_shared.clock import Clock
from careloop_shared.errors import SafeMessageError
from careloop_shared.logging import get_logger
from careloop_shared.oidc import OidcConfig, TokenRejected, verifier_for
from careloop_shared.settings import https_or_loopback
from workspace.config import WorkspaceSettings
from workspace.sessions import Login, Person

log = get_logger(__name__)

CALLBACK_PATH = "/signin/oidc/callback"
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")  # OAuth error codes; anything else is not repeated


class OidcSignInFailed(SafeMessageError):
    """Why a sign-in at the provider did not complete, in words for the person (no token, no claim)."""


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str


@dataclass(frozen=True)
class SignedIn:
    person: Person
    access_token: str
    expires_at: datetime


def code_challenge(verifier: str) -> str:
    """PKCE S256: the provider sees only this; the token request proves we hold the verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def provider_error(code: str | None) -> str:
    """The provider's error code, when it is one (never free text from the query string)."""
    return code if code and _ERROR_CODE.match(code) else "unknown_error"


class OidcClient:
    """The workspace as a relying party of the provider at ``CARELOOP_OIDC_ISSUER``."""

    def __init__(self, settings: WorkspaceSettings, http: httpx.AsyncClient, clock: Clock) -> None:
        assert settings.oidc_client_id and settings.oidc_issuer and settings.oidc_audience
        self.settings = settings
        self.client_id = settings.oidc_client_id
        self.issuer = settings.oidc_issuer
        self.redirect_uri = settings.base_url + CALLBACK_PATH
        self._http = http
        self._clock = clock
        self._endpoints: Endpoints | None = None
        # The ID token's audience is this client; its keys are the provider's, cached by the kernel.
        self._id_tokens = verifier_for(
            OidcConfig(
                issuer=self.issuer,
                audience=self.client_id,
                jwks_url=settings.oidc_jwks_url,
                algorithms=settings.oidc_algorithms,
                leeway_s=settings.oidc_leeway_s,
                refetch_min_s=settings.oidc_jwks_refetch_min_s,
                max_age_s=settings.oidc_jwks_max_age_s,
                timeout_s=settings.oidc_http_timeout_s,
            )
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def authorization_url(self, login: Login) -> str:
        endpoints = await self.endpoints()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.settings.oidc_scopes,
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": code_challenge(login.verifier),
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in endpoints.authorization else "?"
        return f"{endpoints.authorization}{separator}{urlencode(query)}"

    async def complete(self, login: Login, code: str) -> SignedIn:
        """The person and their access token, once the code is exchanged and every check has passed."""
        tokens = await self._exchange(code, login.verifier)
        access_token, id_token = tokens.get("access_token"), tokens.get("id_token")
        if not isinstance(access_token, str) or not isinstance(id_token, str):
            raise OidcSignInFailed("The identity provider's answer lacked a token; try again.")
        await self._check_id_token(id_token, login.nonce)
        try:
            principal = await verify_bearer(access_token, self.settings)
        except InvalidToken as exc:
            raise OidcSignInFailed(f"Your access token would not be accepted by careloop: {exc}.") from exc
        if principal.role not in PEOPLE_ROLES:
            raise OidcSignInFailed("Your access token names a service, not a person; it cannot sign in here.")
        return SignedIn(
            Person(principal.subject, principal.agency_id, principal.role),
            access_token,
            self._expiry(tokens.get("expires_in"), access_token),
        )

    async def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            document = await self._get_json(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
            if document.get("issuer") != self.issuer:
                raise OidcSignInFailed("The identity provider's discovery document names another issuer.")
            urls = [document.get("authorization_endpoint"), document.get("token_endpoint")]
            if not all(isinstance(url, str) and https_or_loopback(url) for url in urls):
                raise OidcSignInFailed(
                    "The identity provider names no https authorization or token endpoint."
                )
            methods = document.get("code_challenge_methods_supported")
            if isinstance(methods, list) and "S256" not in methods:
                raise OidcSignInFailed("The identity provider does not support PKCE with S256.")
            self._endpoints = Endpoints(str(urls[0]), str(urls[1]))
        return self._endpoints

    async def _exchange(self, code: str, verifier: str) -> dict[str, Any]:
        endpoints = await self.endpoints()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        headers = {"Accept": "application/json"}
        secret = self.settings.oidc_client_secret
        if secret is None:
            form["client_id"] = self.client_id  # a public client: PKCE is its proof
        else:
            # client_secret_basic: each part form-encoded first (RFC 6749, section 2.3.1).
            pair = f"{quote(self.client_id, safe='')}:{quote(secret.get_secret_value(), safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            response = await self._http.post(endpoints.token, data=form, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("identity provider unreachable", error=type(exc).__name__)
            raise OidcSignInFailed("The identity provider could not be reached; try again.") from exc
        body = _json_object(response)
        if response.status_code != 200:
            reason = provider_error(body.get("error") if isinstance(body.get("error"), str) else None)
            log.warning("token request refused", status=response.status_code, reason=reason)
            raise OidcSignInFailed(f"The identity provider refused the sign-in ({reason}); try again.")
        return body

    async def _check_id_token(self, id_token: str, nonce: str) -> None:
        try:
            claims = await self._id_tokens.verify(id_token)
        except TokenRejected as exc:
            raise OidcSignInFailed(f"The identity provider's ID token was refused: {exc}.") from exc
        presented = claims.get("nonce")
        if not isinstance(presented, str) or not hmac.compare_digest(presented.encode(), nonce.encode()):
            raise OidcSignInFailed("The sign-in answer was not for this sign-in (nonce); try again.")
        if "azp" in claims and claims["azp"] != self.client_id:
            raise OidcSignInFailed("The ID token was issued to another client.")

    def _expiry(self, expires_in: Any, access_token: str) -> datetime:
        """When the access token stops being accepted (a token that says nothing: the session's end)."""
        now = self._clock()
        candidates = []
        if isinstance(expires_in, int | float) and expires_in > 0:
            candidates.append(now + timedelta(seconds=float(expires_in)))
        exp = jwt.decode(access_token, options={"verify_signature": False}).get("exp")
        if isinstance(exp, int | float):
            candidates.append(datetime.fromtimestamp(exp, now.tzinfo))
        return min(candidates, default=now + timedelta(seconds=self.settings.session_ttl_s))

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            log.warning("identity provider unreachable", error=type(exc).__name__)
            raise OidcSignInFailed("The identity provider could not be reached; try again.") from exc
        if response.status_code != 200:
            raise OidcSignInFailed(f"The identity provider answered {response.status_code}; try again.")
        return _json_object(response)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
