"""Cookies, CSRF, the security headers on every answer, and no patient data in URLs or the access log."""

import asyncio
import inspect
import re
import uuid

import httpx
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from careloop_shared.logging import PHI_KEYS
from careloop_shared.testing import api_routes, client_of, until
from workspace.config import WorkspaceSettings
from workspace.main import build_app
from workspace.security import CONTENT_SECURITY_POLICY

PATIENT = "0b9e7c4e-3f7e-4d7e-9c55-6b1d4c1f3e21"
REAL_SECRET = "a-real-secret-for-this-deployment-0123456789"


def cookie_flags(answer: httpx.Response) -> tuple[str, set[str]]:
    name, _, rest = answer.headers["set-cookie"].partition("=")
    return name, {part.strip().split("=")[0].lower() for part in rest.split(";")[1:]}


async def test_on_loopback_the_session_cookie_is_httponly_and_samesite_lax(client, sign_in):
    name, flags = cookie_flags(await client.get("/signin"))
    assert name == "careloop_session"
    assert {"httponly", "samesite", "path"} <= flags
    assert "secure" not in flags
    signed_in = await sign_in(client)
    assert "samesite=lax" in signed_in.headers["set-cookie"].lower()
    assert cookie_flags(signed_in)[1] >= {"httponly", "samesite"}


async def test_beyond_loopback_the_cookie_is_secure_and_host_only_and_hsts_is_sent(
    make_app, open_browser, sign_in
):
    settings = WorkspaceSettings(host="0.0.0.0", dev_signin=True, jwt_secret=REAL_SECRET)
    async with open_browser(make_app(settings), "https://careloop.example") as http:
        page = await http.get("/signin")
        name, flags = cookie_flags(page)
        assert name == "__Host-careloop_session"
        assert {"httponly", "secure", "samesite", "path"} <= flags
        assert "domain" not in flags
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        answer = await sign_in(http)
        assert cookie_flags(answer) == (name, flags)


async def test_cookie_secure_makes_cookies_secure_on_loopback_too(make_app, open_browser):
    async with open_browser(make_app(WorkspaceSettings(cookie_secure=True)), "https://127.0.0.1") as http:
        assert "secure" in cookie_flags(await http.get("/signin"))[1]


async def test_a_form_without_the_sessions_csrf_token_is_refused_with_a_clear_page(
    client, store, sign_in, csrf_of, open_browser, make_app, settings
):
    await sign_in(client)
    page = await client.get("/")
    async with open_browser(make_app(settings)) as other:
        another_sessions_token = csrf_of(await other.get("/signin"))
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "guessed"}, {"csrf_token": another_sessions_token}):
        refused = await client.post("/signout", data=data)
        assert refused.status_code == 403
        assert "This form has expired or did not come from this page." in refused.text
    refused = await client.post("/signout", json={"csrf_token": csrf_of(page)})  # not a form
    assert refused.status_code == 403
    assert [s for s in store.rows.values() if s.person is not None], "still signed in"
    assert (await client.post("/signout", data={"csrf_token": csrf_of(page)})).status_code == 303


async def test_signing_in_needs_the_sign_in_pages_csrf_token(client, store):
    fresh = await client.post(
        "/signin/development", data={"agency": "agency-riverside", "role": "admin", "subject": "mallory"}
    )
    assert fresh.status_code == 403
    await client.get("/signin")
    without = await client.post(
        "/signin/development", data={"agency": "agency-riverside", "role": "admin", "subject": "mallory"}
    )
    assert without.status_code == 403
    assert all(s.person is None for s in store.rows.values())


