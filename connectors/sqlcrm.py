"""The built-in SQL CRM: accounts, contacts, users, tasks and notes in SQLite or PostgreSQL.

It is the CRM a fresh machine runs with (``sqlite:///.csops/crm.db``) and the one the tests use on
both databases. ``create_task`` and ``add_note`` dedupe on the idempotency key with a unique
constraint, so a retried activity finds the record its first attempt made.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import Account, Contact, NewTask, PermanentError, TaskRecord, User
from connectors.sqlcrm_models import AccountRow, Base, ContactRow, Database, NoteRow, TaskRow, UserRow

__all__ = ["DEFAULT_URL", "SQLCRM", "NoteRecord"]

DEFAULT_URL = "sqlite:///.csops/crm.db"
PRIORITIES = ("low", "normal", "high")
STATUSES = ("open", "completed", "closed")
HEALTH_BANDS = ("", "green", "yellow", "red")
_TEXT = ("name", "segment", "lifecycle_stage", "renewal_status", "health_band")
_INT = ("health_score", "previous_health_score")
_DATE = ("renewal_date", "contract_start")
# What update_account writes: the standard fields (``owner`` is the playbook spelling of owner_id).
UPDATABLE = frozenset((*_TEXT, *_INT, *_DATE, "arr", "owner", "owner_id"))
Keyed = TypeVar("Keyed", TaskRow, NoteRow)
_CUSTOM = re.compile(r"fields\.([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True, kw_only=True)
class NoteRecord:
    """A note on an account's timeline."""

    id: str
    """Stable id."""
    account_id: str
    """The account it is about."""
    text: str
    """What was logged."""
    created_at: datetime
    """When it was logged."""


class SQLCRM:
    """The ``CRM`` Protocol over SQLAlchemy, plus sync helpers for setup and tests.

    Args:
        url: A SQLAlchemy URL; tables are created if missing.
    """

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.db = Database(url, Base.metadata)

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()

    # --- the CRM Protocol ---------------------------------------------------------------------

    async def get_account(self, account_id: str) -> Account | None:
        """The account, or None when there is none with this id."""
        def work(s: Session) -> Account | None:
            row = s.get(AccountRow, account_id)
            return row.record() if row else None
        return await self.db.run(work)

    async def list_contacts(self, account_id: str) -> list[Contact]:
        """The account's contacts, primary first (empty for an unknown account)."""
        def work(s: Session) -> list[Contact]:
            q = select(ContactRow).where(ContactRow.account_id == account_id)
            return [r.record() for r in s.scalars(q.order_by(ContactRow.primary.desc(), ContactRow.id))]
        return await self.db.run(work)

    async def get_user(self, user_id_or_email: str) -> User | None:
        """A user by id, or else by email (case-insensitive)."""
        return await self.db.run(lambda s: r.record() if (r := _find_user(s, user_id_or_email)) else None)

    async def create_task(self, task: NewTask, idempotency_key: str) -> TaskRecord:
        """Create a task once per key: a repeated key returns the first record and creates nothing."""
        def work(s: Session) -> TaskRecord:
            if found := _by_key(s, TaskRow, idempotency_key):
                return found.record()
            _require(s, AccountRow, task.account_id, "account")
            _require(s, UserRow, task.assignee_id, "user")
            _check_choice("priority", task.priority, PRIORITIES)
            row = TaskRow(id=uuid.uuid4().hex, idempotency_key=idempotency_key, account_id=task.account_id,
                          assignee_id=task.assignee_id, title=task.title, notes=task.notes, due=task.due,
                          priority=task.priority, status="open", created_at=datetime.now(UTC))
            return _insert_once(s, row, TaskRow, idempotency_key).record()
        return await self.db.run(work)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        """The task, or None."""
        return await self.db.run(lambda s: r.record() if (r := s.get(TaskRow, task_id)) else None)

    async def update_task(self, task_id: str, *, status: str | None = None, assignee_id: str | None = None,
                          priority: str | None = None) -> TaskRecord:
        """Change status (``closed`` is stored as ``completed``), assignee or priority."""
        return await self.db.run(lambda s: _update_task(s, task_id, status, assignee_id, priority))

    async def update_account(self, account_id: str, changes: dict[str, Any]) -> Account:
        """Write standard fields and ``fields.NAME`` custom fields, all or nothing.

        Values may be text as templates render them: numbers as digits, dates as ISO text, an
        empty string clears an optional field. ``owner``/``owner_id`` take a user id or email.

        Raises:
            PermanentError: unknown account, field or owner; a value of the wrong type.
        """
        def work(s: Session) -> Account:
            row = s.get(AccountRow, account_id, with_for_update=True)
            if row is None:
                raise PermanentError(f"account {account_id} does not exist")
            custom = dict(row.fields)
            for name, value in changes.items():
                if m := _CUSTOM.fullmatch(name):
                    custom[m.group(1)] = _json_value(name, value)
                elif name in ("owner", "owner_id"):
                    row.owner_id = _owner(s, value)
                elif name in UPDATABLE:
                    setattr(row, name, _coerce(name, value))
                else:
                    raise PermanentError(f'"{name}" is not a field of the account; custom fields are fields.NAME')
            row.fields = custom  # a new dict, so the JSON column sees the change
            s.commit()
            return row.record()
        return await self.db.run(work)

    async def add_note(self, account_id: str, text: str, idempotency_key: str) -> str:
        """Log a note once per key; returns the note id (the first one for a repeated key)."""
        def work(s: Session) -> str:
            if found := _by_key(s, NoteRow, idempotency_key):
                return found.id
            _require(s, AccountRow, account_id, "account")
            row = NoteRow(id=uuid.uuid4().hex, idempotency_key=idempotency_key, account_id=account_id, text=text,
                          created_at=datetime.now(UTC))
            return _insert_once(s, row, NoteRow, idempotency_key).id
        return await self.db.run(work)

    # --- sync helpers for setup and tests -----------------------------------------------------

    def add_account(self, account: Account) -> None:
        """Insert or replace an account."""
        self._merge(AccountRow.of(account))

    def add_contact(self, contact: Contact) -> None:
        """Insert or replace a contact (its account must exist)."""
        self._merge(ContactRow.of(contact))

    def add_user(self, user: User) -> None:
        """Insert or replace a user."""
        self._merge(UserRow.of(user, roles=list(user.roles)))

    def complete_task(self, task_id: str) -> TaskRecord:
        """Mark a task completed, as a CSM would in the CRM."""
        return self.db.call(lambda s: _update_task(s, task_id, "completed", None, None))

    def list_tasks(self, account_id: str | None = None) -> list[TaskRecord]:
        """Tasks in creation order, all or one account's."""
        q = select(TaskRow).order_by(TaskRow.created_at, TaskRow.id)
        if account_id is not None:
            q = q.where(TaskRow.account_id == account_id)
        return self.db.call(lambda s: [r.record() for r in s.scalars(q)])

    def list_notes(self, account_id: str) -> list[NoteRecord]:
        """The account's notes in the order they were logged."""
        q = select(NoteRow).where(NoteRow.account_id == account_id).order_by(NoteRow.created_at, NoteRow.id)
        return self.db.call(lambda s: [NoteRecord(id=r.id, account_id=r.account_id, text=r.text,
                                                  created_at=r.created_at) for r in s.scalars(q)])

    def count_tasks(self) -> int:
        """How many tasks exist."""
        return self.db.call(lambda s: s.scalar(select(func.count()).select_from(TaskRow)) or 0)

    def _merge(self, row: Base) -> None:
        def work(s: Session) -> None:
            s.merge(row)
            s.commit()
        self.db.call(work)


