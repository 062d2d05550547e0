"""The workspace's test fixtures: an in-memory session table, fake services answering over
``httpx.MockTransport``, a clock, the app, and a browser-like client that signs in as a demo person."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from careloop_shared.testing import client_of
from careloop_shared.testing.fakes import FakeClock
from workspace.config import WorkspaceSettings
from workspace.main import build_app
from workspace.sessions import Login, Session

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BASE_URL = "http://127.0.0.1:8000"
ANA = {"agency": "agency-riverside", "role": "care-manager", "subject": "cm-riverside-ana"}
ANN_ID = "33333333-3333-4333-8333-333333333333"
# A patient of ANA's as intake's /v1 answers for her (tests change what they need: ``{**ANN, ...}``).
ANN = {
    "id": ANN_ID,
    "given_name": "Ann",
    "family_name": "Example",
    "birth_date": "1958-04-11",
    "preferred_language": "es",
    "contact_preference": "text",
    "phone": "+1 555 0100",
    "email": None,
    "postal_code": "94110",
    "care_manager_id": "cm-riverside-ana",
    "safe_channels": ["text"],
    "created_at": "2026-03-02T08:00:00+00:00",
    "updated_at": "2026-03-02T08:00:00+00:00",
}


class FakeSessionStore:
    """Behaves like ``store.SessionStore`` (same methods, same answers), in memory."""

    def __init__(self) -> None:
        self.rows: dict[bytes, Session] = {}

    async def insert(self, session: Session) -> None:
        assert session.id_hash not in self.rows, "duplicate key"
        self.rows[session.id_hash] = session

    async def get(self, id_hash: bytes) -> Session | None:
        return self.rows.get(id_hash)

    async def set_login(self, id_hash: bytes, login: Login | None) -> None:
        if id_hash in self.rows:
            self.rows[id_hash] = replace(self.rows[id_hash], login=login)

    async def touch(self, id_hash: bytes, at: datetime) -> None:
        if id_hash in self.rows:
            self.rows[id_hash] = replace(self.rows[id_hash], last_seen_at=at)

    async def delete(self, id_hash: bytes) -> None:
        self.rows.pop(id_hash, None)

    async def delete_expired(self, now: datetime, idle_before: datetime) -> int:
        ended = [k for k, s in self.rows.items() if s.expires_at <= now or s.last_seen_at < idle_before]
        for key in ended:
            del self.rows[key]
        return len(ended)

    async def ping(self) -> None:
        return None


class FakeServices:
    """The other services: answers by (service port, method, path); every request is kept."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str, str], Callable[[httpx.Request], httpx.Response]] = {}
        self.requests: list[httpx.Request] = []

    def answer(self, service: str, method: str, path: str, status: int = 200, body: Any = None) -> None:
        self.answers[(service, method, path)] = lambda _: httpx.Response(status, json=body)

    def answer_with(
        self, service: str, method: str, path: str, respond: Callable[[httpx.Request], httpx.Response]
    ) -> None:
        self.answers[(service, method, path)] = respond

    def page(
        self, service: str, path: str, items: list[dict[str, Any]], next_offset: int | None = None
    ) -> None:
        self.answer(
            service, "GET", path, body={"items": items, "limit": 20, "offset": 0, "next_offset": next_offset}
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        service = SERVICE_BY_PORT[request.url.port or 80]
        respond = self.answers.get((service, request.method, request.url.path))
        if respond is None:
            return httpx.Response(404, json={"detail": "not found"})
        return respond(request)

    def called(self, service: str, path: str) -> list[httpx.Request]:
        port = {v: k for k, v in SERVICE_BY_PORT.items()}[service]
        return [r for r in self.requests if r.url.port == port and r.url.path == path]


SERVICE_BY_PORT = {8001: "intake", 8002: "careplan", 8003: "referral", 8004: "followup", 8005: "record"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def store() -> FakeSessionStore:
    return FakeSessionStore()


@pytest.fixture
def services() -> FakeServices:
    fake = FakeServices()
    for path in ("/v1/tasks", "/v1/work-queue", "/v1/follow-ups", "/v1/caseload"):
        fake.page("followup", path, [])
    return fake


@pytest.fixture
def settings() -> WorkspaceSettings:
    return WorkspaceSettings()


@pytest.fixture
def make_app(clock, store, services) -> Callable[[WorkspaceSettings], Any]:
    """The app with these settings, over the fake session table and the fake services."""

    def make(settings: WorkspaceSettings) -> Any:
        transport = httpx.MockTransport(services.handle)
        return build_app(settings, clock=clock, store=store, services_transport=transport)

    return make


@pytest_asyncio.fixture
async def client(settings, make_app) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(make_app(settings)) as http:
        yield http


@pytest.fixture
def open_browser() -> Callable[..., httpx.AsyncClient]:
    """``async with open_browser(app, base_url) as http``: another browser, on another app."""
    return browser


def browser(app: Any, base_url: str = BASE_URL) -> httpx.AsyncClient:
    """A client that keeps cookies and does not follow redirects (tests look at each step)."""
    return client_of(app, base_url, follow_redirects=False)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf_of(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match, "the page has no form with a CSRF token"
    return html.unescape(match.group(1))


def form_value(page: httpx.Response, name: str) -> str:
    """The value a page's form field ``name`` holds (the first such field)."""
    match = re.search(rf'name="{name}"[^>]*? value="([^"]*)"', page.text)
    assert match, f"no {name} on the page"
    return html.unescape(match.group(1))


async def _sign_in(http: httpx.AsyncClient, person: dict[str, str] = ANA) -> httpx.Response:
    page = await http.get("/signin")
    answer = await http.post("/signin/development", data={**person, "csrf_token": _csrf_of(page)})
    assert answer.status_code == 303, answer.text
    return answer


@pytest.fixture
def csrf_of() -> Callable[[httpx.Response], str]:
    """The CSRF token of the first form on a page."""
    return _csrf_of


@pytest.fixture
def sign_in() -> Callable[..., Any]:
    """``await sign_in(client, person=ANA)``: development sign-in as a person, as a browser would."""
    return _sign_in


@pytest.fixture
def make_task() -> Callable[..., dict[str, Any]]:
    return _task


@pytest.fixture
def make_follow_up() -> Callable[..., dict[str, Any]]:
    return _follow_up


def _task(priority: str = "routine", kind: str = "follow-up-due", **changes: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "patient_id": str(uuid.uuid4()),
        "priority": priority,
        "status": "open",
        "due_at": NOW.isoformat(),
        "escalate_at": None,
        "escalated_at": None,
        "for_role": "care-manager",
        "assignee_id": "cm-riverside-ana",
        "assignee_role": "care-manager",
        **changes,
    }


def _follow_up(status: str = "due", **changes: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "patient_id": str(uuid.uuid4()),
        "reason": "plan-cadence",
        "priority": "routine",
        "due_at": NOW.isoformat(),
        "overdue_at": NOW.isoformat(),
        "status": status,
        "attempt": 1,
        "channel": "phone",
        "assignee_id": "cm-riverside-ana",
        **changes,
    }
