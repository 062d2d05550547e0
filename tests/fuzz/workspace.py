"""Walk the workspace as each kind of person, with hostile input: no answer is a 5xx, none shows a
traceback, and no page shown to one agency's people names another agency's patient.

    python -m tests.fuzz.workspace [--cases 40] [--seed N] [--roles care-manager,supervisor] [--out DIR]

The workspace has no OpenAPI document for Schemathesis to walk (it serves pages and forms), so this
walks it the way its users do, and the way a hostile one would:

- Two fresh agencies are set up through the services' APIs: in the first, a patient registered,
  consenting and assessed, so that a care plan, a referral and follow-ups exist to act on; in the
  second, a patient whose name, phone and ids must never reach the first agency's people.
- Each person (one per role of the first agency, signed in through the development sign-in) crawls the
  pages the workspace links to from its start page, and reads every form on them: its action, its
  fields and the values it offers.
- Then, for each person, ``--cases`` requests per route of the workspace (its routes read from the app
  itself, so a new page is walked without being named here) and per form found: a form sent with some
  of its own values and some hostile ones (too long, NUL, markup, impossible dates and numbers, ids
  that are malformed, unknown or another agency's, fields missing, repeated or unknown, bodies that
  are not UTF-8 or not a form), and every route's path filled with such ids.
- Someone not signed in walks every route too.
- Last, each demo person (`make up`'s caseload) reads every page they reach from their start page,
  sending nothing, so that pages are seen in the states a fresh agency does not have.

Checks: no status of 500 or more and no dropped connection, no Python traceback in a body, for the first
agency's people no body naming the second agency's patient (their name, family name, phone or id), and
for everyone but the first agency's care manager and supervisor and the provider the referral went to
(its analyst, its admin, a provider it did not go to, someone not signed in, a demo care manager or
supervisor) no body naming the first agency's patients (the family names and birth dates set up and typed
by the walk). Writes
``<out>/summary.json`` (statuses by route, failures) and ``<out>/failures.txt``; exits 1 on any failure.

URLs: ``WORKSPACE_URL`` and ``<SERVICE>_URL`` or the ``make up`` ports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from careloop_shared.auth import PEOPLE_ROLES, issue_token
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import api_routes
from tests.fuzz.fuzz import service_url

WORKSPACE_PORT = 8000
SEE_PATIENTS = ("care-manager", "supervisor")  # the roles that see their agency's patients by name
TRACEBACK = "Traceback (most recent call last)"
# Routes a signed-in walker leaves alone: signing out ends the walk's session (the anonymous walker
# sends them), and the provider's callback and sign-in pages are walked by the anonymous walker.
SIGNED_IN_SKIPS = {("POST", "/signout"), ("POST", "/signin/development")}


def workspace_url() -> str:
    return os.environ.get("WORKSPACE_URL") or f"http://127.0.0.1:{WORKSPACE_PORT}"


# --- What the pages offer -------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, list[str]] = field(default_factory=dict)  # name -> values offered (first: default)

    def offer(self, name: str, value: str) -> None:
        self.fields.setdefault(name, [])
        if value not in self.fields[name]:
            self.fields[name].append(value)


class PageReader(HTMLParser):
    """The links and forms of a page."""

    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.url = url
        self.links: list[str] = []
        self.forms: list[Form] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(urljoin(self.url, a["href"]))
        elif tag == "form":
            action = urljoin(self.url, a.get("action") or self.url)
            self.forms.append(Form(action, (a.get("method") or "get").upper()))
        elif not self.forms:
            return
        elif tag in ("input", "button") and a.get("name"):
            if a.get("type") in ("checkbox", "radio", "hidden", "submit") or tag == "button":
                self.forms[-1].offer(a["name"], a.get("value", "on" if a.get("type") == "checkbox" else ""))
            else:
                self.forms[-1].offer(a["name"], a.get("value", ""))
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
            self.forms[-1].fields.setdefault(self._select, [])
        elif tag == "option" and self._select is not None:
            self.forms[-1].offer(self._select, a.get("value", ""))
        elif tag == "textarea" and a.get("name"):
            self.forms[-1].offer(a["name"], "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def read_page(url: str, body: str) -> PageReader:
    reader = PageReader(url)
    reader.feed(body)
    return reader


# --- The workspace's routes, from the app -----------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    path_params: tuple[str, ...]
    query: tuple[tuple[str, str], ...]  # (name, annotation)
    form: tuple[tuple[str, str], ...]


def workspace_routes() -> list[Route]:
    from workspace.main import build_app

    def params(dependant: Any, kind: str) -> list[Any]:
        found = list(getattr(dependant, kind))
        for sub in dependant.dependencies:
            found += params(sub, kind)
        return found

    out = []
    for route in api_routes(build_app().routes):
        d = route.dependant
        for method in sorted(route.methods - {"HEAD"}):
            out.append(
                Route(
                    method,
                    route.path,
                    tuple(p.name for p in params(d, "path_params")),
                    tuple((p.alias, repr(p.field_info.annotation)) for p in params(d, "query_params")),
                    tuple((p.alias, repr(p.field_info.annotation)) for p in params(d, "body_params")),
                )
            )
    return out


def template_of(path: str, routes: list[Route]) -> str:
    """The route a concrete path answers to (for counting), or the path itself."""
    for route in routes:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", route.path) + "$"
        if re.match(pattern, path):
            return route.path
    return path


# --- Hostile values ---------------------------------------------------------------------------------

TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "x" * 5000,
    "y" * 70_000,
    "<script>alert(1)</script>",
    "\"'><img src=x onerror=alert(1)>",
    "' OR 1=1 --",
    "%s%n%x",
    "../../../etc/passwd",
    "\u202eevil",
    "\U0001f600" * 40,
    "ᚠᛇᚻ᛫ᛒᛦᚦ",
    "null",
    "[]",
    "{}",
    "\r\nSet-Cookie: x=1",
    "\t\n",
]
NUMBERS = [
    "-1",
    "0",
    "1",
    "2",
    "7",
    "99999999999999999999999",
    "1.5",
    "1e309",
    "NaN",
    "abc",
    " 3 ",
    "0x10",
    "-0",
]
DATES = [
    "2026-02-30",
    "0001-01-01",
    "9999-12-31",
    "2026-13-01",
    "2026-1-1",
    "yesterday",
    "2026-12-06T10:00:00Z",
    "2026-12-06T25:00",
    "2027-01-15T09:30",
    "1970-01-01",
    "2030-06-01",
]
WORDS = [  # what the services' rules know, so that some sends get past the first check
    "text", "phone", "email", "mail", "in-person", "done", "open", "in-progress", "completed",
    "cancelled", "accepted", "declined", "requested", "active", "on-hold", "revoked", "referral",
    "food-assistance", "behavioral-health", "transportation", "housing", "phq-2", "phq-9",
    "ahc-hrsn", "gad-7", "en", "es", "care-manager", "supervisor", "yes", "no", "true", "false",
    "urgent", "routine", "mother", "daughter", "friend", "goal", "barrier", "preference",
]  # fmt: skip


PLAUSIBLE = {  # by a part of a blank field's name, checked in this order
    "given": "Ann",
    "family": "Lee-Walker",
    "birth": "1980-05-17",
    "phone": "+1 555 0100",
    "email": "ann@example.org",
    "postal": "02139",
    "due_at": "2027-01-15T09:30",
    "period_start": "2026-12-01",
    "period_end": "2027-06-01",
    "language": "en",
    "name": "Sam Lee",
    "url": "https://example.org/",
    "note": "Talked it through by phone.",
    "reason": "Asked to by the patient.",
    "contact": "+1 555 0101",
    "version": "1",
    "offset": "0",
}


ONCE_KEYS = ("form_key", "idempotency_key")  # a form's own idempotency key, fresh on each page shown


def malformed_ids() -> list[str]:
    return [
        "not-a-uuid",
        "0",
        "-1",
        str(uuid.uuid4()).upper(),
        uuid.uuid4().hex,
        "00000000-0000-0000-0000-000000000000",
        "x" * 300,
        "%00",
        "%2e%2e",
        "%ff",
        "é",
        " ",
    ]


@dataclass
class Known:
    """Ids of what exists, by the path parameter (or field) that names it; ``foreign_patient``: the
    second agency's patient, whom the walking agency must never be shown."""

    ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    foreign_patient: str = ""
    own_agency: str = ""
    receiving_agency: str = ""  # where the walk's referral went: its provider's inbox holds it
    traces: tuple[str, ...] = ()  # what would show the other agency's patient on a page
    # What would show the walking agency's own patients (the one set up, and those the walk registers
    # with the values a careful person types): only its care manager and supervisor may see these, and a
    # provider they were referred to (``Walker.sees_patients``).
    own_traces: tuple[str, ...] = ()


