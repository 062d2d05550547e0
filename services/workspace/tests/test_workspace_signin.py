"""Development sign-in, sign-out and the session's life, over the fake session table and services."""

from dataclasses import replace
from datetime import timedelta

from careloop_shared.auth import Principal, verify_token
from careloop_shared.settings import DEV_JWT_SECRET
from workspace.config import WorkspaceSettings
from workspace.demo import DEMO_PEOPLE
from workspace.sessions import Person, hash_id

COOKIE = "careloop_session"


async def test_the_sign_in_page_offers_every_demo_person_with_their_agency_and_role(client):
    page = await client.get("/signin")
    assert page.status_code == 200
    for person in DEMO_PEOPLE:
        assert f'value="{person.subject}"' in page.text
        assert f'value="{person.agency}"' in page.text
    subjects = {p.subject for p in DEMO_PEOPLE}
    assert {"cm-riverside-ana", "cm-harbor-fay", "sv-northgate-sam", "pr-community-joe"} <= subjects
    assert {p.role for p in DEMO_PEOPLE} == {"care-manager", "supervisor", "provider", "admin"}
    assert {"agency-riverside", "agency-northgate", "agency-harbor", "agency-community-health"} <= {
        p.agency for p in DEMO_PEOPLE
    }


async def test_development_sign_in_mints_the_token_make_token_would_for_that_person(
    client, store, services, sign_in
):
    await sign_in(client)
    [session] = [s for s in store.rows.values() if s.person is not None]
    assert session.signed_in_via == "development"
    principal = verify_token(session.access_token, DEV_JWT_SECRET, issuer="careloop-dev")
    assert principal == Principal("agency-riverside", "care-manager", "cm-riverside-ana")

    page = await client.get("/")
    assert page.status_code == 200
    assert "cm-riverside-ana" in page.text
    [call] = services.called("followup", "/v1/tasks")
    assert call.headers["authorization"] == f"Bearer {session.access_token}"


async def test_signing_in_replaces_the_visitors_session_and_its_csrf_token(client, store, sign_in, csrf_of):
    page = await client.get("/signin")
    visitor_cookie, visitor_csrf = client.cookies[COOKIE], csrf_of(page)
    await sign_in(client)
    assert client.cookies[COOKIE] != visitor_cookie
    assert hash_id(visitor_cookie) not in store.rows  # an id planted before sign-in is worth nothing
    [session] = store.rows.values()
    assert session.csrf_token != visitor_csrf


