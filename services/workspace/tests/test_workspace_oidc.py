"""Sign-in at an OpenID Connect provider run here on 127.0.0.1: discovery, the authorization redirect,
and a token endpoint that checks the PKCE verifier, the redirect URI and the client."""

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from careloop_shared.auth import issue_token
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing.fakes import FakeClock
from workspace.config import WorkspaceSettings

AUDIENCE = "careloop-api"
CLIENT_ID = "careloop-workspace"
PERSON = {"sub": "kc-4711", "agency": "agency-harbor", "role": "care-manager"}


class Provider:
    """What the identity provider knows: its key, the codes it issued, and how to misbehave."""

    def __init__(self, port: int) -> None:
        self.issuer = f"http://127.0.0.1:{port}/realms/care"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = {**RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True), "kid": "k1", "use": "sig"}
        self.codes: dict[str, dict[str, str]] = {}
        self.client_secret: str | None = None
        self.nonce_override: str | None = None
        self.person: dict[str, str] = PERSON  # who the access token names
        self.access_token_override: str | None = None
        self.token_requests: list[dict[str, Any]] = []

    def sign(self, claims: dict[str, Any]) -> str:
        now = int(time.time())
        return jwt.encode(
            {"iss": self.issuer, "iat": now, "exp": now + 300, **claims},
            self.key,
            "RS256",
            headers={"kid": "k1"},
        )

    def get(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if path == "/realms/care/.well-known/openid-configuration":
            return (
                200,
                {},
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": self.issuer + "/auth",
                    "token_endpoint": self.issuer + "/token",
                    "jwks_uri": self.issuer + "/certs",
                    "code_challenge_methods_supported": ["S256"],
                },
            )
        if path == "/realms/care/certs":
            return 200, {}, {"keys": [self.jwk]}
        if path == "/realms/care/auth":
            ok = query.get("response_type") == "code" and query.get("client_id") == CLIENT_ID
            if (
                not ok
                or query.get("code_challenge_method") != "S256"
                or "openid" not in query["scope"].split()
            ):
                return 400, {}, {"error": "invalid_request"}
            code = secrets.token_urlsafe(16)
            self.codes[code] = query
            location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
            return 302, {"Location": location}, {}
        return 404, {}, {}

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, Any]:
        self.token_requests.append({**form, "authorization": authorization})
        asked = self.codes.pop(form.get("code", ""), None)  # a code works once
        if form.get("grant_type") != "authorization_code" or asked is None:
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != asked["redirect_uri"]:
            return 400, {"error": "invalid_grant"}
        if not self._client_ok(form, authorization):
            return 401, {"error": "invalid_client"}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != asked["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        return 200, {
            "access_token": self.access_token_override or self.sign({**self.person, "aud": AUDIENCE}),
            "id_token": self.sign(
                {"sub": PERSON["sub"], "aud": CLIENT_ID, "nonce": self.nonce_override or asked["nonce"]}
            ),
            "token_type": "Bearer",
            "expires_in": 300,
        }

    def _client_ok(self, form: dict[str, str], authorization: str | None) -> bool:
        if self.client_secret is None:
            return form.get("client_id") == CLIENT_ID
        expected = base64.b64encode(f"{CLIENT_ID}:{self.client_secret}".encode()).decode()
        return authorization == f"Basic {expected}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self._send(*self.server.provider.get(parts.path, query))  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        status, body = self.server.provider.token(form, self.headers.get("Authorization"))  # type: ignore[attr-defined]
        self._send(status, {}, body)

    def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.provider = Provider(server.server_address[1])  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server.provider  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))  # the provider's tokens carry real times


@pytest.fixture
def oidc_settings(provider) -> WorkspaceSettings:
    return WorkspaceSettings(
        oidc_issuer=provider.issuer, oidc_audience=AUDIENCE, oidc_client_id=CLIENT_ID, oidc_http_timeout_s=2.0
    )


async def at_provider(location: str) -> str:
    """The browser at the provider's authorization endpoint: where it is sent back to."""
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(location)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == "http://127.0.0.1:8000"
    return f"{back.path}?{back.query}"


async def test_signing_in_at_the_provider_uses_pkce_state_and_nonce_and_keeps_the_token_server_side(
    make_app, open_browser, oidc_settings, provider, store, services
):
    async with open_browser(make_app(oidc_settings)) as http:
        page = await http.get("/signin")
        assert 'href="/signin/oidc"' in page.text
        assert "Sign in as cm-riverside-ana" in page.text  # on loopback, development sign-in too
        start = await http.get("/signin/oidc")
        assert start.status_code == 303
        sent = urlsplit(start.headers["location"])
        asked = {k: v[0] for k, v in parse_qs(sent.query).items()}
        assert f"{sent.scheme}://{sent.netloc}{sent.path}" == provider.issuer + "/auth"
        assert asked["redirect_uri"] == "http://127.0.0.1:8000/signin/oidc/callback"
        assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
        assert asked["state"] != asked["nonce"]

        callback = await http.get(await at_provider(start.headers["location"]))
        assert callback.status_code == 303, callback.text
        assert callback.headers["location"] == "/"
        [session] = [s for s in store.rows.values() if s.person is not None]
        assert (session.person.subject, session.person.agency_id, session.person.role) == tuple(
            PERSON.values()
        )
        assert session.signed_in_via == "oidc"
        assert session.login is None
        assert jwt.decode(session.access_token, options={"verify_signature": False})["aud"] == AUDIENCE
        assert session.access_token not in callback.headers.get("set-cookie", "")

        assert (await http.get("/")).status_code == 200
        [call] = services.called("followup", "/v1/tasks")
        assert call.headers["authorization"] == f"Bearer {session.access_token}"
    [exchange] = provider.token_requests
    assert exchange["client_id"] == CLIENT_ID and exchange["authorization"] is None  # a public client


