"""The browser tests' machinery: the six services as separate processes, Debian's chromium driven by
Playwright, a page per signed-in person, screenshots and an axe-core accessibility check.

- ``platform`` (one for all the browser tests, stopped after the last of them): intake, careplan, referral,
  followup, record and the workspace, each its own process against the real broker and database, with
  their own topic prefix (deleted at the session's end, as ``unique_prefix`` arranges) and databases.
- ``browser``: chromium, launched once (``deploy/local/browser.sh`` installs it and fetches
  axe-core; without them the tests fail saying what to run, or skip when ``CARELOOP_SKIP_BROWSER=1``).
- ``cases``: two patients of two agencies, each referred to another receiving agency (``cases.py``).
- ``signed_in(person)``: a new browser context (its own cookies) signed in through the development
  sign-in page as that person (a demo person's id, or ``Person(subject, agency, role)``); the page.
- ``screenshot(page, name)``: a full-page PNG under ``.artifacts/screenshots/``.
- ``accessibility(page, name)``: runs axe-core on the page; fails on any serious or critical violation,
  and writes every violation to ``.artifacts/axe/<name>.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from careloop_shared.auth import issue_token
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import ServiceProcess, start_services, unique_prefix
from tests.browser.cases import Case, referred_cases
from tests.conftest import SERVICES, base_env, start_workspace
from workspace.demo import DEMO_PEOPLE

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("CARELOOP_RUN_DIR", REPO / ".run"))
CHROMIUM = Path(os.environ.get("CARELOOP_CHROMIUM", "/usr/bin/chromium"))
AXE_JS = Path(os.environ.get("CARELOOP_AXE_JS", RUN_DIR / "browser" / "axe-core" / "axe.min.js"))
ARTIFACTS = REPO / ".artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# axe-core impacts that fail a page: a person using a screen reader or a keyboard is blocked or misled.
FAILING_IMPACTS = ("serious", "critical")


@dataclass(frozen=True)
class Person:
    subject: str
    agency: str
    role: str


def person(who: str | Person) -> Person:
    """A demo person by id (as the sign-in page lists them), or anyone."""
    if isinstance(who, Person):
        return who
    for demo in DEMO_PEOPLE:
        if demo.subject == who:
            return Person(demo.subject, demo.agency, demo.role)
    raise KeyError(f"{who} is not a demo person; pass Person(subject, agency, role)")


@dataclass
class Platform:
    processes: dict[str, ServiceProcess]
    prefix: str

    @property
    def urls(self) -> dict[str, str]:
        return {name: process.url for name, process in self.processes.items()}

    @property
    def workspace_url(self) -> str:
        return self.processes["workspace"].url

    def api(self, who: str | Person) -> httpx.AsyncClient:
        """The services' HTTP APIs as a person (a development token), for a test's setup and checks."""
        p = person(who)
        bearer = issue_token(DEV_JWT_SECRET, agency=p.agency, role=p.role, subject=p.subject)
        return httpx.AsyncClient(timeout=15, headers={"Authorization": f"Bearer {bearer}"})


def _missing_tools() -> list[str]:
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"chromium at {CHROMIUM}")
    if not AXE_JS.is_file():
        missing.append(f"axe-core at {AXE_JS}")
    return missing


@pytest.fixture(scope="session")
def browser_tools() -> None:
    """Fails (or skips, with CARELOOP_SKIP_BROWSER=1) saying what to run when a tool is missing."""
    missing = _missing_tools()
    if not missing:
        return
    message = (
        f"the browser tests need {' and '.join(missing)}: run `make browser` (deploy/local/browser.sh;"
        " as root it runs apt-get install -y --no-install-recommends chromium, and npm pack axe-core@4),"
        " or set CARELOOP_SKIP_BROWSER=1 to skip them"
    )
    if os.environ.get("CARELOOP_SKIP_BROWSER") == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@pytest_asyncio.fixture(scope="package")
async def browser(browser_tools: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(scope="package")
async def platform(
    browser_tools: None, infra, database_factory, log_dir, fast_cadence_library
) -> AsyncIterator[Platform]:
    """The six services as separate processes, started once for all the browser tests (this package)
    and stopped after the last, so that they do not slow the tests that follow."""
    prefix = unique_prefix()  # its topics are deleted at the session's end
    env = base_env(infra, prefix)
    for service in (*SERVICES, "workspace"):
        env[f"{service.upper()}_DATABASE_URL"] = await database_factory(service)
    # Follow-ups fall due seconds after a plan, so a journey can record an outcome.
    env["CAREPLAN_PLAN_LIBRARY"] = str(fast_cadence_library)
    processes = start_services(SERVICES, env, log_dir)
    processes["workspace"] = start_workspace(env, processes, log_dir)
    try:
        await asyncio.gather(*(p.wait_ready() for p in processes.values()))
        yield Platform(processes, prefix)
    finally:
        for process in processes.values():
            process.stop()


@pytest_asyncio.fixture(scope="package")
async def cases(platform: Platform) -> dict[str, Case]:
    """Rita (agency-riverside, referred to the Community Health Center) and Hugo (agency-harbor, referred
    to the Central Food Bank), once the referrals are sent: see ``tests/browser/cases.py``."""
    return await referred_cases(platform)


SignedIn = Callable[..., Awaitable[Any]]


@pytest_asyncio.fixture
async def signed_in(browser: Any, platform: Platform) -> AsyncIterator[SignedIn]:
    """``page = await signed_in("cm-riverside-ana")``: a browser context of the person's own, signed in
    through the development sign-in page, on My day. Every context is closed at the test's end."""
    contexts: list[Any] = []

    async def sign_in(who: str | Person, *, viewport: dict[str, int] | None = None) -> Any:
        p = person(who)
        context = await browser.new_context(
            base_url=platform.workspace_url, viewport=viewport or {"width": 1280, "height": 900}
        )
        contexts.append(context)
        page = await context.new_page()
        await page.goto("/signin")
        if any(demo.subject == p.subject for demo in DEMO_PEOPLE):
            await page.get_by_role("button", name=f"Sign in as {p.subject}", exact=True).click()
        else:
            await page.get_by_label("Agency id").fill(p.agency)
            await page.get_by_label("Role").select_option(p.role)
            await page.get_by_label("Person id").fill(p.subject)
            await page.get_by_role("button", name="Sign in", exact=True).click()
        # Where a person's day starts depends on the role (a provider's in the referral inbox).
        await page.wait_for_url(lambda url: "/signin" not in url)
        return page

    try:
        yield sign_in
    finally:
        for context in contexts:
            await context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Any, str], Awaitable[Path]]:
    """``await screenshot(page, "my-day")``: .artifacts/screenshots/<test>-<name>.png, the whole page."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).removeprefix("test_")

    async def shoot(page: Any, name: str) -> Path:
        path = folder / f"{test}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return shoot


@pytest.fixture(scope="session")
def axe_source(browser_tools: None) -> str:
    return AXE_JS.read_text()


@pytest.fixture
def accessibility(axe_source: str) -> Callable[[Any, str], Awaitable[list[dict[str, Any]]]]:
    """``await accessibility(page, "inbox")``: axe-core's violations on the page as it is now; fails
    on a serious or critical one. axe is evaluated through the DevTools protocol (``page.evaluate``),
    which the page's Content-Security-Policy (``script-src 'self'``) does not govern, so the page is
    checked exactly as served: no CSP bypass, no script tag added."""
    folder = ARTIFACTS / "axe"
    folder.mkdir(parents=True, exist_ok=True)

    async def check(page: Any, name: str) -> list[dict[str, Any]]:
        if not await page.evaluate("() => typeof window.axe === 'object'"):
            await page.evaluate(axe_source)
        results = await page.evaluate(
            "() => axe.run(document, {resultTypes: ['violations'],"
            " runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
        )
        violations: list[dict[str, Any]] = results["violations"]
        (folder / f"{name}.json").write_text(json.dumps(violations, indent=2))
        failing = [v for v in violations if v.get("impact") in FAILING_IMPACTS]
        assert not failing, f"{name}: " + "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
            for v in failing
        )
        return violations

    return check
