"""Activities: every piece of I/O a playbook run does, with connectors injected by the worker.

Each side effect carries the idempotency key ``workflow-id/step-path`` (no attempt number) and
goes through the ledger: a repeated call with a done key returns the recorded result without
calling out again. Connectors dedupe on the key too where they can, which covers a crash between
the call and the ledger write. Connector errors become retryable or non-retryable failures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any, Protocol, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from connectors.base import (
    CRM,
    Account,
    Chat,
    ChatMessage,
    ConnectorError,
    Contact,
    Http,
    Mailer,
    NewTask,
    OutgoingEmail,
    PermanentError,
    RetryableError,
    User,
)
from engine.parties import parse_party
from engine.runtypes import (
    AlertInput,
    ContextInput,
    EmailInput,
    HttpInput,
    NoteInput,
    Recipient,
    ResolveInput,
    StartInput,
    TaskChangeInput,
    TaskInput,
    UpdateInput,
)

T = TypeVar("T")
Starter = Callable[[StartInput], Awaitable[str]]


class LedgerLike(Protocol):
    """What activities need of connectors.ledger.Ledger."""

    async def get(self, key: str) -> Any: ...
    async def record(self, key: str, result: Any) -> Any: ...


def _user_data(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    first, _, last = user.name.partition(" ")
    return {"id": user.id, "name": user.name, "email": user.email, "first_name": first, "last_name": last,
            "title": user.title, "timezone": user.timezone, "manager": None}


def contact_data(c: Contact) -> dict[str, Any]:
    """A contact as templates see it (``contact``, ``contacts[i]``)."""
    return {"id": c.id, "email": c.email, "first_name": c.first_name, "last_name": c.last_name,
            "name": f"{c.first_name} {c.last_name}".strip(), "title": c.title, "role": c.role, "phone": c.phone,
            "primary": c.primary}


def account_data(a: Account, owner: dict[str, Any] | None) -> dict[str, Any]:
    """An account as expressions see it (JSON-safe: dates as ISO text)."""
    def iso(d: date | None) -> str | None:
        return d.isoformat() if d else None

    return {"id": a.id, "name": a.name, "segment": a.segment, "lifecycle_stage": a.lifecycle_stage, "owner": owner,
            "arr": a.arr, "renewal_date": iso(a.renewal_date), "contract_start": iso(a.contract_start),
            "renewal_status": a.renewal_status,
            "health": {"score": a.health_score, "band": a.health_band, "previous_score": a.previous_health_score},
            "usage": dict(a.usage), "fields": dict(a.fields)}


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a connector call, turning its errors into the failures Temporal retries or not."""
    try:
        return await fn()
    except RetryableError as exc:
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        raise ApplicationError(str(exc), exc.detail, type="RetryableError", next_retry_delay=delay) from exc
    except PermanentError as exc:
        raise ApplicationError(str(exc), exc.detail, type="PermanentError", non_retryable=True) from exc
    except ConnectorError as exc:
        raise ApplicationError(str(exc), exc.detail, type="ConnectorError") from exc


