"""Tables of the built-in SQL CRM, and the database setup it shares with the ledger.

``Database`` owns one SQLAlchemy engine per URL and runs units of work on a worker thread, so the
async connector methods never block the event loop. SQLite gets the settings that make it safe
for several threads and processes at once; PostgreSQL needs none beyond a pre-ping pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import Any, Self, TypeVar

from sqlalchemy import (
    JSON,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    any_,
    bindparam,
    cast,
    create_engine,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateColumn

from connectors.base import Account, Contact, PermanentError, RetryableError, TaskRecord, User
from connectors.sqlite_engine import ONE_STATEMENT, sqlite_engine, writer_turn

T = TypeVar("T")

# JSONB on PostgreSQL (indexable, compact); the portable JSON type elsewhere.
Json = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of the CRM tables (the ledger keeps its own metadata)."""

    @classmethod
    def of(cls, record: Any, **override: Any) -> Self:
        """A row with the same-named fields of a connectors record (a dataclass)."""
        return cls(**{**{k: getattr(record, k) for k in record.__dataclass_fields__}, **override})


class AccountRow(Base):
    """``accounts``: every field of ``connectors.base.Account``."""

    __tablename__ = "accounts"
    # The daily scan reads a day's accounts in id order, a page at a time: (date, id) hands each page
    # exactly its own rows, where an index of the date alone made every page read and sort the whole day.
    __table_args__ = (Index("ix_accounts_renewal_date_id", "renewal_date", "id"),)
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    segment: Mapped[str] = mapped_column(String(100), default="")
    lifecycle_stage: Mapped[str] = mapped_column(String(100), default="")
    owner_id: Mapped[str | None] = mapped_column(String(255), index=True)
    arr: Mapped[float] = mapped_column(Float, default=0.0)
    renewal_date: Mapped[date | None] = mapped_column(Date)
    contract_start: Mapped[date | None] = mapped_column(Date)
    renewal_status: Mapped[str] = mapped_column(String(100), default="")
    health_score: Mapped[int | None]
    health_band: Mapped[str] = mapped_column(String(20), default="")
    previous_health_score: Mapped[int | None]
    usage: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    fields: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    def record(self) -> Account:
        """As the connectors' record."""
        return Account(id=self.id, name=self.name, segment=self.segment, lifecycle_stage=self.lifecycle_stage,
                       owner_id=self.owner_id, arr=self.arr, renewal_date=self.renewal_date,
                       contract_start=self.contract_start, renewal_status=self.renewal_status,
                       health_score=self.health_score, health_band=self.health_band,
                       previous_health_score=self.previous_health_score, usage=dict(self.usage or {}),
                       fields=dict(self.fields or {}))


class ContactRow(Base):
    """``contacts``: people at a customer."""

    __tablename__ = "contacts"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    # "primary" is an SQL reserved word; a plain column name spares every query the quoting.
    primary: Mapped[bool] = mapped_column("is_primary", default=False)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def record(self) -> Contact:
        """As the connectors' record."""
        return Contact(id=self.id, account_id=self.account_id, email=self.email, first_name=self.first_name,
                       last_name=self.last_name, title=self.title, role=self.role, phone=self.phone,
                       primary=self.primary, timezone=self.timezone or "")


class UserRow(Base):
    """``users``: the team. Manager and backup are plain ids, not foreign keys, so two people can
    cover for each other and setup can add them in any order."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    manager_id: Mapped[str | None] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    out_of_office: Mapped[bool] = mapped_column(default=False)
    backup_id: Mapped[str | None] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(Json, default=list)

    def record(self) -> User:
        """As the connectors' record."""
        return User(id=self.id, email=self.email, name=self.name, title=self.title, manager_id=self.manager_id,
                    timezone=self.timezone, out_of_office=self.out_of_office, backup_id=self.backup_id,
                    roles=tuple(self.roles or ()))


