"""Server-side sessions: the browser holds a random id (in an HttpOnly cookie), the database the rest.

A visitor of the sign-in page gets a session without a person, so that its forms carry a CSRF token and
a sign-in at the identity provider can be tied to this browser. Signing in replaces that session by a new
one (a new id, a new CSRF token: an id planted before sign-in is worth nothing after it). A session ends
at sign-out, ``session_ttl_s`` after sign-in, when its token expires, or after ``session_idle_s`` without
a request; an ended session is deleted the next time it is presented, and with every sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from workspace.config import WorkspaceContext

VISITOR_TTL = timedelta(hours=1)  # a sign-in page left open longer asks to be reloaded
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often per session
_MAX_COOKIE_CHARS = 100


@dataclass(frozen=True)
class Person:
    """Who signed in, as the services will see them in the token."""

    subject: str
    agency_id: str
    role: str


@dataclass(frozen=True)
class Login:
    """A sign-in at the identity provider under way: what its callback must match."""

    state: str
    nonce: str
    verifier: str  # PKCE code verifier; the provider got only its SHA-256


@dataclass(frozen=True)
class Session:
    id_hash: bytes
    csrf_token: str
    person: Person | None
    signed_in_via: str | None
    access_token: str | None
    token_expires_at: datetime | None
    login: Login | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf_token.encode())


class SessionBackend(Protocol):
    """What ``Sessions`` needs of its table (``store.SessionStore``; a fake in the unit tests)."""

    async def insert(self, session: Session) -> None: ...
    async def get(self, id_hash: bytes) -> Session | None: ...
    async def set_login(self, id_hash: bytes, login: Login | None) -> None: ...
    async def touch(self, id_hash: bytes, at: datetime) -> None: ...
    async def delete(self, id_hash: bytes) -> None: ...
    async def delete_expired(self, now: datetime, idle_before: datetime) -> int: ...
    async def ping(self) -> None: ...


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_id(cookie_value: str) -> bytes:
    return hashlib.sha256(cookie_value.encode()).digest()


class Sessions:
    """Starting, finding, signing in and ending sessions; the cookie's value is returned, never stored."""

    def __init__(self, store: SessionBackend, ctx: WorkspaceContext) -> None:
        self.store = store
        self.ctx = ctx
        self.ttl = timedelta(seconds=ctx.settings.session_ttl_s)
        self.idle = timedelta(seconds=ctx.settings.session_idle_s)

    async def load(self, cookie_value: str | None) -> Session | None:
        """The live session the cookie names, or None (no cookie, unknown, or ended: then deleted)."""
        if not cookie_value or len(cookie_value) > _MAX_COOKIE_CHARS:
            return None
        session = await self.store.get(hash_id(cookie_value))
        if session is None:
            return None
        now = self.ctx.clock()
        if now >= session.expires_at or now - session.last_seen_at > self.idle:
            await self.store.delete(session.id_hash)
            return None
        if now - session.last_seen_at >= TOUCH_EVERY:
            await self.store.touch(session.id_hash, now)
            session = replace(session, last_seen_at=now)
        return session

    async def start(self) -> tuple[str, Session]:
        """A visitor's session: a CSRF token for the sign-in forms, nobody signed in."""
        now = self.ctx.clock()
        return await self._insert(now, now + VISITOR_TTL)

    async def sign_in(
        self,
        previous: Session | None,
        person: Person,
        *,
        access_token: str,
        token_expires_at: datetime,
        via: str,
    ) -> tuple[str, Session]:
        """A new session for ``person`` in place of ``previous``; it ends no later than the token."""
        now = self.ctx.clock()
        if previous is not None:
            await self.store.delete(previous.id_hash)
        await self.store.delete_expired(now, now - self.idle)
        return await self._insert(
            now,
            min(now + self.ttl, token_expires_at),
            person=person,
            signed_in_via=via,
            access_token=access_token,
            token_expires_at=token_expires_at,
        )

    async def begin_login(self, session: Session) -> Login:
        """Fresh state, nonce and PKCE verifier for a sign-in at the provider, kept with the session."""
        login = Login(state=new_secret(), nonce=new_secret(), verifier=new_secret() + new_secret())
        await self.store.set_login(session.id_hash, login)
        return login

    async def take_login(self, session: Session) -> Login | None:
        """The sign-in under way, which can be completed once only."""
        if session.login is not None:
            await self.store.set_login(session.id_hash, None)
        return session.login

    async def end(self, session: Session) -> None:
        await self.store.delete(session.id_hash)

    async def _insert(
        self,
        now: datetime,
        expires_at: datetime,
        *,
        person: Person | None = None,
        signed_in_via: str | None = None,
        access_token: str | None = None,
        token_expires_at: datetime | None = None,
    ) -> tuple[str, Session]:
        cookie_value = new_secret()
        session = Session(
            id_hash=hash_id(cookie_value),
            csrf_token=new_secret(),
            person=person,
            signed_in_via=signed_in_via,
            access_token=access_token,
            token_expires_at=token_expires_at,
            login=None,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
        await self.store.insert(session)
        return cookie_value, session
