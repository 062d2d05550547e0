"""Sessions over the fake table: ids are hashed, sessions end, a sign-in at the provider completes once."""

from datetime import timedelta

from careloop_shared.testing.fakes import assert_fake_matches
from workspace.config import WorkspaceContext, WorkspaceSettings
from workspace.sessions import VISITOR_TTL, Person, Sessions, hash_id
from workspace.store import SessionStore

ANA = Person("cm-riverside-ana", "agency-riverside", "care-manager")


def sessions_over(store, clock) -> Sessions:
    return Sessions(store, WorkspaceContext(WorkspaceSettings(), clock))


def test_the_fake_session_table_has_the_real_ones_methods(store):
    assert_fake_matches(SessionStore, type(store))


async def test_the_table_holds_a_hash_of_the_cookie_never_the_cookie(store, clock):
    sessions = sessions_over(store, clock)
    cookie, session = await sessions.start()
    assert list(store.rows) == [hash_id(cookie)]
    assert cookie.encode() not in repr(store.rows).encode()
    assert await sessions.load(cookie) == session
    assert await sessions.load("not-" + cookie) is None
    assert await sessions.load("x" * 500) is None


async def test_a_visitors_session_lasts_an_hour(store, clock):
    sessions = sessions_over(store, clock)
    cookie, _ = await sessions.start()
    for _ in range(3):
        clock.advance(minutes=19)
        assert await sessions.load(cookie) is not None
    clock.advance(seconds=VISITOR_TTL.total_seconds() - 3 * 19 * 60)
    assert await sessions.load(cookie) is None
    assert store.rows == {}


async def test_last_seen_is_written_at_most_once_a_minute(store, clock):
    sessions = sessions_over(store, clock)
    cookie, session = await sessions.start()
    clock.advance(seconds=30)
    assert (await sessions.load(cookie)).last_seen_at == session.created_at
    clock.advance(seconds=31)
    assert (await sessions.load(cookie)).last_seen_at == clock.now


async def test_a_sign_in_clears_away_ended_sessions(store, clock):
    sessions = sessions_over(store, clock)
    await sessions.start()
    clock.advance(hours=2)
    cookie, _ = await sessions.sign_in(
        None, ANA, access_token="t", token_expires_at=clock.now + timedelta(minutes=5), via="oidc"
    )
    assert list(store.rows) == [hash_id(cookie)]
    clock.advance(minutes=5)
    assert await sessions.load(cookie) is None  # the token has expired: so has the session


async def test_a_sign_in_at_the_provider_can_be_completed_once(store, clock):
    sessions = sessions_over(store, clock)
    cookie, session = await sessions.start()
    login = await sessions.begin_login(session)
    assert len({login.state, login.nonce, login.verifier}) == 3
    assert 43 <= len(login.verifier) <= 128  # RFC 7636
    session = await sessions.load(cookie)
    assert await sessions.take_login(session) == login
    assert await sessions.take_login(await sessions.load(cookie)) is None