async def test_every_answer_carries_the_security_headers(
    client, sign_in, services, csrf_of, make_app, settings
):
    answers = [await client.get("/signin"), await client.post("/signout", data={})]
    await sign_in(client)
    services.answer("followup", "GET", "/v1/caseload", 503, {"detail": "the audit log is unavailable"})
    answers += [
        await client.get("/"),
        await client.get(f"/patients/{PATIENT}"),
        await client.get("/patients/not-an-id"),
        await client.get("/no-such-page"),
        await client.get("/healthz"),
        await client.get("/readyz"),
        await client.get("/static/workspace.css"),
        await client.delete("/"),
    ]
    services.answer_with("followup", "GET", "/v1/tasks", _broken)
    async with client_of(make_app(settings), "http://127.0.0.1:8000", raise_app_exceptions=False) as other:
        page = await other.get("/signin")
        form = {"agency": "agency-harbor", "role": "care-manager", "subject": "cm-harbor-eli"}
        await other.post("/signin/development", data={**form, "csrf_token": csrf_of(page)})
        with structlog.testing.capture_logs() as logs:
            answers.append(await other.get("/"))
    [logged] = [entry for entry in logs if entry["event"] == "unhandled error"]
    assert logged["reference"] in answers[-1].text
    statuses = [a.status_code for a in answers]
    # The patient page answers 404 for a patient intake does not show this person (the fake knows none).
    assert statuses == [200, 403, 200, 404, 404, 404, 200, 200, 200, 405, 500]
    for answer in answers:
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in answer.headers  # plain http on loopback
        static = str(answer.url).endswith(".css")
        assert answer.headers["cache-control"] == ("public, max-age=3600" if static else "no-store")
    assert "Something went wrong on our side" in answers[-1].text
    assert "could not answer just now (503)" in answers[2].text  # a failing section, the page still shown


def _broken(_: httpx.Request) -> httpx.Response:
    raise RuntimeError("a bug of ours")


def test_the_policy_allows_no_inline_script_or_style_and_no_framing():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


async def test_pages_have_no_inline_script_or_style(client, sign_in, services, make_task):
    services.page("followup", "/v1/tasks", [make_task("stat", "safety-check")])
    pages = [await client.get("/signin"), await sign_in(client)]
    pages += [await client.get("/"), await client.get(f"/patients/{PATIENT}"), await client.get("/nowhere")]
    for page in pages:
        assert "<script" not in page.text
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", page.text)


def test_no_route_takes_patient_data_in_its_url():
    """Path parameters are pseudonymous ids; query parameters are offsets (one per paginated list, or
    per service's audit log), the versions a diff compares, the instrument a form asks, which audit
    entries and of which days, or the OIDC callback's."""
    offsets = {
        "tasks",
        "queue",
        "caseload",
        "consents",
        "assessments",
        "versions",
        "members",
        "contributions",
    }
    offsets |= {"requests", "referrals", "follow_ups", "timeline", "gaps", "prospects", "programs"}
    offsets |= {"intake", "careplan", "referral", "followup", "record"}  # the audit logs'
    allowed_query = offsets | {
        "diff_from",
        "diff_to",
        "instrument",
        "notice",
        "code",
        "state",
        "error",
        "view",
        "order",
        "person",  # whose activity a supervisor reads: a staff member's id, never a patient's
        "first_day",  # the days an audit list is read for: the reader's choice, no patient's date
        "last_day",
    }
    app = build_app(WorkspaceSettings(), store=object())  # type: ignore[arg-type]
    routes = api_routes(app.routes)
    assert len(routes) > 30, "the check must see the included routers' routes"
    for route in routes:
        for param in route.dependant.path_params:
            assert param.name.endswith("_id"), f"{route.path}: {param.name}"
            assert param.field_info.annotation is uuid.UUID or "UUID" in str(param.type_)
        names = {p.name for p in route.dependant.query_params}
        for dependency in route.dependant.dependencies:
            names |= {p.name for p in dependency.query_params}
        assert names <= allowed_query, f"{route.path} takes {names - allowed_query} in its query string"
        assert not names & PHI_KEYS
        if "POST" in route.methods:
            assert not names, f"{route.path}: a form's fields go in its body"


async def test_my_day_links_name_patients_by_pseudonymous_id_only(client, sign_in, services, make_task):
    services.page("followup", "/v1/tasks", [make_task()], next_offset=20)
    await sign_in(client)
    page = await client.get("/")
    links = re.findall(r'href="([^"]+)"', page.text)
    for link in links:
        assert re.fullmatch(
            r"#main|/(static/workspace\.css|patients/([0-9a-f-]{36}|new|find)|\?tasks=\d+|signin|supervisor|inbox)?",
            link,
        ), link


