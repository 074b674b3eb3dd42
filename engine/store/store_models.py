"""Tables of the engine's store, and the records ``engine.store.store.Store`` hands back.

The tables have their own metadata, so the store can share a database with the CRM and the ledger.
JSON values are kept as text (the same on SQLite and PostgreSQL). Every time column is
:class:`UtcDateTime`: written in UTC, read back aware in UTC, because SQLite keeps no offset and
would otherwise compare local times of different zones as if they were one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Dialect, Float, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["DECISION_OUTCOMES", "AuditRow", "Base", "DecisionRecord", "EventRecord", "RunPage", "RunRecord",
           "RunTaskRow", "UtcDateTime", "event_record", "to_json", "utc"]


DECISION_OUTCOMES = frozenset({"start", "suppressed", "started", "failed"})
"""What a trigger decision can come to."""


_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
"""One encoder for ``to_json``: ``json.dumps`` with options builds a new one per call, which cost as much as
encoding an event's data (once per event stored)."""


def to_json(value: Any, what: str) -> str:
    """``value`` as compact JSON text.

    Raises:
        TypeError: ``value`` is not JSON (``what`` names it in the message).
    """
    try:
        return _COMPACT.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON (text, numbers, true/false, null, lists, objects): {exc}") from exc


def utc(moment: datetime, what: str = "time") -> datetime:
    """``moment`` in UTC; a naive time is refused, since nothing says which zone it was in.

    Raises:
        ValueError: ``moment`` has no time zone.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the {what} {moment.isoformat()} has no time zone; give it one (e.g. 2025-01-31T09:00:00Z)")
    return moment.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC; SQLite's naive values are read back as the UTC they were written in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits for the busy tables.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """The store's own metadata, so it can live in a database beside the CRM and the ledger."""


class EventRow(Base):
    """``events``: every event received, once per id."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_account_occurred", "account_id", "occurred_at"),
                      Index("ix_events_pending", "processed_at", "received_at"),
                      # An event waits for the account's earlier queued ones: looked up per account.
                      Index("ix_events_account_queue", "account_id", "processed_at", "received_at"),
                      Index("ix_events_failed", "failed_at"))
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[str] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    data: Mapped[str] = mapped_column(Text)
    """JSON text."""
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    """When the event's facts, triggers and routing were done (None: still queued)."""
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    """When a processor last took it (its claim lapses after a lease, so a crashed one's events are retried)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Failed processing attempts since it was stored or last re-queued."""
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    """Why the last attempt failed ("" when none did)."""
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    """After a failed attempt: not claimed again before this time (the back-off)."""
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    """When it failed for the last allowed time; set, it is never claimed again until re-queued."""

    def record(self) -> EventRecord:
        """As the store's record."""
        return event_record(self)


def event_record(row: Any, time: Callable[[Any], datetime] = lambda value: value) -> EventRecord:
    """An ``EventRow``, or a Core row of the events table's columns, as the store's record; ``time`` makes its times."""
    failed = row.failed_at
    return EventRecord(id=row.id, type=row.type, account_id=row.account_id, occurred_at=time(row.occurred_at),
                       received_at=time(row.received_at), data=json.loads(row.data), attempts=row.attempts,
                       last_error=row.last_error, failed_at=None if failed is None else time(failed))


class HealthRow(Base):
    """``health_history``: one health score of an account at a time."""

    __tablename__ = "health_history"
    __table_args__ = (Index("ix_health_history_account_at", "account_id", "at"),)
    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    score: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(50), default="")


class FirstUseRow(Base):
    """``first_uses``: the first time an account used a feature or a product."""

    __tablename__ = "first_uses"
    account_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    """``feature`` or ``product``."""
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime)
    event_id: Mapped[str] = mapped_column(String(255), default="")


