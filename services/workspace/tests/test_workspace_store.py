"""The session table in a real PostgreSQL database (integration)."""

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from careloop_shared import db
from workspace.main import MIGRATIONS
from workspace.sessions import Login, Person, Session, hash_id
from workspace.store import SessionStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(scope="module")
async def pool(database_factory):
    pool = await db.create_pool(await database_factory("workspace"), min_size=1, max_size=2)
    assert await db.migrate(pool, db.folder_migrations("workspace", MIGRATIONS)) == [
        "workspace/001_sessions.sql"
    ]
    assert await db.migrate(pool, db.folder_migrations("workspace", MIGRATIONS)) == []
    yield pool
    await pool.close()


def a_session(cookie: str, **changes) -> Session:
    fields = {
        "id_hash": hash_id(cookie),
        "csrf_token": "csrf-" + cookie,
        "person": Person("cm-riverside-ana", "agency-riverside", "care-manager"),
        "signed_in_via": "development",
        "access_token": "token-" + cookie,
        "token_expires_at": NOW + timedelta(hours=8),
        "login": None,
        "created_at": NOW,
        "last_seen_at": NOW,
        "expires_at": NOW + timedelta(hours=8),
    }
    return Session(**{**fields, **changes})


async def test_a_session_round_trips_and_is_deleted(pool):
    store = SessionStore(pool)
    session = a_session("one")
    await store.insert(session)
    assert await store.get(session.id_hash) == session
    login = Login("state", "nonce", "verifier")
    await store.set_login(session.id_hash, login)
    await store.touch(session.id_hash, NOW + timedelta(minutes=5))
    stored = await store.get(session.id_hash)
    assert stored is not None and stored.login == login and stored.last_seen_at == NOW + timedelta(minutes=5)
    await store.set_login(session.id_hash, None)
    assert (await store.get(session.id_hash)).login is None
    await store.delete(session.id_hash)
    assert await store.get(session.id_hash) is None
    await store.ping()


async def test_a_visitors_session_has_no_person_and_no_token(pool):
    store = SessionStore(pool)
    visitor = a_session("visitor", person=None, signed_in_via=None, access_token=None, token_expires_at=None)
    await store.insert(visitor)
    assert await store.get(visitor.id_hash) == visitor
    with pytest.raises(asyncpg.CheckViolationError):  # a token without a person, or a person without one
        await store.insert(a_session("half", access_token=None))


async def test_ended_and_idle_sessions_are_deleted_together(pool):
    store = SessionStore(pool)
    ended = a_session("ended", expires_at=NOW - timedelta(seconds=1))
    idle = a_session("idle", last_seen_at=NOW - timedelta(hours=1))
    live = a_session("live")
    for session in (ended, idle, live):
        await store.insert(session)
    assert await store.delete_expired(NOW, NOW - timedelta(minutes=30)) == 2
    assert await store.get(live.id_hash) == live
    assert await store.get(ended.id_hash) is None and await store.get(idle.id_hash) is None