class Values:
    def __init__(self, rng: random.Random, known: Known) -> None:
        self.rng = rng
        self.known = known

    def pick(self, pool: list[str]) -> str:
        return self.rng.choice(pool)

    def an_id(self, name: str) -> str:
        roll = self.rng.random()
        own = self.known.ids.get(name) or []
        if own and roll < 0.55:
            return self.pick(own)
        if name == "patient_id" and roll < 0.7:
            return self.known.foreign_patient
        if roll < 0.85:
            return str(uuid.uuid4())
        return self.pick(malformed_ids())

    def plausible(self, name: str) -> str:
        """What a careful person would type into a blank field of that name."""
        lower = name.lower()
        for part, value in PLAUSIBLE.items():
            if part in lower:
                return value
        return self.pick(WORDS)

    def for_field(self, name: str, annotation: str = "") -> str:
        lower = name.lower()
        roll = self.rng.random()
        if roll < 0.15:
            return self.pick(TEXT)
        if lower.endswith("_id") or lower == "id":
            return self.an_id(lower)
        if "int" in annotation or "version" in lower or lower in ("offset",):
            return self.pick(NUMBERS)
        if "date" in lower or lower.endswith("_at") or "period" in lower:
            return self.pick(DATES)
        if "bool" in annotation:
            return self.pick(["true", "false", "on", "1", "0", "maybe", ""])
        return self.pick(WORDS + TEXT[:12] + NUMBERS[:4] + DATES[:3])


