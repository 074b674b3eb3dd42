"""Activities: every piece of I/O a playbook run does, with connectors injected by the worker.

Each side effect carries the idempotency key ``workflow-id/step-path`` (no attempt number) and
goes through the ledger: a repeated call with a done key returns the recorded result without
calling out again. Connectors dedupe on the key too where they can, which covers a crash between
the call and the ledger write. Connector errors become retryable or non-retryable failures.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any, Protocol, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from connectors.base import (
    CRM,
    Account,
    AccountView,
    Chat,
    ChatMessage,
    ConnectorError,
    Http,
    Mailer,
    NewTask,
    OutgoingEmail,
    PermanentError,
    RetryableError,
)
from engine.language.context import Calendar, as_datetime, evaluate, render, render_json
from engine.language.coverage import Coverage
from engine.language.coverage_resolve import CoverageError, NextInPool, resolve
from engine.language.parties import parse_party
from engine.language.sizes import ACTIVITY_SECONDS
from engine.payloads.runcontext import (
    contact_data,
    covered_data,
    guard,
    read_view,
    scoped_context,
    user_data,
    view_data,
)
from engine.payloads.runtypes import (
    AlertInput,
    ContextInput,
    EmailInput,
    HttpInput,
    NoteInput,
    Recipient,
    StartInput,
    StepOutcome,
    StepScope,
    TaskChangeInput,
    TaskInput,
    UpdateInput,
    WindowInput,
)
from engine.runtime.redaction import redacting

T = TypeVar("T")
Starter = Callable[[StartInput], Awaitable[str]]


class LedgerLike(Protocol):
    """What activities need of connectors.ledger.Ledger."""

    async def get(self, key: str) -> Any: ...
    async def record(self, key: str, result: Any) -> Any: ...


def _memory_pool() -> NextInPool:
    """Round-robin turns kept in this process: for tests and a store-less setup (the worker passes
    the store's counter, which every worker shares)."""
    turns: dict[str, int] = {}

    async def next_in_pool(team: str, size: int) -> int:
        turns[team] = turns.get(team, -1) + 1
        return turns[team] % size
    return next_in_pool


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a connector call, turning its errors into the failures Temporal retries or not."""
    try:
        return await fn()
    except ConnectorError as exc:
        raise _failure(exc) from exc


def _failure(exc: ConnectorError) -> ApplicationError:
    if isinstance(exc, RetryableError):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        return ApplicationError(str(exc), exc.detail, type="RetryableError", next_retry_delay=delay)
    if isinstance(exc, PermanentError):
        return ApplicationError(str(exc), exc.detail, type="PermanentError", non_retryable=True)
    return ApplicationError(str(exc), exc.detail, type="ConnectorError")


class Renderer:
    """Renders a step's texts against the context its activity read; literal when there is none
    (the engine's own messages, which must not be read as templates). A mistake in a text is the
    step's failure, not worth retrying."""

    def __init__(self, ctx: dict[str, Any] | None, scope: StepScope | None, view: AccountView | None) -> None:
        self.ctx, self.scope = ctx, scope
        self.view = view
        """The account as read for this step (parties resolve against it), None for literal texts."""

    def text(self, src: str, **extra: Any) -> str:
        ctx = self.ctx
        if ctx is None:
            return src
        return _expr(lambda: render(src, {**ctx, **extra} if extra else ctx, ACTIVITY_SECONDS))

    def json(self, value: Any) -> Any:
        ctx = self.ctx
        return value if ctx is None else _expr(lambda: render_json(value, ctx, ACTIVITY_SECONDS))

    @property
    def today(self) -> date | None:
        """The run's today (workflow time in the calendar's zone): who is out of office is judged on it."""
        return _run_today(self.scope)

    def date(self, src: str) -> str:
        """A date expression's value as an ISO date, in the run's calendar."""
        cal = Calendar.from_dict(self.scope.calendar if self.scope else {})
        # The local date in the calendar's zone: `now + business_days(5)` is due on the day it falls on there.
        return _expr(lambda: cal.today(as_datetime(evaluate(src, self.ctx or {}, ACTIVITY_SECONDS), cal)).isoformat())


def _run_today(scope: StepScope | None) -> date | None:
    """The run's today (workflow time in the calendar's zone), None without a scope."""
    if scope is None:
        return None
    return Calendar.from_dict(scope.calendar).today(datetime.fromisoformat(scope.now))


def _expr(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except Exception as exc:  # undefined names, type errors, bad dates: the author's mistake
        raise ApplicationError(str(exc) or type(exc).__name__, type="ExpressionError", non_retryable=True) from exc


Effect = Callable[[Renderer], Awaitable[Any]]


class PlaybookActivities:
    """The activities of PlaybookRun; ``worker.py`` constructs it with real connectors.

    Each effect activity re-reads the account, checks the exit criteria and the step's ``when``,
    renders the step's texts and does the effect, once per idempotency key; it returns a
    ``StepOutcome``: done (with the result), skipped or exited.
    """

    def __init__(self, *, crm: CRM, mailer: Mailer, chat: Chat, ledger: LedgerLike, http: Http | None = None,
                 starter: Starter | None = None, fallback_owner: str = "", coverage: Coverage | None = None,
                 next_in_pool: NextInPool | None = None) -> None:
        self.crm, self.mailer, self.chat, self.ledger, self.http = crm, mailer, chat, ledger, http
        self.starter = starter
        self.coverage = coverage or Coverage.default(fallback_owner)
        if fallback_owner and not self.coverage.default_fallback_owner:
            self.coverage = dataclasses.replace(self.coverage, default_fallback_owner=fallback_owner)
        self.next_in_pool = next_in_pool or _memory_pool()

    def all(self) -> list[Callable[..., Any]]:
        """Every activity method, for Worker(activities=...)."""
        return [redacting(a) for a in (
            self.load_context, self.create_task, self.get_task, self.change_task, self.send_alert,
            self.send_email, self.email_window, self.update_account, self.add_note, self.http_call,
            self.start_playbook)]

    async def _once(self, key: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        done = await self.ledger.get(key)
        if done is not None:
            return done
        return await self.ledger.record(key, await _call(fn))

    async def _effect(self, key: str, account_id: str, scope: StepScope | None, do: Effect) -> StepOutcome:
        """Check, render and do one effect, once per key (a done key returns what was recorded)."""
        done = await self.ledger.get(key)
        if done is not None:
            return StepOutcome(status="done", result=done)
        ctx, view = None, None
        if scope is not None:
            if scope.people:
                view = await self._view(account_id)
                ctx = scoped_context(await self._data(view, _run_today(scope)), scope)
            else:  # parties (none expected) would read the people afresh: view stays None
                ctx = scoped_context(view_data(AccountView(account=await self._account(account_id))), scope)
            stop = _expr(lambda: guard(scope, ctx))
            if stop is not None:
                return stop
        result = await _call(lambda: do(Renderer(ctx, scope, view)))
        return StepOutcome(status="done", result=await self.ledger.record(key, result))

    async def _view(self, account_id: str) -> AccountView:
        view = await _call(lambda: read_view(self.crm, account_id))
        if view is None:
            raise ApplicationError(f"account {account_id} does not exist in the CRM", type="PermanentError",
                                   non_retryable=True)
        return view

    async def _account(self, account_id: str) -> Account:
        account = await _call(lambda: self.crm.get_account(account_id))
        if account is None:
            raise ApplicationError(f"account {account_id} does not exist in the CRM", type="PermanentError",
                                   non_retryable=True)
        return account

    @activity.defn(name="load_context")
    async def load_context(self, inp: ContextInput) -> dict[str, Any]:
        """Re-read the account (with owner and manager) and its contacts, for the workflow's own
        expressions (waits until a date, branches, wait_for conditions, the exit criteria)."""
        return await self._data(await self._view(inp.account_id), date.today())

    async def _data(self, view: AccountView, today: date | None) -> dict[str, Any]:
        """The account data of the context, ``account.owner`` per the coverage model (SPEC section 4)."""
        return await _call(lambda: covered_data(view, self.coverage, directory=self.crm.get_user,
                                                next_in_pool=self.next_in_pool, today=today or date.today()))

    async def _resolve(self, account_id: str, text: str, view: AccountView | None = None,
                       today: date | None = None) -> list[Recipient]:
        """Who a party is for this account now: channels and contacts here, people through the
        coverage model (which records how it resolved, and any fallback)."""
        party = parse_party(text)
        if party is None:
            raise ApplicationError(f"{text!r} is not a party", type="PermanentError", non_retryable=True)
        if party.kind == "channel":
            return [Recipient(kind="channel", channel=party.value)]
        view = view or await self._view(account_id)
        account = view.account
        if party.kind in ("primary_contact", "contacts"):
            contacts = view.contacts
            chosen = ([c for c in contacts if c.primary] or contacts[:1] if party.kind == "primary_contact"
                      else [c for c in contacts if c.role == party.value])
            if not chosen:
                what = ("no primary contact" if party.kind == "primary_contact"
                        else f"no contact with role {party.value}")
                raise ApplicationError(f"account {account.name} has {what}", type="PermanentError",
                                       non_retryable=True)
            return [Recipient(kind="contact", id=c.id, email=c.email, name=contact_data(c)["name"],
                              data=contact_data(c)) for c in chosen]
        try:
            found = await resolve(self.coverage, text, view, directory=self.crm.get_user,
                                  next_in_pool=self.next_in_pool, today=today or date.today())
        except CoverageError as exc:
            raise ApplicationError(str(exc), type="PermanentError", non_retryable=True) from exc
        except ConnectorError as exc:  # the directory (CRM) failed: retry or not, as for any call
            raise _failure(exc) from exc
        who = found.people[0]
        return [Recipient(kind="user", id=who.id, email=who.email, name=who.name, fallback=found.fallback,
                          path=list(found.path), data=user_data(who) or {})]

    @activity.defn(name="create_task")
    async def create_task(self, inp: TaskInput) -> StepOutcome:
        """Create the CRM task (once per key)."""
        async def create(r: Renderer) -> dict[str, Any]:
            due = inp.due or (r.date(inp.due_on) if inp.due_on else "")
            title, notes = r.text(inp.title), r.text(inp.notes)
            who = (await self._resolve(inp.account_id, inp.assignee, r.view, r.today))[0]
            task = await self.crm.create_task(
                NewTask(account_id=inp.account_id, assignee_id=who.id, title=title, notes=notes,
                        due=date.fromisoformat(due) if due else None, priority=inp.priority), inp.key)
            return {"task_id": task.id, "assignee": who.email, "fallback": who.fallback, "resolved": who.path,
                    "title": title, "due": due}
        return await self._effect(inp.key, inp.account_id, inp.scope, create)

    @activity.defn(name="get_task")
    async def get_task(self, task_id: str) -> str:
        """A task's status: open, completed, or missing."""
        task = await _call(lambda: self.crm.get_task(task_id))
        return task.status if task else "missing"

    @activity.defn(name="change_task")
    async def change_task(self, inp: TaskChangeInput) -> dict[str, Any]:
        """Reassign, reprioritise, complete or cancel a task (once per key).

        Completing or cancelling a task that is no longer open changes nothing: a task someone
        completed in the CRM stays completed (done work is never marked cancelled).
        """
        async def change() -> dict[str, Any]:
            if inp.status in ("completed", "cancelled"):
                now = await _call(lambda: self.crm.get_task(inp.task_id))
                if now is not None and now.status != "open":
                    return {"task_id": now.id, "status": now.status, "assignee_id": now.assignee_id}
            assignee = (await self._resolve(inp.account_id, inp.assignee))[0].id if inp.assignee else None
            task = await self.crm.update_task(inp.task_id, status=inp.status or None, assignee_id=assignee,
                                              priority=inp.priority or None, reason=inp.reason)
            return {"task_id": task.id, "status": task.status, "assignee_id": task.assignee_id}
        result: dict[str, Any] = await self._once(inp.key, change)
        return result

    @activity.defn(name="send_alert")
    async def send_alert(self, inp: AlertInput) -> StepOutcome:
        """One Slack message per recipient (DM or channel), each once.

        What to send (the rendered text, who it resolved to) is recorded first under ``KEY/plan``,
        so a retry after some messages went out sends the rest of the same plan.
        """
        async def plan(r: Renderer) -> dict[str, Any]:
            text, blocks = r.text(inp.text), r.json(inp.blocks)
            to = [{"key": f"{inp.key}/{i}.{j}", "channel": who.channel, "user_email": "" if who.channel else who.email,
                   "fallback": who.fallback}
                  for i, party in enumerate(inp.to)
                  for j, who in enumerate(await self._resolve(inp.account_id, party, r.view, r.today))]
            return {"text": text, "blocks": blocks, "to": to}
        out = await self._effect(f"{inp.key}/plan", inp.account_id, inp.scope, plan)
        if out.status != "done":
            return out
        p = out.result
        sent = [await self._post(ChatMessage(channel=m["channel"], user_email=m["user_email"], text=p["text"],
                                             blocks=tuple(p["blocks"])), m["key"]) for m in p["to"]]
        return StepOutcome(status="done", result=sent)

    async def _post(self, message: ChatMessage, key: str) -> str:
        result: str = await self._once(key, lambda: self.chat.post(message, key))
        return result

    @activity.defn(name="send_email")
    async def send_email(self, inp: EmailInput) -> StepOutcome:
        """One email per recipient, each rendered with its own ``contact`` and sent once; the plan
        is recorded first under ``KEY/plan``, as for alerts."""
        async def plan(r: Renderer) -> dict[str, Any]:
            sender = (await self._resolve(inp.account_id, inp.sender, r.view, r.today))[0]
            mails = [{"key": f"{inp.key}/{who.id or who.email}", "to": who.email,
                      "subject": r.text(inp.subject, contact=who.data), "body": r.text(inp.body, contact=who.data)}
                     for who in await self._resolve(inp.account_id, inp.to, r.view, r.today)]
            return {"sender": sender.email, "sender_name": sender.name, "mails": mails}
        out = await self._effect(f"{inp.key}/plan", inp.account_id, inp.scope, plan)
        if out.status != "done":
            return out
        p = out.result
        sent = []
        for m in p["mails"]:
            message = OutgoingEmail(to=(m["to"],), sender=p["sender"], sender_name=p["sender_name"],
                                    subject=m["subject"], body=m["body"], category=inp.category)
            sent.append(await self._once(m["key"], functools.partial(self.mailer.send, message, m["key"])))
        return StepOutcome(status="done", result=sent)

    @activity.defn(name="email_window")
    async def email_window(self, inp: WindowInput) -> dict[str, str]:
        """Before an email with a send window: the recipient's zone, whether the send is refused anyway
        (suppressed, capped: it need not wait) and else until when it waits (engine/runtime/windowcheck.py)."""
        from engine.runtime.windowcheck import hold

        view = await self._view(inp.account_id)
        scope = inp.scope
        if scope is not None:  # skipped or exiting anyway: the send step says so at once, no wait
            stop = _expr(lambda: guard(scope, scoped_context(view_data(view), scope)))
            if stop is not None:
                return {"zone": "", "blocked": stop.status, "until": ""}
        recipients = await self._resolve(inp.account_id, inp.to, view)
        return await hold(inp, recipients, view, self.mailer)

    @activity.defn(name="update_account")
    async def update_account(self, inp: UpdateInput) -> StepOutcome:
        """Write account fields (once per key)."""
        async def update(r: Renderer) -> dict[str, Any]:
            changes = {k: r.text(v) if isinstance(v, str) else v for k, v in inp.changes.items()}
            await self.crm.update_account(inp.account_id, changes)
            return changes
        return await self._effect(inp.key, inp.account_id, inp.scope, update)

    @activity.defn(name="add_note")
    async def add_note(self, inp: NoteInput) -> StepOutcome:
        """Log a note on the account's timeline (once per key)."""
        async def note(r: Renderer) -> str:
            return await self.crm.add_note(inp.account_id, r.text(inp.text), inp.key)
        return await self._effect(inp.key, inp.account_id, inp.scope, note)

    @activity.defn(name="http_call")
    async def http_call(self, inp: HttpInput) -> StepOutcome:
        """Call a webhook (once per key)."""
        http = self.http
        if http is None:
            raise ApplicationError("no http connector is configured", type="PermanentError", non_retryable=True)

        async def call(r: Renderer) -> dict[str, Any]:
            headers = {k: r.text(v) for k, v in inp.headers.items()}
            res = await http.request(inp.method, r.text(inp.url), headers=headers, json=r.json(inp.json),
                                     idempotency_key=inp.key)
            return {"status": res.status, "body": res.body}
        return await self._effect(inp.key, inp.account_id, inp.scope, call)

    @activity.defn(name="start_playbook")
    async def start_playbook(self, inp: StartInput) -> StepOutcome:
        """Enrol the account in another playbook: "started" or "already running"."""
        starter = self.starter
        if starter is None:
            raise ApplicationError("starting playbooks is not configured", type="PermanentError", non_retryable=True)

        async def start(r: Renderer) -> str:
            return await starter(inp)
        return await self._effect(inp.key, inp.account_id, inp.scope, start)
