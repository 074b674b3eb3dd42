"""Recording connectors for ``csops simulate`` and playbook tests: nothing leaves the process.

The CRM is the built-in SQL CRM on an in-memory SQLite database, seeded from the account file,
wrapped so that every write (task, task change, account update, note) is also recorded. Mail,
chat and webhooks are only recorded: no SMTP, no Slack, no HTTP. Each record carries the
simulated time (the time-skipping server's time at which Temporal scheduled the activity) and the
step path taken from the idempotency key ``workflow-id/step-path``.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from connectors.base import (
    Account,
    AccountView,
    ChatMessage,
    Contact,
    HttpResult,
    NewTask,
    OutgoingEmail,
    TaskRecord,
    User,
)
from connectors.sqlcrm import SQLCRM
from engine.errors import CsopsError

T = TypeVar("T")
_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("csops_sim_key", default="")


@dataclass(frozen=True, kw_only=True)
class Record:
    """One effect a run asked for."""

    at: datetime
    """Simulated time the activity was scheduled."""
    path: str
    """Step path (the idempotency key without the workflow id), e.g. ``kickoff/escalate/0``."""
    run: str = ""
    """The playbook of a run a ``start_playbook`` step started; empty for the simulated run."""
    action: str
    """task, reassign, reprioritise, close-task, alert, email, update, note or http."""
    to: str = ""
    """Who or where it went: an email address, ``#channel``, or the URL of a webhook."""
    text: str = ""
    """The rendered title, message, subject or note."""
    detail: dict[str, Any] = field(default_factory=dict)
    """The rest (due date, priority, body, changes, JSON payload...)."""


class Recorder:
    """The records of one simulation, in the order the effects happened."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        self.records: list[Record] = []
        self.runs: dict[str, str] = {workflow_id: ""}
        """Workflow id to the playbook of a started run ("" for the simulated run)."""

    def where(self, key: str) -> tuple[str, str]:
        """The run (its playbook, "" for the simulated one) and the step path of an idempotency key."""
        for wf, run in self.runs.items():
            if key.startswith(wf + "/"):
                return run, key[len(wf) + 1:]
        return "", key

    def label(self, key: str) -> str:
        """The step path as the timeline shows it: ``child-playbook:step`` for a started run's steps."""
        run, path = self.where(key)
        return f"{run}:{path}" if run else path

    def add(self, key: str, action: str, *, to: str = "", text: str = "", **detail: Any) -> None:
        """Record an effect done under idempotency key ``key`` (the current activity's key when empty)."""
        run, path = self.where(key or _KEY.get())
        self.records.append(Record(at=_now(), path=path, run=run, action=action, to=to, text=text, detail=detail))


def _now() -> datetime:
    """The simulated time: when Temporal scheduled the running activity (server time, skipped)."""
    if activity.in_activity():
        return activity.info().current_attempt_scheduled_time.astimezone(UTC)
    return datetime.now(UTC)


