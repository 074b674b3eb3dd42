"""People, passwords, sessions and the audit trail of the console, kept in the engine's store.

Passwords are hashed with scrypt (``hashlib.scrypt``, OpenSSL's, in the standard library) with a
random salt per password; a session cookie holds 32 random bytes and the store only their SHA-256,
so a copy of the database opens no session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.store.console_models import ROLES, AuditActionRow, SessionRow, SnoozeRow, UserRow
from engine.store.store import Store

__all__ = ["SESSION_HOURS", "Person", "add_user", "audit", "end_session", "find_user", "hash_password",
           "list_users", "new_session", "recent_audit", "remove_user", "session_person", "snooze", "snoozed",
           "verify_password"]

SESSION_HOURS = 12
"""A session ends this many hours after sign-in (sign in again then)."""
SCRYPT = (2**14, 8, 1)
"""scrypt's N, r, p: about 16 MiB and 50 ms a check, OWASP's minimum for scrypt."""
MIN_PASSWORD = 12
"""Shortest password ``csops console user add`` accepts."""
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="


@dataclass(frozen=True, kw_only=True)
class Person:
    """Who is signed in."""

    email: str
    """Their sign-in (lower case)."""
    name: str
    """Display name ("" when not given)."""
    role: str
    """ops or csm."""
    crm_user: str
    """Their CRM user id ("" = not linked: no inbox, no own accounts)."""
    csrf: str = ""
    """The session's CSRF token (trusted-header mode: the CSRF cookie's)."""

    @property
    def ops(self) -> bool:
        """May act on everything."""
        return self.role == "ops"


def hash_password(password: str) -> str:
    """The scrypt hash to store, as ``scrypt$N$r$p$salt$hash``."""
    n, r, p = SCRYPT
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash (constant time; False for a malformed or empty hash)."""
    try:
        kind, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except ValueError:
        return False
    return kind == "scrypt" and bool(stored) and hmac.compare_digest(got, expected)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _person(row: UserRow, csrf: str = "") -> Person:
    return Person(email=row.email, name=row.name, role=row.role, crm_user=row.crm_user, csrf=csrf)


async def add_user(store: Store, email: str, *, role: str, password: str = "", name: str = "",
                   crm_user: str = "") -> bool:
    """Create the console user, or replace their role, name, CRM link and password; True when new.

    Raises:
        ValueError: not an email address, an unknown role, or a password shorter than MIN_PASSWORD.
    """
    address = email.strip().lower()
    if "@" not in address or len(address) > 320 or any(c.isspace() for c in address):
        raise ValueError(f"{email!r} is not an email address; give the address the person signs in with")
    if role not in ROLES:
        raise ValueError(f"the role is ops or csm, not {role!r}")
    if password and len(password) < MIN_PASSWORD:
        raise ValueError(f"the password has {len(password)} characters; use at least {MIN_PASSWORD}")
    hashed = hash_password(password) if password else ""

    def work(s: Session) -> bool:
        row = s.get(UserRow, address)
        new = row is None
        if row is None:
            row = UserRow(email=address, created_at=datetime.now(UTC))
            s.add(row)
        row.role, row.name, row.crm_user, row.password = role, name, crm_user, hashed
        s.commit()
        return new
    return await store.db.run(work)


async def remove_user(store: Store, email: str) -> bool:
    """Delete the console user and end every session of theirs; False when there was no such user."""
    address = email.strip().lower()

    def work(s: Session) -> bool:
        s.execute(delete(SessionRow).where(SessionRow.email == address))
        row = s.get(UserRow, address)
        if row is not None:
            s.delete(row)
        s.commit()
        return row is not None
    return await store.db.run(work)


async def list_users(store: Store) -> list[Person]:
    """Every console user, by email."""
    rows = await store.db.read(lambda s: s.scalars(select(UserRow).order_by(UserRow.email)).all())
    return [_person(r) for r in rows]


async def find_user(store: Store, email: str) -> Person | None:
    """The console user with this email (any case), or None."""
    row = await store.db.read(lambda s: s.get(UserRow, email.strip().lower()))
    return None if row is None else _person(row)


async def new_session(store: Store, email: str, password: str, *, now: datetime) -> tuple[str, Person] | None:
    """Sign in: the cookie value and the person, or None for an unknown email or a wrong password.

    An unknown email costs the same scrypt check as a known one, so timing does not tell who has an account.
    """
    row = await store.db.read(lambda s: s.get(UserRow, email.strip().lower()))
    ok = verify_password(password, row.password if row is not None else "")
    if row is None or not ok:
        return None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session = SessionRow(token_hash=_token_hash(token), email=row.email, csrf=csrf, created_at=now,
                         expires_at=now + timedelta(hours=SESSION_HOURS))

    def work(s: Session) -> None:
        s.execute(delete(SessionRow).where(SessionRow.expires_at < now))  # tidy ended sessions as we go
        s.add(session)
        s.commit()
    await store.db.run(work)
    return token, _person(row, csrf)


async def session_person(store: Store, token: str, *, now: datetime) -> Person | None:
    """Who the session cookie ``token`` belongs to, or None (unknown, ended, or the user was removed)."""
    if not token or len(token) > 200:
        return None
    query = (select(SessionRow, UserRow).join(UserRow, UserRow.email == SessionRow.email)
             .where(SessionRow.token_hash == _token_hash(token), SessionRow.expires_at > now))
    found = await store.db.read(lambda s: s.execute(query).first())
    if found is None:
        return None
    session, user = found
    return _person(user, session.csrf)


async def end_session(store: Store, token: str) -> None:
    """Sign out: the session is deleted (its cookie opens nothing any more)."""
    stmt = delete(SessionRow).where(SessionRow.token_hash == _token_hash(token))

    def work(s: Session) -> None:
        s.execute(stmt)
        s.commit()
    await store.db.run(work)


async def audit(store: Store, *, actor: str, action: str, target: str, detail: str = "",
                at: datetime | None = None) -> None:
    """Record what a person did from the console."""
    row = AuditActionRow(at=at or datetime.now(UTC), actor=actor, action=action, target=target[:1000],
                         detail=detail[:4000])

    def work(s: Session) -> None:
        s.add(row)
        s.commit()
    await store.db.run(work)


async def recent_audit(store: Store, limit: int = 50) -> list[AuditActionRow]:
    """The latest console actions, newest first."""
    query = select(AuditActionRow).order_by(AuditActionRow.id.desc()).limit(limit)
    return list(await store.db.read(lambda s: s.scalars(query).all()))


async def snooze(store: Store, task_id: str, until: date, by: str) -> None:
    """Hide the task from its owner's inbox until ``until``."""
    def work(s: Session) -> None:
        s.merge(SnoozeRow(task_id=task_id, until=until, by=by))
        s.commit()
    await store.db.run(work)


async def snoozed(store: Store, today: date) -> dict[str, date]:
    """Tasks snoozed past ``today``, with the day they come back."""
    query = select(SnoozeRow.task_id, SnoozeRow.until).where(SnoozeRow.until > today)
    return {r.task_id: r.until for r in await store.db.read(lambda s: s.execute(query).all())}