class DecisionRow(Base):
    """``trigger_decisions``: what the trigger matcher decided for a signal, and what came of it."""

    __tablename__ = "trigger_decisions"
    __table_args__ = (Index("ix_trigger_decisions_account", "account_id", "id"),
                      Index("ix_trigger_decisions_playbook", "playbook", "id"))
    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    playbook: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str] = mapped_column(String(255))
    signal: Mapped[str] = mapped_column(Text)
    """JSON text."""
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(100), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    occurrence: Mapped[str] = mapped_column(String(500), default="")
    run_id: Mapped[str] = mapped_column(String(1000), default="")
    seen: Mapped[str] = mapped_column(Text)
    """JSON text."""

    @classmethod
    def of(cls, r: DecisionRecord) -> DecisionRow:
        """A new row for the record (its id is left to the database).

        Raises:
            ValueError: the outcome is not one of ``DECISION_OUTCOMES``, or the time is naive.
            TypeError: ``signal`` or ``seen`` is not JSON.
        """
        if r.outcome not in DECISION_OUTCOMES:
            raise ValueError(f"a decision's outcome is start, suppressed, started or failed, not {r.outcome!r}")
        return cls(at=utc(r.at), playbook=r.playbook, account_id=r.account_id,
                   signal=to_json(r.signal, "a decision's signal"), outcome=r.outcome, reason=r.reason,
                   message=r.message, occurrence=r.occurrence, run_id=r.run_id,
                   seen=to_json(r.seen, "a decision's seen values"))

    def record(self) -> DecisionRecord:
        """As the store's record."""
        return DecisionRecord(id=self.id, at=self.at, playbook=self.playbook, account_id=self.account_id,
                              signal=json.loads(self.signal), outcome=self.outcome, reason=self.reason,
                              message=self.message, occurrence=self.occurrence, run_id=self.run_id,
                              seen=json.loads(self.seen))


class RunRow(Base):
    """``runs``: one execution of a playbook for an account.

    ``run_id`` is the workflow id; it is not the key, because a playbook without an entry key runs
    again under the same workflow id once its cooldown is over; an execution is (run_id, temporal_run_id).
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ux_runs_execution", "run_id", "temporal_run_id", unique=True),
        Index("ix_runs_playbook_account", "playbook", "account_id", "started_at"),
        Index("ix_runs_account_started", "account_id", "started_at"),
        Index("ix_runs_started", "started_at"),
    )
    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(1000))
    temporal_run_id: Mapped[str] = mapped_column(String(100), default="")
    playbook: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(100), default="")
    account_id: Mapped[str] = mapped_column(String(255))
    occurrence: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    trigger: Mapped[str] = mapped_column(Text)
    """JSON text."""
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    def record(self) -> RunRecord:
        """As the store's record."""
        return RunRecord(run_id=self.run_id, temporal_run_id=self.temporal_run_id, playbook=self.playbook,
                         version=self.version, account_id=self.account_id, occurrence=self.occurrence,
                         status=self.status, reason=self.reason, trigger=json.loads(self.trigger),
                         started_at=self.started_at, ended_at=self.ended_at)


class StepAuditRow(Base):
    """``step_audit``: one step transition of a run, once per (run, step, status, time)."""

    __tablename__ = "step_audit"
    __table_args__ = (Index("ux_step_audit_transition", "run_id", "step", "status", "at", unique=True),)
    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(1000))
    step: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    detail: Mapped[str] = mapped_column(Text, default="")
    # Added for the performance report (engine/reports): older stores get them when opened.
    kind: Mapped[str] = mapped_column(String(30), default="", server_default="")
    """task, email, alert, wait, waitfor, branch, update, note, http, startplaybook, exit, escalate,
    task_completed, task_closed ("" for rows recorded before kinds were)."""
    planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    """When the step was due by the plan (None for rows recorded before it was)."""
    sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Messages an email or alert step sent."""
    suppressed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Emails not sent: the recipient is on the suppression list."""
    capped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Marketing emails not sent: over the recipient's cap."""

    def record(self) -> AuditRow:
        """As the store's record."""
        return AuditRow(id=self.id, run_id=self.run_id, step=self.step, status=self.status, at=self.at,
                        detail=self.detail, kind=self.kind, planned_at=self.planned_at, sent=self.sent,
                        suppressed=self.suppressed, capped=self.capped)


class RunTaskRow(Base):
    """``run_tasks``: the CRM tasks runs created, as csops last saw them (the task inbox and the report)."""

    __tablename__ = "run_tasks"
    __table_args__ = (Index("ix_run_tasks_assignee", "assignee", "status"),
                      Index("ix_run_tasks_run", "run_id"))
    task_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(1000))
    step: Mapped[str] = mapped_column(String(500))
    playbook: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(100), default="")
    account_id: Mapped[str] = mapped_column(String(255))
    assignee: Mapped[str] = mapped_column(String(320), default="")
    """The assignee's email when the task was created."""
    title: Mapped[str] = mapped_column(Text, default="")
    due: Mapped[date | None] = mapped_column(Date, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(20), default="open")
    """open, completed or cancelled (closed because its run exited or was cancelled)."""
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    """When it was completed or cancelled, as first seen by csops."""
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    """How many of its step's escalations fired."""