async def test_a_confidential_client_authenticates_with_its_secret(make_app, open_browser, provider, store):
    provider.client_secret = "s3cret/with:odd chars"
    settings = WorkspaceSettings(
        oidc_issuer=provider.issuer,
        oidc_audience=AUDIENCE,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret="s3cret/with:odd chars",
    )
    provider.client_secret = "s3cret%2Fwith%3Aodd%20chars"  # what RFC 6749 2.3.1 puts in the header
    async with open_browser(make_app(settings)) as http:
        start = await http.get("/signin/oidc")
        callback = await http.get(await at_provider(start.headers["location"]))
    assert callback.status_code == 303, callback.text
    assert "client_id" not in provider.token_requests[0]


async def test_a_callback_with_another_state_or_none_started_is_refused(
    make_app, open_browser, oidc_settings, provider, store
):
    async with open_browser(make_app(oidc_settings)) as http:
        start = await http.get("/signin/oidc")
        back = await at_provider(start.headers["location"])
        forged = back.replace("state=", "state=x")
        refused = await http.get(forged)
        assert refused.status_code == 400
        assert "This sign-in was not started here or has expired" in refused.text
        again = await http.get(back)  # the sign-in under way was used up by the forged attempt
        assert again.status_code == 400
    async with open_browser(make_app(oidc_settings)) as stranger:  # a callback in another browser
        assert (await stranger.get(back)).status_code == 400
    assert all(s.person is None for s in store.rows.values())


async def test_a_code_exchanged_without_the_right_verifier_signs_nobody_in(
    make_app, open_browser, oidc_settings, provider, store
):
    async with open_browser(make_app(oidc_settings)) as http:
        start = await http.get("/signin/oidc")
        back = await at_provider(start.headers["location"])
        [session] = store.rows.values()
        store.rows[session.id_hash] = session.__class__(
            **{
                **session.__dict__,
                "login": session.login.__class__(session.login.state, session.login.nonce, "x" * 64),
            }
        )
        refused = await http.get(back)
    assert refused.status_code == 400
    assert "The identity provider refused the sign-in (invalid_grant); try again." in refused.text
    assert all(s.person is None for s in store.rows.values())


async def test_an_id_token_for_another_sign_in_is_refused(
    make_app, open_browser, oidc_settings, provider, store
):
    provider.nonce_override = "someone-elses-nonce"
    async with open_browser(make_app(oidc_settings)) as http:
        start = await http.get("/signin/oidc")
        refused = await http.get(await at_provider(start.headers["location"]))
    assert refused.status_code == 400
    assert "(nonce)" in refused.text
    assert all(s.person is None for s in store.rows.values())


async def test_a_token_naming_the_service_role_signs_nobody_in(
    make_app, open_browser, oidc_settings, provider, store
):
    provider.person = {**PERSON, "role": ["service"]}  # a provider's group of that name grants nothing
    async with open_browser(make_app(oidc_settings)) as http:
        start = await http.get("/signin/oidc")
        refused = await http.get(await at_provider(start.headers["location"]))
    assert refused.status_code == 400
    assert "would not be accepted by careloop: token names no known role" in refused.text
    # Nor a service's own token (the shared secret's), should one come back as the access token.
    provider.access_token_override = issue_token(
        DEV_JWT_SECRET, agency="agency-harbor", role="service", subject="careplan"
    )
    async with open_browser(make_app(oidc_settings)) as http:
        start = await http.get("/signin/oidc")
        refused = await http.get(await at_provider(start.headers["location"]))
    assert refused.status_code == 400
    assert "Your access token names a service, not a person" in refused.text
    assert all(s.person is None for s in store.rows.values())


async def test_the_providers_refusal_is_said_plainly_without_repeating_its_text(
    make_app, open_browser, oidc_settings, provider
):
    async with open_browser(make_app(oidc_settings)) as http:
        await http.get("/signin/oidc")
        denied = await http.get("/signin/oidc/callback?error=access_denied&error_description=<b>hi</b>")
        assert "The identity provider did not sign you in (access_denied)." in denied.text
        odd = await http.get("/signin/oidc/callback?error=<script>")
        assert "(unknown_error)" in odd.text and "<script>" not in odd.text


async def test_a_provider_that_cannot_be_reached_is_said_plainly(make_app, open_browser, store):
    settings = WorkspaceSettings(
        oidc_issuer="http://127.0.0.1:9/realms/care", oidc_audience=AUDIENCE, oidc_client_id=CLIENT_ID
    )
    async with open_browser(make_app(settings)) as http:
        answer = await http.get("/signin/oidc")
    assert answer.status_code == 502
    assert "The identity provider could not be reached; try again." in answer.text


def test_oidc_needs_an_issuer_and_an_https_address_beyond_loopback():
    with pytest.raises(ValueError, match="CARELOOP_OIDC_ISSUER") as refused:
        WorkspaceSettings(oidc_client_id=CLIENT_ID, oidc_client_secret="the-client-secret")
    assert "the-client-secret" not in str(refused.value)  # the error names settings, never their values
    with pytest.raises(ValueError, match="WORKSPACE_PUBLIC_URL must be https"):
        WorkspaceSettings(
            oidc_issuer="https://id.example/realms/care",
            oidc_audience=AUDIENCE,
            oidc_client_id=CLIENT_ID,
            host="0.0.0.0",
            public_url="http://careloop.example",
        )
    settings = WorkspaceSettings(
        oidc_issuer="https://id.example/realms/care",
        oidc_audience=AUDIENCE,
        oidc_client_id=CLIENT_ID,
        host="0.0.0.0",
        public_url="https://careloop.example/",
    )
    assert settings.base_url == "https://careloop.example"
