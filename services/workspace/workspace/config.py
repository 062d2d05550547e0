"""The workspace's settings (from the environment) and context (what its pages are configured with)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from careloop_shared.clock import Clock, system_clock
from careloop_shared.settings import (
    DEV_JWT_SECRET,
    LOOPBACK_HOSTS,
    ServiceSettings,
    https_or_loopback,
    service_config,
)

# The services the workspace calls, and where each listens by default (the ports `make up` uses).
SERVICE_PORTS = {"intake": 8001, "careplan": 8002, "referral": 8003, "followup": 8004, "record": 8005}


class WorkspaceSettings(ServiceSettings):
    # An error names the setting, never the values given (they include the client secret).
    model_config = service_config("WORKSPACE_") | SettingsConfigDict(hide_input_in_errors=True)

    service_name: str = "workspace"
    port: int = 8000
    db_pool_min: int = 1
    db_pool_max: int = 5

    intake_url: str = "http://127.0.0.1:8001"  # WORKSPACE_INTAKE_URL ...
    careplan_url: str = "http://127.0.0.1:8002"
    referral_url: str = "http://127.0.0.1:8003"
    followup_url: str = "http://127.0.0.1:8004"
    record_url: str = "http://127.0.0.1:8005"
    http_timeout_s: float = Field(5.0, gt=0)  # WORKSPACE_HTTP_TIMEOUT_S: each call to a service

    # Where browsers reach the workspace (behind a proxy, its https address); the OIDC redirect URI
    # is <public_url>/signin/oidc/callback. Unset: http://<host>:<port>.
    public_url: str | None = None
    # Development sign-in (pick a demo person, a development token is minted). Unset: only on loopback.
    dev_signin: bool | None = None
    # Secure cookies are always used beyond loopback; true also on loopback (behind a TLS proxy there).
    cookie_secure: bool = False
    session_ttl_s: int = Field(8 * 3600, gt=0)  # a session ends this long after sign-in at the latest
    session_idle_s: int = Field(30 * 60, gt=0)  # ... or after this long without a request
    time_zone: str = "UTC"  # WORKSPACE_TIME_ZONE: how due times are shown and what "today" means
    page_size: int = Field(20, ge=1, le=200)  # rows per list on a page

    # OpenID Connect sign-in (authorization code with PKCE) at CARELOOP_OIDC_ISSUER's provider.
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None  # unset: a public client (PKCE alone)
    oidc_scopes: str = "openid profile"

    @model_validator(mode="after")
    def _workspace_consistent(self) -> Self:
        if self.oidc_client_id and not self.oidc_issuer:
            raise ValueError(
                "WORKSPACE_OIDC_CLIENT_ID needs CARELOOP_OIDC_ISSUER (and CARELOOP_OIDC_AUDIENCE)"
            )
        if self.oidc_client_id and not https_or_loopback(self.base_url):
            raise ValueError("WORKSPACE_PUBLIC_URL must be https (plain http only on loopback) for OIDC")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                "WORKSPACE_TIME_ZONE must name an IANA time zone, such as America/Chicago"
            ) from exc
        return self

    @property
    def on_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def dev_signin_allowed(self) -> bool:
        return self.on_loopback if self.dev_signin is None else self.dev_signin

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_client_id and self.oidc_issuer)

    def service_urls(self) -> dict[str, str]:
        return {name: getattr(self, f"{name}_url").rstrip("/") for name in SERVICE_PORTS}

    def unsafe_to_serve(self) -> str | None:
        """Why this configuration must not start, or None."""
        development_secret = self.jwt_secret.get_secret_value() == DEV_JWT_SECRET
        if self.dev_signin_allowed and development_secret and not self.on_loopback:
            # Anyone could sign in as anybody with tokens everyone can mint.
            return (
                f"refusing development sign-in on {self.host} with the development JWT secret;"
                " set CARELOOP_JWT_SECRET or WORKSPACE_DEV_SIGNIN=false"
            )
        return None


@dataclass(frozen=True)
class WorkspaceContext:
    """What the pages and sign-in are configured with, derived once from the settings."""

    settings: WorkspaceSettings
    clock: Clock = system_clock

    @property
    def secure_cookies(self) -> bool:
        return self.settings.cookie_secure or not self.settings.on_loopback

    @property
    def session_cookie(self) -> str:
        # __Host-: the browser keeps it only if Secure, for this host alone, on every path.
        return "__Host-careloop_session" if self.secure_cookies else "careloop_session"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.time_zone)

    def today(self) -> date:
        """Today in the workspace's time zone."""
        return self.clock().astimezone(self.zone).date()