# --- Requests ---------------------------------------------------------------------------------------


@dataclass
class Failure:
    who: str
    method: str
    url: str
    status: int
    why: str
    sent: str

    def line(self) -> str:
        return f"{self.who}: {self.method} {self.url} -> {self.status}: {self.why}\n    sent: {self.sent}"


@dataclass
class Tally:
    routes: list[Route]
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[Failure] = field(default_factory=list)
    requests: int = 0

    def count(self, method: str, url: str, status: int) -> None:
        self.requests += 1
        self.statuses[f"{method} {template_of(urlsplit(url).path, self.routes)}"][status] += 1


class Walker:
    """One person (or nobody) in the workspace: a cookie jar, the session's CSRF token."""

    def __init__(
        self, base: str, who: str, person: tuple[str, str, str] | None, tally: Tally, known: Known
    ) -> None:
        self.base = base
        self.who = who
        self.person = person  # (agency, role, subject)
        self.tally = tally
        self.known = known
        self.csrf = ""
        self.http = httpx.AsyncClient(base_url=base, timeout=60, follow_redirects=False)
        self.forms: dict[tuple[str, str], Form] = {}
        # Pages to read forms from, no link followed: an agency the walk did not make has records of
        # its own (the demo caseload on `make up`), and the walk's forms must act on the walk's only.
        self.own_pages: list[str] | None = None
        # Whether the walking agency's patients may be named to this person (see Known.own_traces).
        self.sees_patients = (
            person is not None and person[0] == known.own_agency and person[1] in SEE_PATIENTS
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def sign_in(self) -> None:
        self.http.cookies.clear()
        page = await self.http.get("/signin")
        token = _csrf_of(page.text)
        if self.person is None:
            self.csrf = token
            return
        agency, role, subject = self.person
        signed = await self.http.post(
            "/signin/development",
            data={"csrf_token": token, "agency": agency, "role": role, "subject": subject},
        )
        if signed.status_code != 303:
            raise SystemExit(f"[workspace-fuzz] signing in as {self.who} was answered {signed.status_code}")
        start = await self.http.get("/", follow_redirects=True)  # a provider's start page is the inbox
        self.csrf = _csrf_of(start.text)
        if not self.csrf:
            raise SystemExit(
                f"[workspace-fuzz] no CSRF token on {self.who}'s start page ({start.status_code})"
            )

    async def send(self, method: str, url: str, *, sent: str, **kwargs: Any) -> httpx.Response | None:
        try:
            answer = await self.http.request(method, url, **kwargs)
        except httpx.InvalidURL:
            return None  # not a request anyone's client would send
        except httpx.TransportError as exc:  # no answer at all: as bad as a 500
            self.tally.count(method, url, 0)
            self.tally.failures.append(
                Failure(self.who, method, url, 0, f"no answer: {type(exc).__name__} {exc}", sent[:600])
            )
            return None
        self.tally.count(method, str(answer.request.url), answer.status_code)
        self.check(method, str(answer.request.url), answer, sent)
        location = answer.headers.get("location", "") if answer.status_code == 303 else ""
        if location.startswith("/signin"):
            if self.person is not None and method == "GET":
                await self.sign_in()  # the session ended (it should not have): carry on, counted above
        elif location.startswith("/") and method == "POST":  # where a browser goes next, with its notice
            await self.send("GET", location, sent=f"(after {method} {urlsplit(url).path}: {sent})")
        return answer

    def check(self, method: str, url: str, answer: httpx.Response, sent: str) -> None:
        def fail(why: str) -> None:
            self.tally.failures.append(Failure(self.who, method, url, answer.status_code, why, sent[:600]))

        if answer.status_code >= 500:
            fail(_title(answer.text) or "a server error")
        if TRACEBACK in answer.text:
            fail("a traceback in the body")
        asked = f"{url} {sent}"  # what the request itself named may be repeated back
        shown = [t for t in self.forbidden() if t and t in answer.text and t not in asked]
        if shown:
            fail(f"a patient {self.who} may not see is named ({', '.join(shown)})")

    def forbidden(self) -> tuple[str, ...]:
        """What would name a patient this person may not see: the second agency's always; the first
        agency's unless they may see its patients (``sees_patients``)."""
        if self.sees_patients:
            return self.known.traces
        return self.known.traces + self.known.own_traces

    async def crawl(self, limit: int) -> None:
        """Every page reachable from the start page (up to ``limit``), and the forms on them; or, for a
        person of an agency the walk did not make, only the pages of the walk's own records."""
        seen: set[str] = set()
        host = urlsplit(self.base).netloc
        if self.own_pages is not None:
            queue, limit = list(self.own_pages), len(self.own_pages)
        else:
            queue = ["/", *(f"/patients/{p}" for p in self.known.ids.get("patient_id", []))]
        while queue and len(seen) < limit:
            path = queue.pop(0)
            if path in seen:
                continue
            seen.add(path)
            answer = await self.send("GET", path, sent="(crawl)")
            location = answer.headers.get("location", "") if answer is not None else ""
            if location.startswith("/") and not location.startswith("/signin"):
                queue.append(location)  # a provider's start page is the inbox
            if answer is None or "text/html" not in answer.headers.get("content-type", ""):
                continue
            page = read_page(f"{self.base}{path}", answer.text)
            for form in page.forms:
                target = urlsplit(form.action)
                key = (form.method, target.path)
                if target.netloc == host and key not in SIGNED_IN_SKIPS:
                    self.forms.setdefault(key, form)
            for link in page.links if self.own_pages is None else []:
                target = urlsplit(link)
                if target.netloc != host or target.path.startswith("/static"):
                    continue
                if target.path in ("/signout",) or target.path.startswith("/signin"):
                    continue
                queue.append(target.path + (f"?{target.query}" if target.query else ""))

    # - cases -

    def csrf_field(self, rng: random.Random) -> dict[str, str]:
        roll = rng.random()
        if roll < 0.94:
            return {"csrf_token": self.csrf}
        if roll < 0.97:
            return {"csrf_token": secrets.token_urlsafe(16)}
        return {}

    async def form_case(self, form: Form, values: Values) -> None:
        """A form as the page offers it: as a careful person fills it in (a quarter of the sends), with
        one field made hostile, or with any of its fields left out, repeated or hostile."""
        rng = values.rng
        names = [n for n in form.fields if n != "csrf_token"]
        mode = rng.random()
        data: list[tuple[str, str]] = []
        if mode < 0.55:
            hostile = rng.choice(names) if names and mode < 0.3 else None
            for name in names:
                offered = [v for v in form.fields[name] if v]
                if name == hostile:
                    data.append((name, values.for_field(name)))
                elif name in ONCE_KEYS:  # as on the page loaded again: a key its earlier send did not use
                    data.append((name, secrets.token_urlsafe(24)))
                else:
                    data.append((name, rng.choice(offered) if offered else values.plausible(name)))
        else:
            for name in names:
                offered = form.fields[name]
                roll = rng.random()
                if roll < 0.08:
                    continue  # left out
                if roll < 0.55 and offered:
                    data.append((name, rng.choice(offered)))
                else:
                    data.append((name, values.for_field(name)))
                if rng.random() < 0.05:
                    data.append((name, values.for_field(name)))  # repeated
        if rng.random() < 0.1:
            data.append((f"unknown_{rng.randrange(100)}", values.pick(TEXT)))
        data += list(self.csrf_field(rng).items())
        path = urlsplit(form.action).path
        if rng.random() < 0.2:
            path = _refill(path, values)  # the same form, aimed at another record
        if form.method == "GET":
            await self.send("GET", f"{path}?{urlencode(data)}", sent=_said(data))
        else:
            await self.post(path, data, values)

    async def route_case(self, route: Route, values: Values) -> None:
        rng = values.rng
        path = route.path
        for name in route.path_params:
            path = path.replace("{" + name + "}", values.an_id(name))
        query = [(n, values.for_field(n, a)) for n, a in route.query if rng.random() < 0.5]
        url = f"{path}?{urlencode(query)}" if query else path
        if route.method == "GET":
            await self.send("GET", url, sent=_said(query))
            return
        data = [(n, values.for_field(n, a)) for n, a in route.form if rng.random() < 0.8]
        data += list(self.csrf_field(rng).items())
        await self.post(url, data, values)

    async def post(self, url: str, data: list[tuple[str, str]], values: Values) -> None:
        rng = values.rng
        roll = rng.random()
        if roll < 0.9:
            body = urlencode(data).encode()
            headers = {"content-type": "application/x-www-form-urlencoded"}
        elif roll < 0.93:
            body = urlencode(data).encode() + b"&note=%ff%fe%00&given_name=\xff\xfe"  # not UTF-8
            headers = {"content-type": "application/x-www-form-urlencoded"}
        elif roll < 0.96:
            body = json.dumps(dict(data)).encode()
            headers = {"content-type": "application/json"}
        elif roll < 0.98:
            body = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n'  # no closing boundary
            headers = {"content-type": "multipart/form-data; boundary=x"}
        else:
            body = urlencode(data).encode()
            headers = {"content-type": "text/plain"}
        await self.send("POST", url, content=body, headers=headers, sent=_said(data))


def _refill(path: str, values: Values) -> str:
    """``path`` with each id in it swapped, at random, for another one (unknown, malformed, foreign)."""
    parts = path.split("/")
    names = {"patients": "patient_id", "follow-ups": "follow_up_id", "interventions": "intervention_id"}
    for i in range(1, len(parts)):
        name = names.get(parts[i - 1], parts[i - 1].rstrip("s").replace("-", "_") + "_id")
        if _looks_like_id(parts[i]) and values.rng.random() < 0.5:
            parts[i] = values.an_id(name)
    return "/".join(parts)


def _looks_like_id(part: str) -> bool:
    try:
        uuid.UUID(part)
    except ValueError:
        return False
    return True


def _csrf_of(body: str) -> str:
    found = re.search(r'name="csrf_token"\s+value="([^"]+)"|value="([^"]+)"\s+name="csrf_token"', body)
    return (found.group(1) or found.group(2)) if found else ""


def _title(body: str) -> str:
    found = re.search(r"<title>(.*?)</title>", body, re.S)
    return found.group(1).strip() if found else body[:120]


def _said(data: list[tuple[str, str]]) -> str:
    return ", ".join(f"{k}={v[:40]!r}{'...' if len(v) > 40 else ''}" for k, v in data)


# --- The two agencies, through the services' APIs ----------------------------------------------------

ASSESSED = {
    "given_name": "Walker",
    "family_name": "Fuzz-Own",
    "birth_date": "1971-04-05",
    "contact_preference": "phone",
    "phone": "+1 555 0142",
    "safe_channels": ["phone", "text"],
}


async def set_up(run: str, deadline_s: float = 60.0) -> tuple[str, str, Known]:
    """Two fresh agencies; the first's patient with a plan, a referral and follow-ups (as far as the
    platform gets within ``deadline_s``), the second's patient to be kept out of sight."""
    from tests.browser.cases import HRSN_FOOD

    own, other = f"wsfuzz-{run}-a", f"wsfuzz-{run}-b"
    known = Known(own_agency=own)
    foreign_name = ("Quillon", f"Zarathustra-{run}")
    foreign_phone = f"+1 555 {secrets.randbelow(9000) + 1000}"

    def api(agency: str) -> httpx.AsyncClient:
        token = issue_token(DEV_JWT_SECRET, agency=agency, role="care-manager", subject="wsfuzz-setup")
        return httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)

    intake, careplan = service_url("intake"), service_url("careplan")
    referral, followup = service_url("referral"), service_url("followup")
    async with api(other) as http:
        foreign = {
            **ASSESSED,
            "given_name": foreign_name[0],
            "family_name": foreign_name[1],
            "phone": foreign_phone,
        }
        created = await http.post(f"{intake}/v1/patients", json=foreign)
        created.raise_for_status()
        known.foreign_patient = created.json()["id"]
    known.traces = (known.foreign_patient, *foreign_name, foreign_phone)
    typed = (PLAUSIBLE["family"], PLAUSIBLE["birth"])  # a phone or e-mail may be a program's too
    known.own_traces = (ASSESSED["family_name"], ASSESSED["phone"], ASSESSED["birth_date"], *typed)
    async with api(own) as http:
        created = await http.post(f"{intake}/v1/patients", json=ASSESSED)
        created.raise_for_status()
        patient = created.json()["id"]
        known.ids["patient_id"].append(patient)
        consent = {"purpose": "referral", "program_categories": ["food-assistance"]}
        (await http.post(f"{intake}/v1/patients/{patient}/consents", json=consent)).raise_for_status()
        (await http.post(f"{intake}/v1/patients/{patient}/assessments", json=HRSN_FOOD)).raise_for_status()
        until = time.monotonic() + deadline_s
        while time.monotonic() < until:  # a task may or may not be opened: not waited for
            plan = await http.get(f"{careplan}/v1/patients/{patient}/care-plan")
            referrals = await http.get(f"{referral}/v1/referrals", params={"patient_id": patient})
            follow_ups = await http.get(f"{followup}/v1/follow-ups", params={"patient_id": patient})
            found = [r.json().get("items", []) if r.is_success else [] for r in (referrals, follow_ups)]
            if plan.is_success and all(found):
                document = plan.json().get("document", {})
                known.ids["intervention_id"] = [i["id"] for i in document.get("interventions", [])]
                known.ids["goal_id"] = [g["id"] for g in document.get("goals", [])]
                known.ids["referral_id"] = [r["id"] for r in found[0]]
                known.ids["request_id"] = [r["service_request_id"] for r in found[0]]
                known.receiving_agency = found[0][0]["receiving_agency_id"]
                known.ids["follow_up_id"] = [f["id"] for f in found[1]]
                break
            await asyncio.sleep(0.5)
        else:
            got = {k: len(v) for k, v in known.ids.items()}
            print(f"[workspace-fuzz] the journey did not reach every service in {deadline_s:.0f} s: {got}")
        tasks = await http.get(f"{followup}/v1/tasks", params={"patient_id": patient})
        known.ids["task_id"] = [t["id"] for t in tasks.json().get("items", [])] if tasks.is_success else []
    return own, other, known