def _insert_once(s: Session, row: Keyed, model: type[Keyed], key: str) -> Keyed:
    """Insert ``row``; if a concurrent writer took the key first, return that writer's row instead."""
    s.add(row)
    try:
        s.commit()
    except IntegrityError as exc:
        s.rollback()
        found = _by_key(s, model, key)
        if found is None:  # some other constraint failed, not the key's
            raise PermanentError(f"cannot create {model.__tablename__[:-1]}", detail=str(exc.orig)) from exc
        return found
    return row


def _by_key(s: Session, model: type[Keyed], key: str) -> Keyed | None:
    return s.scalars(select(model).where(model.idempotency_key == key)).first()


def _require(s: Session, model: type[AccountRow] | type[UserRow], id_: str, what: str) -> None:
    if s.get(model, id_) is None:
        raise PermanentError(f"{what} {id_} does not exist")


def _find_user(s: Session, ref: str) -> UserRow | None:
    return s.get(UserRow, ref) or s.scalars(
        select(UserRow).where(func.lower(UserRow.email) == ref.lower()).order_by(UserRow.id)).first()


def _update_task(s: Session, task_id: str, status: str | None, assignee_id: str | None,
                 priority: str | None) -> TaskRecord:
    row = s.get(TaskRow, task_id, with_for_update=True)
    if row is None:
        raise PermanentError(f"task {task_id} does not exist")
    if status is not None:
        _check_choice("status", status, STATUSES)
        done = status != "open"
        if done != (row.status == "completed"):
            row.completed_at = datetime.now(UTC) if done else None
        row.status = "completed" if done else "open"
    if assignee_id is not None:
        _require(s, UserRow, assignee_id, "user")
        row.assignee_id = assignee_id
    if priority is not None:
        _check_choice("priority", priority, PRIORITIES)
        row.priority = priority
    s.commit()
    return row.record()


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise PermanentError(f"{name} must be one of {', '.join(a or '(empty)' for a in allowed)}, not {value!r}")


def _owner(s: Session, value: Any) -> str | None:
    if value in (None, ""):
        return None
    user = _find_user(s, str(value))
    if user is None:
        raise PermanentError(f"owner {value!r} is not a user")
    return user.id


def _coerce(name: str, value: Any) -> Any:
    """A standard field's value in its column's type, or PermanentError."""
    bad = PermanentError(f"{name}: {value!r} is not a valid {_kind(name)}")
    if name in _TEXT:
        if not isinstance(value, str) or (name == "name" and not value.strip()):
            raise bad
        if name == "health_band":
            _check_choice(name, value, HEALTH_BANDS)
        return value
    if value is None or value == "":
        if name == "arr":
            raise bad
        return None
    if isinstance(value, bool):
        raise bad
    if name in _DATE:
        if isinstance(value, datetime) or not isinstance(value, date | str):
            raise bad
        try:
            return value if isinstance(value, date) else date.fromisoformat(value.strip())
        except ValueError:
            raise bad from None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(number):
        raise bad
    if name == "arr":
        return number
    if not number.is_integer() or not 0 <= number <= 100:
        raise bad
    return int(number)


def _kind(name: str) -> str:
    if name in _TEXT:
        return "non-empty text" if name == "name" else "text"
    return {"arr": "number"}.get(name, "ISO date (YYYY-MM-DD)" if name in _DATE else "whole number 0-100")


def _json_value(name: str, value: Any) -> Any:
    """Custom fields hold JSON: dates become ISO text, anything else non-JSON is refused."""
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(name, v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json_value(name, v) for k, v in value.items()}
    raise PermanentError(f"{name}: a {type(value).__name__} cannot be stored in a custom field")
