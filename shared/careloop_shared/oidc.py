"""Tokens from an OpenID Connect provider, checked with the keys it publishes (its JWKS).

The key set's address comes from settings or from discovery (``<issuer>/.well-known/openid-configuration``
-> ``jwks_uri``). Keys are cached; the set is fetched again when a token names a key we do not hold (the
provider rotated its keys) or the cache has passed its maximum age, but never more than once per minimum
interval, so a stream of tokens naming made-up keys cannot make us hammer the provider. While the provider
cannot be reached, the keys already held keep working. Fetches run in a thread, with a timeout.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from careloop_shared.logging import get_logger
from careloop_shared.settings import ServiceSettings, https_or_loopback

log = get_logger(__name__)

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
_MAX_DOCUMENT_BYTES = 1 << 20
_FETCH_ERRORS = (OSError, ValueError, http.client.HTTPException, jwt.PyJWTError)


class TokenRejected(Exception):
    """Why a provider's token was refused, in words that never repeat the token or its claims."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_s: float = 30.0
    refetch_min_s: float = 30.0
    max_age_s: float = 3600.0
    timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> OidcConfig | None:
        """None when no provider is configured (development tokens only)."""
        if not settings.oidc_issuer or not settings.oidc_audience:
            return None
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            algorithms=settings.oidc_algorithms,
            leeway_s=settings.oidc_leeway_s,
            refetch_min_s=settings.oidc_jwks_refetch_min_s,
            max_age_s=settings.oidc_jwks_max_age_s,
            timeout_s=settings.oidc_http_timeout_s,
        )

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"


class OidcVerifier:
    """Checks one provider's tokens; holds its keys between requests."""

    def __init__(self, config: OidcConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._jwks_url = config.jwks_url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._unreachable = False
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, once its signature, issuer, audience and times have been checked."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected(type(exc).__name__) from exc
        kid = header.get("kid")
        if header.get("alg") not in self.config.algorithms:
            raise TokenRejected("token algorithm not allowed")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("token names no key id")
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(type(exc).__name__) from exc
        return claims

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys or self._stale():
            async with self._lock:  # one fetch at a time; the others wait for its keys
                if (kid not in self._keys or self._stale()) and self._may_fetch():
                    await self._fetch_keys()
        key = self._keys.get(kid)
        if key is None and self._unreachable:
            raise TokenRejected("identity provider keys unavailable")
        if key is None:
            raise TokenRejected("token signed with an unknown key")
        return key

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self.config.max_age_s

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self.config.refetch_min_s

    async def _fetch_keys(self) -> None:
        self._attempted_at = self._clock()
        try:
            async with asyncio.timeout(self.config.timeout_s):
                keys = await asyncio.to_thread(self._download_keys)
        except _FETCH_ERRORS as exc:
            self._unreachable = True
            self._jwks_url = self.config.jwks_url  # the provider may have moved its keys: discover again
            log.warning(
                "identity provider keys unavailable",
                issuer=self.config.issuer,
                error=type(exc).__name__,
                reason=str(exc)[:200],
            )
            return
        self._keys, self._fetched_at, self._unreachable = keys, self._clock(), False

    def _download_keys(self) -> dict[str, jwt.PyJWK]:
        """Runs in a thread: urllib blocks."""
        jwks_url = self._jwks_url or self._discover()
        self._jwks_url = jwks_url
        published = jwt.PyJWKSet.from_dict(_get_json(jwks_url, self.config.timeout_s))
        keys = {
            key.key_id: key
            for key in published.keys
            if key.key_id
            and key.public_key_use in (None, "sig")
            and key.algorithm_name in self.config.algorithms
        }
        if not keys:
            raise ValueError("the key set holds no signing key for the allowed algorithms")
        return keys

    def _discover(self) -> str:
        document = _get_json(self.config.discovery_url, self.config.timeout_s)
        if document.get("issuer") != self.config.issuer:
            raise ValueError("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not https_or_loopback(jwks_uri):
            raise ValueError("the discovery document names no https jwks_uri")
        return jwks_uri


def _get_json(url: str, timeout_s: float) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        document = json.loads(response.read(_MAX_DOCUMENT_BYTES))
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return document


_verifiers: dict[OidcConfig, OidcVerifier] = {}


def verifier_for(config: OidcConfig) -> OidcVerifier:
    """One verifier, hence one key cache, per provider configuration in the process."""
    verifier = _verifiers.get(config)
    if verifier is None:
        verifier = _verifiers[config] = OidcVerifier(config)
    return verifier