# --- The run ----------------------------------------------------------------------------------------


async def walk(
    who: str, walker: Walker, routes: list[Route], cases: int, seed: int, crawl_limit: int
) -> None:
    rng = random.Random(f"{seed}-{who}")
    values = Values(rng, walker.known)
    await walker.sign_in()
    if walker.person is not None:
        await walker.crawl(crawl_limit)
    own = [r for r in routes if walker.person is None or (r.method, r.path) not in SIGNED_IN_SKIPS]
    jobs: list[Callable[[], Awaitable[None]]] = []
    for route in own:
        jobs += [lambda route=route: walker.route_case(route, values)] * cases
    for form in walker.forms.values():
        jobs += [lambda form=form: walker.form_case(form, values)] * cases
    rng.shuffle(jobs)
    started = time.monotonic()
    for job in jobs:
        await job()
    print(
        f"[workspace-fuzz] {who:22} {len(jobs):6} cases {len(walker.forms):3} forms"
        f" {time.monotonic() - started:7.1f} s",
        flush=True,
    )


async def read_as_the_demo_people(base: str, tally: Tally, known: Known, limit: int) -> None:
    """Every page each demo person (`make up`'s caseload) reaches from their start page, up to ``limit``,
    read only: no form is sent, so nothing of theirs changes. Their caseload holds what the walk's fresh
    agency does not (follow-ups overdue, tasks, referrals in every status). None of them may see the walk's
    second agency's patient, nor, but a provider, its first agency's."""
    from workspace.demo import DEMO_PEOPLE

    started, before = time.monotonic(), tally.requests
    for person in DEMO_PEOPLE:
        walker = Walker(base, person.subject, (person.agency, person.role, person.subject), tally, known)
        # A provider may be shown the walks' patients referred to them: the walk refers its first agency's
        # patient to programs of its choosing (this run's and every earlier run's walk).
        walker.sees_patients = person.role == "provider"
        try:
            await walker.sign_in()
            await walker.crawl(limit)
        finally:
            await walker.close()
    print(
        f"[workspace-fuzz] {len(DEMO_PEOPLE)} demo people read {tally.requests - before} pages"
        f" {time.monotonic() - started:7.1f} s",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> int:
    run = secrets.token_hex(4)
    routes = workspace_routes()
    own, _other, known = await set_up(run, args.setup_deadline)
    tally = Tally(routes)
    base = workspace_url()
    walkers = {
        f"{role}@{own}": Walker(base, role, (own, role, f"wsfuzz-{role}"), tally, known)
        for role in args.roles
    }
    if known.receiving_agency and "provider" in args.roles:
        receiving = f"provider@{known.receiving_agency}"
        person = (known.receiving_agency, "provider", "wsfuzz-provider")
        walkers[receiving] = Walker(base, "provider", person, tally, known)
        walkers[receiving].own_pages = [f"/inbox/referrals/{r}" for r in known.ids["referral_id"]]
        walkers[receiving].sees_patients = True  # the minimum of a patient referred to them
    walkers["not signed in"] = Walker(base, "not signed in", None, tally, known)
    pending = list(walkers.items())
    try:

        async def worker() -> None:
            while pending:
                who, walker = pending.pop(0)
                await walk(who, walker, routes, args.cases, args.seed, args.crawl_limit)

        await asyncio.gather(*(worker() for _ in range(args.parallel)))
        if args.demo_pages:
            await read_as_the_demo_people(base, tally, known, args.demo_pages)
    finally:
        for walker in walkers.values():
            await walker.close()
    args.out.mkdir(parents=True, exist_ok=True)
    walked = {f"{r.method} {r.path}" for r in routes}
    summary = {
        "run": run,
        "seed": args.seed,
        "requests": tally.requests,
        "routes": len(walked),
        "routes_walked": sorted(walked & set(tally.statuses)),
        "forms": {who: sorted(f"{m} {p}" for m, p in w.forms) for who, w in walkers.items()},
        "statuses": {route: dict(sorted(c.items())) for route, c in sorted(tally.statuses.items())},
        "failures": [vars(f) for f in tally.failures],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    (args.out / "failures.txt").write_text("\n".join(f.line() for f in tally.failures))
    unwalked = walked - set(tally.statuses)
    print(
        f"[workspace-fuzz] {tally.requests} requests, {len(walked) - len(unwalked)} of {len(walked)} routes,"
        f" {len(tally.failures)} failures; {args.out / 'summary.json'}",
        flush=True,
    )
    for failure in tally.failures[:20]:
        print(f"[workspace-fuzz] FAIL {failure.line()}", flush=True)
    if unwalked:
        print(f"[workspace-fuzz] never answered: {sorted(unwalked)}", flush=True)
    return 1 if tally.failures or unwalked else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=40, help="requests per route and per form, for each person")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--roles", default=",".join(sorted(PEOPLE_ROLES)))
    p.add_argument("--parallel", type=int, default=2, help="people walking at once")
    p.add_argument("--crawl-limit", type=int, default=60, help="pages each person reads for forms")
    p.add_argument("--setup-deadline", type=float, default=60.0)
    p.add_argument(
        "--demo-pages", type=int, default=400, help="pages each demo person reads, sending nothing (0: none)"
    )
    p.add_argument("--out", type=Path, default=Path(".artifacts/fuzz-workspace"))
    args = p.parse_args(argv)
    args.roles = [r for r in args.roles.split(",") if r]
    unknown = set(args.roles) - PEOPLE_ROLES
    if unknown:
        p.error(f"unknown roles {sorted(unknown)}; people's roles: {sorted(PEOPLE_ROLES)}")
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    print(f"[workspace-fuzz] seed {args.seed}", flush=True)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