class KeyInterceptor(Interceptor):
    """Makes the running activity's idempotency key known to the connectors (some calls, such as
    ``update_task`` and ``update_account``, do not take one)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _KeyInbound(next)


class _KeyInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        key = getattr(input.args[0], "key", "") if input.args else ""
        token = _KEY.set(str(key))
        try:
            return await super().execute_activity(input)
        finally:
            _KEY.reset(token)


class RecordingCRM:
    """The built-in SQL CRM in memory, seeded; writes go to it and are recorded."""

    def __init__(self, recorder: Recorder, accounts: list[Account], contacts: list[Contact], users: list[User]) -> None:
        self.sql = SQLCRM("sqlite://")
        self.sql.upsert([*users, *accounts, *contacts])
        self.recorder = recorder
        self.task_steps: dict[str, str] = {}
        """Task id to the step path that created it (to complete a step's task from a test)."""

    def close(self) -> None:
        """Drop the in-memory database."""
        self.sql.close()

    async def get_account(self, account_id: str) -> Account | None:
        return await self.sql.get_account(account_id)

    async def list_contacts(self, account_id: str) -> list[Contact]:
        return await self.sql.list_contacts(account_id)

    async def get_user(self, user_id_or_email: str) -> User | None:
        return await self.sql.get_user(user_id_or_email)

    async def account_view(self, account_id: str) -> AccountView | None:
        return await self.sql.account_view(account_id)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        return await self.sql.get_task(task_id)

    async def create_task(self, task: NewTask, idempotency_key: str) -> TaskRecord:
        record = await self.sql.create_task(task, idempotency_key)
        self.task_steps[record.id] = self.recorder.label(idempotency_key)
        self.recorder.add(idempotency_key, "task", to=await self._email(task.assignee_id), text=task.title,
                          due=task.due.isoformat() if task.due else "", priority=task.priority, notes=task.notes)
        return record

    async def update_task(self, task_id: str, *, status: str | None = None, assignee_id: str | None = None,
                          priority: str | None = None, reason: str = "") -> TaskRecord:
        before = await self.sql.get_task(task_id)
        record = await self.sql.update_task(task_id, status=status, assignee_id=assignee_id, priority=priority,
                                            reason=reason)
        title = before.title if before else task_id
        if assignee_id:
            self.recorder.add("", "reassign", to=await self._email(assignee_id), text=title)
        if priority:
            self.recorder.add("", "reprioritise", text=title, priority=priority)
        if status:
            self.recorder.add("", "close-task" if record.status in ("completed", "cancelled") else "task-status",
                              text=title, status=record.status, **({"reason": reason} if reason else {}))
        return record

    async def update_account(self, account_id: str, changes: dict[str, Any]) -> Account:
        account = await self.sql.update_account(account_id, changes)
        self.recorder.add("", "update", text=", ".join(f"{k}={v}" for k, v in changes.items()), changes=changes)
        return account

    async def add_note(self, account_id: str, text: str, idempotency_key: str) -> str:
        note = await self.sql.add_note(account_id, text, idempotency_key)
        self.recorder.add(idempotency_key, "note", text=text)
        return note

    async def _email(self, user_id: str) -> str:
        user = await self.sql.get_user(user_id)
        return user.email if user else user_id


def _step_of(key: str) -> str:
    """An alert or email key ``.../step/<recipient>`` without its per-recipient part."""
    return key.rpartition("/")[0] or key


class RecordingMailer:
    """Records each email; sends nothing."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def send(self, message: OutgoingEmail, idempotency_key: str) -> str:
        self.recorder.add(_step_of(idempotency_key), "email", to=", ".join(message.to), text=message.subject,
                          sender=message.sender, body=message.body, category=message.category)
        return f"<{len(self.recorder.records)}@simulated.csops>"

    async def held(self, key: str, until: datetime, window: str) -> None:
        """An email waits for its send window (engine/runtime/windowcheck.py tells): shown on the timeline."""
        self.recorder.add(_step_of(key), "held", text=f"until {until:%Y-%m-%d %H:%M} {until.tzname()} "
                          f"({until.tzinfo}), send window {window}", until=until.isoformat())


class RecordingChat:
    """Records each chat message; posts nothing."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def post(self, message: ChatMessage, idempotency_key: str) -> str:
        to = f"#{message.channel}" if message.channel else message.user_email
        self.recorder.add(_step_of(idempotency_key), "alert", to=to, text=message.text,
                          blocks=list(message.blocks))
        return f"simulated:{len(self.recorder.records)}"


class RecordingHttp:
    """Records each webhook call and answers 200 without calling anything."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def request(self, method: str, url: str, *, headers: dict[str, str], json: Any,
                      idempotency_key: str) -> HttpResult:
        # Header values may hold secrets rendered from templates: only their names are kept.
        self.recorder.add(idempotency_key, "http", to=url, text=method, json=json, headers=sorted(headers))
        return HttpResult(status=200, body="simulated: not sent")


class MemoryLedger:
    """The effect ledger in a dict: a simulation lives in one process."""

    def __init__(self) -> None:
        self.done: dict[str, Any] = {}

    async def get(self, key: str) -> Any:
        return self.done.get(key)

    async def record(self, key: str, result: Any) -> Any:
        return self.done.setdefault(key, result)


# --- seeding from an account file ------------------------------------------------------------

class SeedError(CsopsError, ValueError):
    """The account data cannot be used; the message says what to fix."""


_DATES = ("renewal_date", "contract_start")


def seed_records(data: Mapping[str, Any], contacts: Sequence[Mapping[str, Any]] = (),
                 users: Sequence[Mapping[str, Any]] = (), *, today: date) -> tuple[Account, list[Contact], list[User]]:
    """The account, contacts and users from plain data (an account file, a test case).

    Dates may be ISO (``2027-03-01``) or relative to ``today``, the simulation's first day:
    ``+120d`` or ``-30d``. ``owner`` may stand for ``owner_id`` (an id or email of a user).

    Raises:
        SeedError: an unknown field, a missing id, a value of the wrong type.
    """
    values = dict(data)
    if "owner" in values:
        values.setdefault("owner_id", values.pop("owner"))
    if "id" not in values:
        raise SeedError("the account needs an id")
    values.setdefault("name", str(values["id"]))
    for name in _DATES:
        if values.get(name) is not None:
            values[name] = relative_date(values[name], today, f"account.{name}")
    account = _make(Account, values, "account")
    people = [_make(Contact, {"account_id": account.id, **c}, f"contacts[{i}]") for i, c in enumerate(contacts)]
    staff = [_make(User, {**u, "roles": tuple(u.get("roles", ()))}, f"users[{i}]") for i, u in enumerate(users)]
    return account, people, staff


def relative_date(value: Any, today: date, where: str) -> date:
    """``+120d``/``-3d`` from ``today``, an ISO date, or a date; SeedError otherwise."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    found = re.fullmatch(r"([+-])(\d+)d", text)
    if found:
        days = int(found.group(2))
        return today + timedelta(days=days if found.group(1) == "+" else -days)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SeedError(f"{where}: {text!r} is not a date; write 2027-03-01, or +120d / -30d for days from the "
                        "simulation's start") from None


def _make(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise SeedError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise SeedError(f"{where}: {exc}") from None
