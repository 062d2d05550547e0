"""The workspace's one table: server-side sessions (``migrations/001_sessions.sql``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from careloop_shared.db import Store, insert_row
from workspace.sessions import Login, Person, Session

_COLUMNS = (
    "id_hash, csrf_token, subject, agency_id, role, signed_in_via, access_token, token_expires_at,"
    " login_state, login_nonce, login_verifier, created_at, last_seen_at, expires_at"
)


class SessionStore(Store):
    async def insert(self, session: Session) -> None:
        await insert_row(self.db, "sessions", _row(session))

    async def get(self, id_hash: bytes) -> Session | None:
        row = await self.db.fetchrow(f"SELECT {_COLUMNS} FROM sessions WHERE id_hash = $1", id_hash)
        return None if row is None else _session(row)

    async def set_login(self, id_hash: bytes, login: Login | None) -> None:
        await self.db.execute(
            "UPDATE sessions SET login_state = $2, login_nonce = $3, login_verifier = $4 WHERE id_hash = $1",
            id_hash,
            *((login.state, login.nonce, login.verifier) if login else (None, None, None)),
        )

    async def touch(self, id_hash: bytes, at: datetime) -> None:
        await self.db.execute("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1", id_hash, at)

    async def delete(self, id_hash: bytes) -> None:
        await self.db.execute("DELETE FROM sessions WHERE id_hash = $1", id_hash)

    async def delete_expired(self, now: datetime, idle_before: datetime) -> int:
        """Sessions past their end, or idle since before ``idle_before``; how many were deleted."""
        status = await self.db.execute(
            "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2", now, idle_before
        )
        return int(status.split()[-1])

    async def ping(self) -> None:
        await self.db.fetchval("SELECT 1")


def _row(session: Session) -> dict[str, Any]:
    person, login = session.person, session.login
    return {
        "id_hash": session.id_hash,
        "csrf_token": session.csrf_token,
        "subject": person.subject if person else None,
        "agency_id": person.agency_id if person else None,
        "role": person.role if person else None,
        "signed_in_via": session.signed_in_via,
        "access_token": session.access_token,
        "token_expires_at": session.token_expires_at,
        "login_state": login.state if login else None,
        "login_nonce": login.nonce if login else None,
        "login_verifier": login.verifier if login else None,
        "created_at": session.created_at,
        "last_seen_at": session.last_seen_at,
        "expires_at": session.expires_at,
    }


def _session(row: Any) -> Session:
    person = Person(row["subject"], row["agency_id"], row["role"]) if row["subject"] else None
    login = (
        Login(row["login_state"], row["login_nonce"], row["login_verifier"]) if row["login_state"] else None
    )
    return Session(
        id_hash=bytes(row["id_hash"]),
        csrf_token=row["csrf_token"],
        person=person,
        signed_in_via=row["signed_in_via"],
        access_token=row["access_token"],
        token_expires_at=row["token_expires_at"],
        login=login,
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
    )
