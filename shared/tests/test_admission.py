"""Admission (``careloop_shared.admission``): how many requests a service works on at once and how long
one waits its turn; no broker, no database. Requests are held inside the app by events the test sets."""

import asyncio

import httpx
import pytest
from fastapi import APIRouter
from starlette.types import Receive, Scope, Send

from careloop_shared import metrics
from careloop_shared.admission import BUSY, Admission
from careloop_shared.auth import issue_token
from careloop_shared.http import needs
from careloop_shared.settings import DEV_JWT_SECRET, ServiceSettings
from careloop_shared.testing import app_of, client_of, until


class HeldApp:
    """Answers 200 once the test releases the request named by its path; notes who got in, in order."""

    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = {}
        self.entered: list[str] = []

    def gate(self, path: str) -> asyncio.Event:
        return self.release.setdefault(path, asyncio.Event())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        self.entered.append(path)
        await self.gate(path).wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": path.encode()})


def build(limit: int = 1, wait_s: float = 5.0, service: str = "admission-test") -> tuple[HeldApp, Admission]:
    inner = HeldApp()
    return inner, Admission(inner, limit=limit, wait_s=wait_s, exempt=("/healthz",), service=service)


def client(app: Admission) -> httpx.AsyncClient:
    return client_of(app, "http://t")


def refused(service: str) -> float:
    labels = {"service_name": service}
    return metrics.REGISTRY.get_sample_value("careloop_http_refused_busy_total", labels) or 0.0


async def test_requests_under_the_limit_go_straight_in():
    inner, gate = build(limit=2)
    async with client(gate) as http:
        first = asyncio.create_task(http.get("/a"))
        second = asyncio.create_task(http.get("/b"))
        await until(lambda: len(inner.entered) == 2, "both inside")
        inner.gate("/a").set()
        inner.gate("/b").set()
        assert [(await first).status_code, (await second).status_code] == [200, 200]


async def test_past_the_limit_requests_wait_and_enter_in_order_of_arrival():
    inner, gate = build(limit=1)
    async with client(gate) as http:
        tasks = {"/a": asyncio.create_task(http.get("/a"))}
        await until(lambda: inner.entered == ["/a"], "a inside")
        for waiting, path in enumerate(("/b", "/c"), start=1):
            tasks[path] = asyncio.create_task(http.get(path))
            await until(lambda n=waiting: len(gate._waiting) == n, f"{path} waiting")
        assert inner.entered == ["/a"]
        inner.gate("/a").set()
        await until(lambda: inner.entered == ["/a", "/b"], "b next")
        inner.gate("/b").set()
        inner.gate("/c").set()
        answers = [await tasks[p] for p in ("/a", "/b", "/c")]
    assert [a.text for a in answers] == ["/a", "/b", "/c"]
    assert inner.entered == ["/a", "/b", "/c"]
    assert gate._inside == 0


async def test_a_request_that_waited_too_long_is_refused_503_before_it_runs():
    inner, gate = build(limit=1, wait_s=0.05, service="admission-refused")
    before = refused("admission-refused")
    async with client(gate) as http:
        holder = asyncio.create_task(http.get("/a"))
        await until(lambda: inner.entered == ["/a"], "a inside")
        answer = await http.post("/b", json={"x": 1})
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json() == {"detail": BUSY}
        assert inner.entered == ["/a"]  # /b never ran
        assert refused("admission-refused") == before + 1
        inner.gate("/a").set()
        assert (await holder).status_code == 200
        # The place is free again: the next request goes in at once.
        inner.gate("/c").set()
        assert (await http.get("/c")).status_code == 200
    assert gate._inside == 0


async def test_exempt_paths_are_never_held():
    inner, gate = build(limit=1, wait_s=0.05)
    async with client(gate) as http:
        holder = asyncio.create_task(http.get("/a"))
        await until(lambda: inner.entered == ["/a"], "a inside")
        inner.gate("/healthz").set()
        assert (await http.get("/healthz")).status_code == 200
        inner.gate("/a").set()
        await holder


async def test_a_waiter_whose_client_leaves_gives_its_place_up():
    inner, gate = build(limit=1)
    async with client(gate) as http:
        holder = asyncio.create_task(http.get("/a"))
        await until(lambda: inner.entered == ["/a"], "a inside")
        leaver = asyncio.create_task(http.get("/b"))
        await until(lambda: len(gate._waiting) == 1, "b waiting")
        leaver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaver
        stayer = asyncio.create_task(http.get("/c"))
        await until(lambda: len(gate._waiting) >= 1 and not gate._waiting[-1].done(), "c waiting")
        inner.gate("/a").set()
        await holder
        await until(lambda: inner.entered == ["/a", "/c"], "c in, b skipped")
        inner.gate("/c").set()
        assert (await stayer).status_code == 200
    assert gate._inside == 0 and not [t for t in gate._waiting if not t.done()]


async def test_a_turn_given_as_the_wait_runs_out_is_taken_not_lost():
    _, gate = build(limit=1, wait_s=10.0)
    assert await gate._enter()  # the one inside
    waiter = asyncio.create_task(gate._enter())
    await until(lambda: len(gate._waiting) == 1, "waiting")
    gate._leave()  # its turn comes...
    waiter.cancel()  # ...and its request is cancelled before it resumes: the turn is passed on
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate._inside == 0
    assert await gate._enter()
    gate._leave()
    assert gate._inside == 0


async def test_every_service_app_holds_its_routes_to_its_limit_but_never_its_metrics():
    held = asyncio.Event()
    inside: list[str] = []
    router = APIRouter()

    @router.get("/v1/slow", openapi_extra=needs("patient:read"))
    async def slow() -> dict[str, str]:
        inside.append("slow")
        await held.wait()
        return {}

    app = app_of("test-admission-app", [router], ServiceSettings(http_max_active=1, http_queue_wait_s=0.05))
    token = issue_token(DEV_JWT_SECRET, agency="agency-a", role="care-manager")
    auth = {"Authorization": f"Bearer {token}"}
    async with client_of(app, "http://t") as http:
        first = asyncio.create_task(http.get("/v1/slow", headers=auth))
        await until(lambda: inside == ["slow"], "first inside")
        second = await http.get("/v1/slow", headers=auth)
        assert (second.status_code, second.headers["retry-after"]) == (503, "1")
        assert inside == ["slow"]
        assert (await http.get("/metrics")).status_code == 200
        held.set()
        assert (await first).status_code == 200
    answers = app.openapi()["paths"]["/v1/slow"]["get"]["responses"]
    assert "Retry-After" in answers["503"]["headers"]