class TaskRow(Base):
    """``tasks``: one row per idempotency key (the unique constraint is what dedupes)."""

    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(1000), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    assignee_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(1000))
    notes: Mapped[str] = mapped_column(Text, default="")
    due: Mapped[date | None] = mapped_column(Date)
    priority: Mapped[str] = mapped_column(String(20), default="normal")
    status: Mapped[str] = mapped_column(String(20), default="open")
    """open, completed, or cancelled (closed by csops when its run ended: not done)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When it was completed or cancelled."""
    status_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    """Why it was cancelled (added after the first release: older databases get it when opened)."""

    def record(self) -> TaskRecord:
        """As the connectors' record."""
        return TaskRecord(id=self.id, account_id=self.account_id, assignee_id=self.assignee_id, title=self.title,
                          status=self.status, priority=self.priority, due=self.due, reason=self.status_reason or "")


class NoteRow(Base):
    """``notes``: the account's activity timeline, one row per idempotency key."""

    __tablename__ = "notes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(1000), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Database:
    """One engine for a SQLAlchemy URL, its tables created if missing, and units of work on threads.

    Args:
        url: ``sqlite:///path/to.db`` (the parent folder is created), ``sqlite://`` (in memory) or
            ``postgresql+psycopg://user@host/db``.
        metadata: The tables this user of the database needs.
    """

    def __init__(self, url: str, metadata: MetaData) -> None:
        parsed = make_url(url)
        self._lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if parsed.get_backend_name() == "sqlite":
            self.engine = sqlite_engine(url)
            self.read_engine = self.engine
            if parsed.database in (None, "", ":memory:"):
                # One shared in-memory connection: units of work must take turns on it.
                self._lock = threading.Lock()
            else:
                # Reads need no write lock: under WAL a deferred transaction reads a consistent
                # snapshot beside a writer, where BEGIN IMMEDIATE would queue behind every write.
                self.read_engine = sqlite_engine(url, immediate=False)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            self.read_engine = self.engine
        # A lone SELECT sees one snapshot with or without a transaction around it (``read_one``). Without
        # one, psycopg sends no BEGIN and the pool no ROLLBACK (same pool).
        self.lone_engine = (self.read_engine if parsed.get_backend_name() == "sqlite"
                            else self.engine.execution_options(isolation_level="AUTOCOMMIT"))
        try:
            metadata.create_all(self.engine)
        except DBAPIError:
            # Another process created the same tables between the existence check and CREATE.
            metadata.create_all(self.engine)
        upgrade_tables(self.engine, metadata)

    def call(self, work: Callable[[Session], T], *, engine: Engine | None = None) -> T:
        """Run ``work`` with a fresh session on this thread; ``work`` commits what it writes.

        Raises:
            RetryableError: the database is unreachable, locked or out of pooled connections.
            PermanentError: a value the database refuses (too long, out of range).
        """
        bind = engine or self.engine
        with _mapped_errors(), self._lock, writer_turn(bind), Session(bind, expire_on_commit=False) as session:
            return work(session)

    def call_plain(self, work: Callable[[Connection], T], *, engine: Engine | None = None) -> T:
        """Like ``call`` on a plain connection in one transaction, committed when ``work`` returns (rolled back when it
        raises): for a hot write of a few statements, where an ORM session cost more Python than the SQL took."""
        bind = engine or self.engine
        with _mapped_errors(), self._lock, writer_turn(bind), bind.begin() as conn:
            return work(conn)

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` on a worker thread (SQLAlchemy sessions are synchronous)."""
        return await asyncio.to_thread(self.call, work)

    async def read(self, work: Callable[[Session], T]) -> T:
        """Like ``run`` for a unit of work that only reads (it takes no write lock on SQLite)."""
        return await asyncio.to_thread(self.call, work, engine=self.read_engine)

    async def read_one(self, work: Callable[[Connection], T]) -> T:
        """Like ``read`` for a unit of work that is a single SELECT, on a plain connection (no ORM
        session: it cost more than the query). One statement reads a consistent snapshot by itself,
        so it runs outside a transaction: SQLite gets no BEGIN, PostgreSQL (psycopg) no BEGIN and the
        pool no ROLLBACK, two of the four round trips of such a read."""
        return await asyncio.to_thread(self._read_one, work)

    def _read_one(self, work: Callable[[Connection], T]) -> T:
        options = {ONE_STATEMENT: True}
        with _mapped_errors(), self._lock, self.lone_engine.connect().execution_options(**options) as conn:
            return work(conn)

    def among(self, column: Any, values: Sequence[Any]) -> Any:
        """SQL: ``column`` is one of ``values``: one array parameter on PostgreSQL (an IN list of a page's ids
        cost more to render and parse than the query took to run), text as its literal quoted here (psycopg ran
        a regex search on each element: a few ms of CPU for a scan's page of 3,600 ids), cast back by SQL."""
        if self.engine.dialect.name != "postgresql":
            return column.in_(list(values))
        if isinstance(column.type, String) and all(type(v) is str for v in values):  # text[]: VARCHAR(n) cuts
            return column == any_(cast(bindparam(None, array_text(values), type_=Text()), ARRAY(Text())))
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()
        self.read_engine.dispose()


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """Database errors as the connector errors activities retry (or not)."""
    try:
        yield
    except (OperationalError, InterfaceError, SATimeoutError) as exc:
        raise RetryableError(f"database unavailable: {type(exc).__name__}", detail=str(exc)) from exc
    except DataError as exc:
        raise PermanentError("the database refused a value", detail=str(exc.orig)) from exc


def array_text(values: Sequence[str]) -> str:
    """``values`` as a PostgreSQL array literal: every element double-quoted, its ``\\`` and ``"`` escaped."""
    return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"


def upgrade_tables(engine: Engine, metadata: MetaData) -> None:
    """Give tables made by an older csops the columns and plain indexes added since (``create_all`` makes
    missing tables only). Another process may add one at the same moment: then our DDL fails, and it is
    there all the same. New columns must be nullable or have a server default. A unique index is left
    out: the rows already there may break it, which is a migration's to resolve, not a start's."""
    found = inspect(engine)
    for table in metadata.sorted_tables:
        if not found.has_table(table.name):
            continue
        columns, indexes = _names(engine, table.name)
        missing: list[tuple[str, Callable[[], object]]] = [
            (c.name, functools.partial(_execute, engine, f"ALTER TABLE {table.name} ADD COLUMN "
                                       f"{CreateColumn(c).compile(dialect=engine.dialect)}"))
            for c in table.columns if c.name not in columns]
        missing += [(str(i.name), functools.partial(i.create, engine, checkfirst=True))
                    for i in table.indexes if i.name not in indexes and not i.unique]
        for name, make in missing:
            try:
                make()
            except DBAPIError:
                if name not in set().union(*_names(engine, table.name)):
                    raise


def _names(engine: Engine, table: str) -> tuple[set[str], set[str]]:
    """The names of a table's columns and of its indexes, as the database has them now."""
    found = inspect(engine)
    return {c["name"] for c in found.get_columns(table)}, {str(i["name"]) for i in found.get_indexes(table)}


def _execute(engine: Engine, ddl: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(ddl)


CONTACT_COLUMNS = [a.class_attribute for a in ContactRow.__mapper__.column_attrs]
USER_COLUMNS = [a.class_attribute for a in UserRow.__mapper__.column_attrs]


def contact_of(r: Any) -> Contact:
    """A contact from a plain row of ``CONTACT_COLUMNS``."""
    return Contact(id=r.id, account_id=r.account_id, email=r.email, first_name=r.first_name, last_name=r.last_name,
                   title=r.title, role=r.role, phone=r.phone, primary=r.primary, timezone=r.timezone or "")


def read_users(s: Session, db: Database, ids: set[str]) -> dict[str, User]:
    """The users with these ids, by id, read as plain rows."""
    if not ids:
        return {}
    rows = s.execute(select(*USER_COLUMNS).where(db.among(UserRow.id, list(ids))))
    return {r.id: User(id=r.id, email=r.email, name=r.name, title=r.title, manager_id=r.manager_id,
                       timezone=r.timezone, out_of_office=r.out_of_office, backup_id=r.backup_id,
                       roles=tuple(r.roles or ())) for r in rows}


def json_value(name: str, value: Any) -> Any:
    """Custom fields hold JSON: dates become ISO text, anything else non-JSON is refused."""
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [json_value(name, v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: json_value(name, v) for k, v in value.items()}
    raise PermanentError(f"{name}: a {type(value).__name__} cannot be stored in a custom field")