# --- records ---------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """An event as stored (SPEC section 8)."""

    id: str
    """The event's own id; events are idempotent by it."""
    type: str
    """``health.updated``, ``usage.feature_used``, ``account.updated``... or a custom type."""
    account_id: str
    """The account the event is about."""
    occurred_at: datetime
    """When it happened (aware, UTC)."""
    received_at: datetime
    """When the store first received it (aware, UTC)."""
    data: dict[str, Any] = field(default_factory=dict)
    """The event's data."""
    attempts: int = 0
    """Failed processing attempts so far (since it was stored or last re-queued)."""
    last_error: str = ""
    """Why the last attempt failed ("" when none did)."""
    failed_at: datetime | None = None
    """When it was set aside after its last allowed attempt (None: not failed)."""


@dataclass(frozen=True, kw_only=True)
class DecisionRecord:
    """One trigger decision: a playbook's trigger matched a signal for an account, and this came of it."""

    at: datetime
    """When it was decided (aware, UTC)."""
    playbook: str
    """The playbook id."""
    account_id: str
    """The account."""
    signal: dict[str, Any]
    """What matched: ``kind`` (event, scan, tick, manual), the event ``type`` and ``id``, the trigger..."""
    outcome: str
    """``start`` (decided to start), ``suppressed`` (not started, see ``reason``), ``started`` (the
    run was started) or ``failed`` (starting it failed)."""
    reason: str = ""
    """Machine id of the outcome (``started``, ``already_active``, ``cooldown``...)."""
    message: str = ""
    """The outcome in plain words."""
    occurrence: str = ""
    """The entry key value ("" = no key)."""
    run_id: str = ""
    """The run (workflow) id it started or would have started."""
    seen: dict[str, Any] = field(default_factory=dict)
    """The values the decision looked at."""
    id: int = 0
    """The row id, newest highest (0 on a record not stored yet)."""


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run of a playbook for an account."""

    run_id: str
    """The workflow id ``pb:{playbook}:{account}:{occurrence}``."""
    temporal_run_id: str
    """Temporal's run id of the run's first execution (it stays the same across continue-as-new)."""
    playbook: str
    """The playbook id."""
    version: str
    """The playbook version (content hash) the run is pinned to."""
    account_id: str
    """The account."""
    occurrence: str
    """The entry key value ("" = no key)."""
    status: str
    """``running``, ``completed``, ``failed``, ``exited`` or ``cancelled``."""
    reason: str
    """Why it ended as it did ("" while running)."""
    trigger: dict[str, Any]
    """What started it (``trigger`` in expressions)."""
    started_at: datetime
    """When it started (aware, UTC)."""
    ended_at: datetime | None
    """When it ended (aware, UTC); None while running."""


@dataclass(frozen=True, kw_only=True)
class RunPage:
    """A page of runs, newest first."""

    runs: list[RunRecord]
    """The runs on this page."""
    next_cursor: str | None
    """Pass it as ``cursor`` for the next page; None on the last page."""


@dataclass(frozen=True, kw_only=True)
class AuditRow:
    """One step transition of a run."""

    run_id: str
    """The run (workflow) id."""
    step: str
    """The step path (``remind``, ``branch.cases.0.call``...)."""
    status: str
    """What happened: started, done, skipped, failed, timed_out, received, escalated..."""
    at: datetime
    """When (aware; UTC when read back)."""
    detail: str = ""
    """Details in plain words (cut to the store's limit)."""
    id: int = 0
    """The row id (0 on a row not stored yet)."""
    kind: str = ""
    """The step's kind (see ``StepAuditRow.kind``)."""
    planned_at: datetime | None = None
    """When the step was due by the plan."""
    sent: int = 0
    """Messages an email or alert step sent."""
    suppressed: int = 0
    """Emails not sent (suppression list)."""
    capped: int = 0
    """Marketing emails not sent (over the cap)."""