async def test_the_access_log_names_route_templates_never_the_ids_in_the_url(client, sign_in):
    await sign_in(client)
    with structlog.testing.capture_logs() as logs:
        await client.get(f"/patients/{PATIENT}")
        await client.get("/?tasks=40")
    routes = [entry["route"] for entry in logs if entry["event"] == "http request"]
    assert routes == ["/patients/{patient_id}", "/"]
    assert PATIENT not in repr(logs) and "tasks=40" not in repr(logs)


async def test_fastapis_own_telemetry_sends_no_span_with_the_url_under_a_global_provider(
    client, sign_in, monkeypatch
):
    """An operator's auto-instrumentation installs a global tracer provider; the workspace still leaves
    server spans to its access log's (route templates only), not FastAPI's (the path as called)."""
    installed = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(installed))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    await sign_in(client)
    assert (await client.get(f"/patients/{PATIENT}")).status_code == 404  # unknown to the fake services
    assert installed.get_finished_spans() == ()


def test_every_form_posts_with_a_csrf_field():
    """Every <form method="post"> in the templates carries the CSRF field first thing."""
    from workspace.web import TEMPLATES

    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        for method, form in re.findall(r"<form[^>]*method=\"(\w+)\"[^>]*>(.*?)</form>", text, flags=re.S):
            if method == "get":  # asks for a page (the activity of a person by their id): changes nothing
                continue
            assert form.strip().startswith("{{ csrf_input(csrf_token) }}"), template.name
        assert text.count("<form") == len(re.findall(r"<form[^>]*method=", text)), template.name
    assert inspect.getsource(build_app).count("check_csrf") == 1  # on the whole app, not route by route


async def test_a_session_table_that_cannot_be_reached_is_a_503_page_not_a_500(
    client, sign_in, store, monkeypatch
):
    """The workspace's own database down (its session table unreachable): the page says so with 503 and
    Retry-After, carries the security headers, and nothing is logged as unhandled."""
    await sign_in(client)

    async def refused(_: bytes) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(store, "get", refused)
    with structlog.testing.capture_logs() as logs:
        answer = await client.get("/")
    assert (answer.status_code, answer.headers.get("Retry-After")) == (503, "2"), answer.text
    assert "could not reach its database" in answer.text
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert not [entry for entry in logs if entry["event"] == "unhandled error"]


async def test_a_busy_workspace_answers_a_page_at_once_and_still_its_health_checks(
    make_app, settings, open_browser
):
    """With its one place taken, the next page waits its turn briefly and is then refused: a 503 page
    saying nothing was changed, with Retry-After and the security headers; nothing of it ran."""
    held = asyncio.Event()
    inside: list[str] = []
    app = make_app(settings.model_copy(update={"http_max_active": 1, "http_queue_wait_s": 0.05}))

    async def slow() -> dict[str, str]:
        inside.append("slow")
        await held.wait()
        return {}

    app.router.add_api_route("/slow", slow)
    async with open_browser(app) as http:
        first = asyncio.create_task(http.get("/slow"))
        await until(lambda: inside == ["slow"], "the first request inside")
        async with asyncio.timeout(5):  # held, not refused: the test fails here rather than hangs
            busy = await http.get("/slow")
        assert (busy.status_code, busy.headers["retry-after"]) == (503, "1")
        assert busy.headers["content-type"] == "text/html; charset=utf-8"
        assert busy.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert busy.headers["cache-control"] == "no-store"
        assert "Busy just now" in busy.text and "nothing was changed" in busy.text
        assert inside == ["slow"]
        assert [(await http.get(p)).status_code for p in ("/healthz", "/readyz", "/metrics")] == [200] * 3
        held.set()
        assert (await first).status_code == 200
        assert (await http.get("/signin")).status_code == 200  # the place is free again