class PlaybookActivities:
    """The activities of PlaybookRun; ``worker.py`` constructs it with real connectors."""

    def __init__(self, *, crm: CRM, mailer: Mailer, chat: Chat, ledger: LedgerLike, http: Http | None = None,
                 starter: Starter | None = None, fallback_owner: str = "") -> None:
        self.crm, self.mailer, self.chat, self.ledger, self.http = crm, mailer, chat, ledger, http
        self.starter = starter
        self.fallback_owner = fallback_owner

    def all(self) -> list[Callable[..., Any]]:
        """Every activity method, for Worker(activities=...)."""
        return [self.load_context, self.resolve_party, self.create_task, self.get_task, self.change_task,
                self.send_alert, self.send_email, self.update_account, self.add_note, self.http_call,
                self.start_playbook]

    async def _once(self, key: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        done = await self.ledger.get(key)
        if done is not None:
            return done
        return await self.ledger.record(key, await _call(fn))

    async def _account(self, account_id: str) -> Account:
        account = await _call(lambda: self.crm.get_account(account_id))
        if account is None:
            raise ApplicationError(f"account {account_id} does not exist in the CRM", type="PermanentError",
                                   non_retryable=True)
        return account

    @activity.defn(name="load_context")
    async def load_context(self, inp: ContextInput) -> dict[str, Any]:
        """Re-read the account (with owner and manager) and its contacts: run before every step."""
        account = await self._account(inp.account_id)
        owner_id = account.owner_id
        owner_user = await _call(lambda: self.crm.get_user(owner_id)) if owner_id else None
        owner = _user_data(owner_user)
        if owner is not None and owner_user is not None and owner_user.manager_id:
            manager_id = owner_user.manager_id
            owner["manager"] = _user_data(await _call(lambda: self.crm.get_user(manager_id)))
        contacts = await _call(lambda: self.crm.list_contacts(inp.account_id))
        return {"account": account_data(account, owner), "contacts": [contact_data(c) for c in contacts]}

    @activity.defn(name="resolve_party")
    async def resolve_party(self, inp: ResolveInput) -> list[dict[str, Any]]:
        """Who a party is for this account now; a party that resolves to nobody falls back, recorded."""
        return [dataclasses.asdict(r) for r in await self._resolve(inp.account_id, inp.party)]

    async def _resolve(self, account_id: str, text: str) -> list[Recipient]:
        party = parse_party(text)
        if party is None:
            raise ApplicationError(f"{text!r} is not a party", type="PermanentError", non_retryable=True)
        if party.kind == "channel":
            return [Recipient(kind="channel", channel=party.value)]
        account = await self._account(account_id)
        if party.kind in ("primary_contact", "contacts"):
            contacts = await _call(lambda: self.crm.list_contacts(account_id))
            chosen = ([c for c in contacts if c.primary] or contacts[:1] if party.kind == "primary_contact"
                      else [c for c in contacts if c.role == party.value])
            if not chosen:
                what = ("no primary contact" if party.kind == "primary_contact"
                        else f"no contact with role {party.value}")
                raise ApplicationError(f"account {account.name} has {what}", type="PermanentError",
                                       non_retryable=True)
            return [Recipient(kind="contact", id=c.id, email=c.email, name=contact_data(c)["name"],
                              data=contact_data(c)) for c in chosen]
        user, why = await self._person(account, party.kind, party.value)
        if user is None:
            user, why = await self._fallback(why)
        return [Recipient(kind="user", id=user.id, email=user.email, name=user.name, fallback=why,
                          data=_user_data(user) or {})]

    async def _person(self, account: Account, kind: str, value: str) -> tuple[User | None, str]:
        get = self.crm.get_user
        if kind == "user":
            return await _call(lambda: get(value)), f"user {value} is not in the directory"
        if kind == "role":
            ref = account.fields.get(f"{value}_id") or (account.fields.get("roles") or {}).get(value)
            user = await _call(lambda: get(str(ref))) if ref else None
            return await self._cover(user), f"account has no {value}"
        if kind == "team":
            return None, f"team {value}: team pools come with the coverage model"
        owner_id = account.owner_id
        owner = await _call(lambda: get(owner_id)) if owner_id else None
        if kind == "owner":
            return await self._cover(owner), "account has no owner"
        manager_id = owner.manager_id if owner else None
        manager = await _call(lambda: get(manager_id)) if manager_id else None
        return await self._cover(manager), "the owner has no manager"

    async def _cover(self, user: User | None) -> User | None:
        """Out of office with a backup: the backup; out of office with none: nobody."""
        if user is None or not user.out_of_office:
            return user
        backup_id = user.backup_id
        return await _call(lambda: self.crm.get_user(backup_id)) if backup_id else None

    async def _fallback(self, why: str) -> tuple[User, str]:
        fallback = await _call(lambda: self.crm.get_user(self.fallback_owner)) if self.fallback_owner else None
        if fallback is None:
            raise ApplicationError(f"nobody to address: {why}, and no fallback owner is configured",
                                   type="PermanentError", non_retryable=True)
        return fallback, f"{why}; fell back to {fallback.email}"

    @activity.defn(name="create_task")
    async def create_task(self, inp: TaskInput) -> dict[str, Any]:
        """Create the CRM task (once per key)."""
        async def create() -> dict[str, Any]:
            who = (await self._resolve(inp.account_id, inp.assignee))[0]
            task = await self.crm.create_task(
                NewTask(account_id=inp.account_id, assignee_id=who.id, title=inp.title, notes=inp.notes,
                        due=date.fromisoformat(inp.due) if inp.due else None, priority=inp.priority), inp.key)
            return {"task_id": task.id, "assignee": who.email, "fallback": who.fallback}
        result: dict[str, Any] = await self._once(inp.key, create)
        return result

    @activity.defn(name="get_task")
    async def get_task(self, task_id: str) -> str:
        """A task's status: open, completed, or missing."""
        task = await _call(lambda: self.crm.get_task(task_id))
        return task.status if task else "missing"

    @activity.defn(name="change_task")
    async def change_task(self, inp: TaskChangeInput) -> dict[str, Any]:
        """Reassign, reprioritise or close a task (once per key)."""
        async def change() -> dict[str, Any]:
            assignee = (await self._resolve(inp.account_id, inp.assignee))[0].id if inp.assignee else None
            task = await self.crm.update_task(inp.task_id, status=inp.status or None, assignee_id=assignee,
                                              priority=inp.priority or None)
            return {"task_id": task.id, "status": task.status, "assignee_id": task.assignee_id}
        result: dict[str, Any] = await self._once(inp.key, change)
        return result

    @activity.defn(name="send_alert")
    async def send_alert(self, inp: AlertInput) -> list[str]:
        """One Slack message per recipient (DM or channel), each once."""
        sent: list[str] = []
        for i, party in enumerate(inp.to):
            for j, who in enumerate(await self._resolve(inp.account_id, party)):
                message = ChatMessage(channel=who.channel, user_email="" if who.channel else who.email,
                                      text=inp.text, blocks=tuple(inp.blocks))
                key = f"{inp.key}/{i}.{j}"
                sent.append(await self._post(message, key))
        return sent

    async def _post(self, message: ChatMessage, key: str) -> str:
        result: str = await self._once(key, lambda: self.chat.post(message, key))
        return result

    @activity.defn(name="send_email")
    async def send_email(self, inp: EmailInput) -> str:
        """Send one rendered email (once per key)."""
        message = OutgoingEmail(to=(inp.to,), sender=inp.sender, sender_name=inp.sender_name, subject=inp.subject,
                                body=inp.body, category=inp.category)
        result: str = await self._once(inp.key, lambda: self.mailer.send(message, inp.key))
        return result

    @activity.defn(name="update_account")
    async def update_account(self, inp: UpdateInput) -> bool:
        """Write account fields (once per key)."""
        async def update() -> bool:
            await self.crm.update_account(inp.account_id, inp.changes)
            return True
        result: bool = await self._once(inp.key, update)
        return result

    @activity.defn(name="add_note")
    async def add_note(self, inp: NoteInput) -> str:
        """Log a note on the account's timeline (once per key)."""
        result: str = await self._once(inp.key, lambda: self.crm.add_note(inp.account_id, inp.text, inp.key))
        return result

    @activity.defn(name="http_call")
    async def http_call(self, inp: HttpInput) -> dict[str, Any]:
        """Call a webhook (once per key)."""
        http = self.http
        if http is None:
            raise ApplicationError("no http connector is configured", type="PermanentError", non_retryable=True)

        async def call() -> dict[str, Any]:
            res = await http.request(inp.method, inp.url, headers=inp.headers, json=inp.json, idempotency_key=inp.key)
            return {"status": res.status, "body": res.body}
        result: dict[str, Any] = await self._once(inp.key, call)
        return result

    @activity.defn(name="start_playbook")
    async def start_playbook(self, inp: StartInput) -> str:
        """Enrol the account in another playbook: "started" or "already running"."""
        starter = self.starter
        if starter is None:
            raise ApplicationError("starting playbooks is not configured", type="PermanentError", non_retryable=True)
        result: str = await self._once(inp.key, lambda: starter(inp))
        return result
