"""Where the services are, and a client that calls them with a development token."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

from careloop_shared.auth import issue_token
from careloop_shared.settings import ServiceSettings

DEFAULT_PORTS = {"intake": 8001, "careplan": 8002, "referral": 8003, "followup": 8004, "record": 8005}


def service_url(service: str) -> str:
    return os.environ.get(
        f"CARELOOP_{service.upper()}_URL",
        f"http://127.0.0.1:{os.environ.get(f'{service.upper()}_PORT', DEFAULT_PORTS[service])}",
    )


def dev_token(agency: str, role: str = "care-manager", subject: str = "dev-user") -> str:
    settings = ServiceSettings()
    return issue_token(
        settings.jwt_secret.get_secret_value(),
        agency=agency,
        role=role,
        subject=subject,
        issuer=settings.jwt_issuer,
    )


@dataclass
class Careloop:
    """Calls the services as one agency."""

    agency: str
    role: str = "care-manager"
    person: str = "dev-user"  # the token's subject: who careloop records as acting
    timeout: float = 15.0

    def __post_init__(self) -> None:
        self._http = httpx.Client(
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {dev_token(self.agency, self.role, self.person)}"},
        )

    def close(self) -> None:
        self._http.close()

    def get(self, service: str, path: str, **params: Any) -> Any:
        response = self._http.get(
            service_url(service) + path, params={k: v for k, v in params.items() if v is not None}
        )
        response.raise_for_status()
        return response.json()

    def post(self, service: str, path: str, body: Any = None, *, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self._http.post(service_url(service) + path, json=body, headers=headers)