async def test_sign_out_deletes_the_session_and_the_cookie(client, store, sign_in, csrf_of):
    await sign_in(client)
    cookie = client.cookies[COOKIE]
    page = await client.get("/")
    answer = await client.post("/signout", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?notice=signed-out"
    assert hash_id(cookie) not in store.rows
    assert (
        'careloop_session=""' in answer.headers["set-cookie"] or "Max-Age=0" in answer.headers["set-cookie"]
    )

    client.cookies.set(COOKIE, cookie)  # the old cookie, presented again, names nobody
    again = await client.get("/")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/signin")
    notice = await client.get("/signin?notice=signed-out")
    assert "You have signed out." in notice.text


async def test_pages_send_a_visitor_without_a_session_to_sign_in(client):
    for path in ("/", "/patients/0b9e7c4e-3f7e-4d7e-9c55-6b1d4c1f3e21"):
        answer = await client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/signin?notice=sign-in-needed"


async def test_a_signed_in_person_opening_sign_in_goes_to_my_day(client, sign_in):
    await sign_in(client)
    answer = await client.get("/signin")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


async def test_an_unknown_role_or_a_malformed_id_is_refused_with_a_message_beside_the_field(
    client, store, csrf_of
):
    page = await client.get("/signin")
    answer = await client.post(
        "/signin/development",
        data={
            "agency": "agency riverside!",
            "role": "superuser",
            "subject": "ana",
            "csrf_token": csrf_of(page),
        },
    )
    assert answer.status_code == 422
    assert 'aria-invalid="true"' in answer.text
    assert "One of admin, analyst, care-manager, provider, supervisor." in answer.text
    assert "An agency id: letters, digits, dots and dashes." in answer.text
    assert all(s.person is None for s in store.rows.values())


async def test_a_service_is_no_one_to_sign_in_as_and_its_session_opens_no_page(
    client, store, services, sign_in, csrf_of
):
    page = await client.get("/signin")
    assert '<option value="service"' not in page.text
    service = {"agency": "agency-riverside", "role": "service", "subject": "careplan"}
    answer = await client.post("/signin/development", data={**service, "csrf_token": csrf_of(page)})
    assert answer.status_code == 422
    assert "One of admin, analyst, care-manager, provider, supervisor." in answer.text
    assert all(s.person is None for s in store.rows.values())

    # A session naming a service, however it came to be, is sent to sign in and asks no service.
    await sign_in(client)
    [session] = [s for s in store.rows.values() if s.person is not None]
    store.rows[session.id_hash] = replace(session, person=Person("careplan", "agency-riverside", "service"))
    asked = len(services.requests)
    answer = await client.get("/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?notice=sign-in-needed"
    assert len(services.requests) == asked


async def test_development_sign_in_is_not_offered_beyond_loopback_unless_enabled(
    make_app, open_browser, store
):
    settings = WorkspaceSettings(host="0.0.0.0", jwt_secret="a-real-secret-for-this-deployment-0123456789")
    assert not settings.dev_signin_allowed
    async with open_browser(make_app(settings), "https://careloop.example") as http:
        page = await http.get("/signin")
        assert "Sign in as cm-riverside-ana" not in page.text
        assert "No way of signing in is configured here." in page.text
        [visitor] = store.rows.values()  # the page has no form; a hand-made one has a valid token
        answer = await http.post(
            "/signin/development",
            data={
                "agency": "agency-riverside",
                "role": "admin",
                "subject": "x",
                "csrf_token": visitor.csrf_token,
            },
        )
        assert answer.status_code == 404
    assert all(s.person is None for s in store.rows.values())


def test_development_sign_in_with_the_development_secret_beyond_loopback_refuses_to_start():
    assert WorkspaceSettings().unsafe_to_serve() is None
    assert WorkspaceSettings(host="0.0.0.0").unsafe_to_serve() is None  # not offered there by default
    refusal = WorkspaceSettings(host="0.0.0.0", dev_signin=True).unsafe_to_serve()
    assert refusal is not None and "CARELOOP_JWT_SECRET" in refusal
    enabled = WorkspaceSettings(host="0.0.0.0", dev_signin=True, jwt_secret="a-real-secret-0123456789abcdef")
    assert enabled.unsafe_to_serve() is None


async def test_a_session_ends_after_the_idle_time_and_after_its_lifetime(client, clock, sign_in):
    await sign_in(client)
    clock.advance(minutes=29)
    assert (await client.get("/")).status_code == 200
    clock.advance(minutes=31)
    idle = await client.get("/")
    assert idle.status_code == 303

    await sign_in(client)
    for _ in range(16):  # busy all day: never idle, but a session lasts 8 hours at most
        clock.advance(minutes=29)
        assert (await client.get("/")).status_code == 200
    clock.advance(minutes=29)
    assert (await client.get("/")).status_code == 303


async def test_a_token_the_services_no_longer_accept_ends_the_session(client, store, services, sign_in):
    await sign_in(client)
    services.answer("followup", "GET", "/v1/tasks", 401, {"detail": "invalid token: ExpiredSignatureError"})
    answer = await client.get("/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?notice=session-ended"
    assert not [s for s in store.rows.values() if s.person is not None]
    notice = await client.get(answer.headers["location"])
    assert "Your session has ended; sign in again." in notice.text


async def test_the_session_ends_no_later_than_its_token(client, store, clock, sign_in):
    await sign_in(client)
    [session] = store.rows.values()
    assert session.expires_at == clock.now + timedelta(hours=8)
    assert session.token_expires_at == session.expires_at
