"""Pipedrive as the CRM: organizations are accounts, persons contacts, users users; tasks are
activities of type ``task`` on the organization, and notes are notes on it (API v1,
https://developers.pipedrive.com/docs/api/v1, ``api_token`` auth).

Account fields other than ``name`` and ``owner`` live in organization custom fields, whose keys are
40-character hashes: ``field_map`` says which (``arr: 5c5a...``, ``fields.tier: 9d1e...``;
``contact.role``, ``contact.timezone`` for person fields). A field without a key is not read, and
writing one is refused with what to configure.

Exactly once: Pipedrive has no idempotency key, so every activity and note carries its key in its
text (a last line ``csops key: KEY``), and each create first lists the organization's activities
(or notes) for that key and returns the one it finds. Pipedrive's lists are read from the database
(no search index lag), so a create whose answer was lost (a cut connection, a timeout, a 5xx) is
looked for again at once and made only if it is not there.

Failures: 429 waits for ``Retry-After`` (else ``x-ratelimit-reset``) and tries again; 5xx and
dropped connections are retried with backoff, then raise RetryableError; 401 and other 4xx raise
PermanentError with Pipedrive's ``error`` in plain words.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

import httpx

from connectors.base import Account, Contact, NewTask, PermanentError, RetryableError, TaskRecord, User

__all__ = ["PipedriveCRM"]

log = logging.getLogger(__name__)
KEY_LINE = "csops key: "
CANCELLED = "Cancelled by csops, not done: "
PRIORITY = re.compile(r"^csops priority: (low|normal|high)$", re.M)
NUMBERS = ("arr", "health_score", "previous_health_score")
DATES = ("renewal_date", "contract_start")
TEXTS = ("segment", "lifecycle_stage", "renewal_status", "health_band")
MAX_INLINE_WAIT = 15.0


class PipedriveCRM:
    """Implements connectors.base.CRM on Pipedrive.

    Args:
        api_token: A user's API token (Settings > Personal preferences > API; never logged).
        base_url: ``https://COMPANY.pipedrive.com/api`` (or ``https://api.pipedrive.com``).
        field_map: csops field → Pipedrive custom field key (see the module docstring).
        timeout: Seconds per request.
        max_retries: Retries inside one call for 429, 5xx and lost connections.
        transport: An httpx transport to send through (tests: ``httpx.MockTransport``); default: the network.
    """

    def __init__(self, api_token: str, *, base_url: str = "https://api.pipedrive.com",
                 field_map: dict[str, str] | None = None, timeout: float = 10.0, max_retries: int = 5,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not api_token.strip():
            raise ValueError("the Pipedrive API token is empty: set PIPEDRIVE_API_TOKEN")
        self.base_url = base_url.rstrip("/")
        self.fields = {k: v for k, v in (field_map or {}).items() if v}
        self.max_retries = max_retries
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, params={"api_token": api_token},
                                         headers={"Accept": "application/json"}, transport=transport)

    def __repr__(self) -> str:
        return f"PipedriveCRM(base_url={self.base_url!r}, api_token=<hidden>)"

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    # --- reads --------------------------------------------------------------------------------------

    async def get_account(self, account_id: str) -> Account | None:
        """The organization as an Account, or None."""
        if not account_id.isdigit():
            return None
        org = await self._get(f"/v1/organizations/{account_id}", f"read account {account_id}")
        return None if org is None else self._account(org)

    def _account(self, org: dict[str, Any]) -> Account:
        owner = org.get("owner_id")
        owner_id = owner.get("id") if isinstance(owner, dict) else owner
        values: dict[str, Any] = {}
        for name in (*NUMBERS, *DATES, *TEXTS):
            raw = org.get(self.fields.get(name, "")) if name in self.fields else None
            if raw in (None, ""):
                continue
            if name in DATES:
                values[name] = date.fromisoformat(str(raw)[:10])
            elif name in NUMBERS:
                values[name] = float(raw) if name == "arr" else int(float(raw))
            else:
                values[name] = str(raw)
        custom = {k[7:]: org.get(v) for k, v in self.fields.items() if k.startswith("fields.")}
        return Account(id=str(org["id"]), name=str(org.get("name") or ""),
                       owner_id=str(owner_id) if owner_id else None, fields=custom, **values)

    async def list_contacts(self, account_id: str) -> list[Contact]:
        """The organization's persons, the first (lowest id) as primary."""
        if not account_id.isdigit():
            return []
        persons = await self._all(f"/v1/organizations/{account_id}/persons", f"list the contacts of {account_id}")
        persons.sort(key=lambda p: int(p["id"]))
        out = []
        for i, p in enumerate(persons):
            emails = p.get("email") or []
            email = next((e.get("value") for e in emails if e.get("primary")), emails[0].get("value") if emails else "")
            phones = p.get("phone") or []
            out.append(Contact(id=str(p["id"]), account_id=account_id, email=str(email or ""),
                               first_name=str(p.get("first_name") or ""), last_name=str(p.get("last_name") or ""),
                               phone=str(phones[0].get("value") or "") if phones else "",
                               role=str(p.get(self.fields.get("contact.role", ""), "") or ""),
                               timezone=str(p.get(self.fields.get("contact.timezone", ""), "") or ""),
                               primary=i == 0))
        return out

    async def get_user(self, user_id_or_email: str) -> User | None:
        """A Pipedrive user by id or email, or None."""
        ref = user_id_or_email.strip()
        if ref.isdigit():
            found = await self._get(f"/v1/users/{ref}", f"look up user {ref}")
        elif "@" in ref:
            res = await self._call("GET", "/v1/users/find", f"look up user {ref}",
                                   params={"term": ref, "search_by_email": "1"})
            found = next(iter(res.json().get("data") or []), None)
        else:
            return None
        if not found:
            return None
        return User(id=str(found["id"]), email=str(found.get("email") or ""), name=str(found.get("name") or ""))

    # --- tasks (activities) -------------------------------------------------------------------------

    async def create_task(self, task: NewTask, idempotency_key: str) -> TaskRecord:
        """A task activity on the organization, once per key."""
        if not task.account_id.isdigit() or not task.assignee_id.isdigit():
            raise PermanentError(f"account {task.account_id} or user {task.assignee_id} is not a Pipedrive id")
        note = "\n".join(x for x in (task.notes, f"csops priority: {task.priority}", KEY_LINE + idempotency_key) if x)
        body: dict[str, Any] = {"subject": task.title, "type": "task", "user_id": int(task.assignee_id),
                                "org_id": int(task.account_id), "note": note, "done": 0}
        if task.due:
            body["due_date"] = task.due.isoformat()
        found = await self._create("/v1/activities", f"/v1/organizations/{task.account_id}/activities", "note",
                                   body, idempotency_key, f"create a task on account {task.account_id}")
        return _task(found)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        """The activity as a TaskRecord, or None."""
        if not task_id.isdigit():
            return None
        found = await self._get(f"/v1/activities/{task_id}", f"read task {task_id}")
        return None if found is None else _task(found)

    async def update_task(self, task_id: str, *, status: str | None = None, assignee_id: str | None = None,
                          priority: str | None = None, reason: str = "") -> TaskRecord:
        """Mark done (completed, closed, cancelled: with a line saying why), reassign or reprioritise."""
        current = await self.get_task(task_id)
        raw = await self._get(f"/v1/activities/{task_id}", f"read task {task_id}") if current else None
        if current is None or raw is None:
            raise PermanentError(f"task {task_id} does not exist in Pipedrive")
        body: dict[str, Any] = {}
        note = str(raw.get("note") or "")
        if status in ("completed", "closed", "cancelled"):
            body["done"] = 1
        elif status not in (None, "open"):
            raise PermanentError(f"task status {status!r} is not one csops knows (open, completed, cancelled)")
        if status == "cancelled" and CANCELLED not in note:
            note = f"{note}\n{CANCELLED}{reason or 'its run ended'}"
        if priority is not None:
            if priority not in ("low", "normal", "high"):
                raise PermanentError(f"priority {priority!r} is not low, normal or high")
            note = PRIORITY.sub(f"csops priority: {priority}", note) if PRIORITY.search(note) else \
                f"{note}\ncsops priority: {priority}"
        if note != str(raw.get("note") or ""):
            body["note"] = note
        if assignee_id is not None:
            if not assignee_id.isdigit():
                raise PermanentError(f"user {assignee_id} is not a Pipedrive user id")
            body["user_id"] = int(assignee_id)
        if body:
            await self._call("PUT", f"/v1/activities/{task_id}", f"update task {task_id}", json=body)
        updated = await self.get_task(task_id)
        assert updated is not None
        return updated

    # --- account writes and notes -------------------------------------------------------------------

    async def update_account(self, account_id: str, changes: dict[str, Any]) -> Account:
        """Write fields: name and owner directly, the rest through ``field_map``'s custom field keys."""
        body: dict[str, Any] = {}
        for name, value in changes.items():
            if name in ("owner", "owner_id"):
                user = await self.get_user(str(value))
                if user is None:
                    raise PermanentError(f"owner {value!r} is not a Pipedrive user")
                body["owner_id"] = int(user.id)
            elif name == "name":
                body["name"] = str(value)
            elif name in self.fields:
                body[self.fields[name]] = _value(name, value)
            else:
                raise PermanentError(f"account field {name} has no Pipedrive field: add {name}: <field key> to "
                                     "crm.field_map (Settings > Data fields > Organization, the field's API key)")
        if not account_id.isdigit():
            raise PermanentError(f"account {account_id} does not exist in Pipedrive")
        res = await self._call("PUT", f"/v1/organizations/{account_id}", f"update account {account_id}", json=body,
                               missing_ok=True)
        if res.status_code == 404:
            raise PermanentError(f"account {account_id} does not exist in Pipedrive")
        return self._account(res.json()["data"])

    async def add_note(self, account_id: str, text: str, idempotency_key: str) -> str:
        """A note on the organization, once per key; its id."""
        if not account_id.isdigit():
            raise PermanentError(f"account {account_id} does not exist in Pipedrive")
        body = {"content": f"{text}\n{KEY_LINE}{idempotency_key}", "org_id": int(account_id)}
        found = await self._create("/v1/notes", "/v1/notes", "content", body, idempotency_key,
                                   f"add a note to account {account_id}", params={"org_id": account_id})
        return str(found["id"])

    async def list_accounts(self, after: str | None = None, limit: int = 1000, *,
                            dates: Sequence[tuple[str, date, date]] = (), segments: Sequence[str] = (),
                            lifecycle_stages: Sequence[str] = (), skip: Collection[str] = (),
                            numbers: Sequence[tuple[str, str, float]] = ()) -> list[Account]:
        """A page of organizations in ascending (numeric) id order after ``after``, filtered here
        (connectors.base.AccountLister): Pipedrive's list takes no filter on custom fields.

        Raises:
            ValueError: a date field without a Pipedrive field in ``field_map``.
        """
        for name, _, _ in dates:
            if name not in self.fields:
                raise ValueError(f"{name} has no Pipedrive field: add {name}: <field key> to crm.field_map")
        floor = int(after) if after and after.isdigit() else -1
        out: list[Account] = []
        start: int | None = 0
        while start is not None and len(out) < limit:
            res = await self._call("GET", "/v1/organizations", "list accounts",
                                   params={"start": str(start), "limit": "500", "sort": "id ASC"})
            page = res.json()
            for org in page.get("data") or []:
                account = self._account(org)
                if int(org["id"]) > floor and _kept(account, dates, segments, lifecycle_stages):
                    out.append(account)
            more = (page.get("additional_data") or {}).get("pagination") or {}
            start = int(more["next_start"]) if more.get("more_items_in_collection") else None
        return sorted(out, key=lambda a: int(a.id))[:limit]

    async def check(self) -> list[str]:
        """Problems with the connection; [] when the token works."""
        try:
            await self._call("GET", "/v1/users/me", "check the API token")
        except (PermanentError, RetryableError) as exc:
            return [str(exc)]
        return []

    # --- plumbing -----------------------------------------------------------------------------------

    async def _create(self, path: str, listing: str, text_field: str, body: dict[str, Any], key: str, what: str,
                      params: dict[str, str] | None = None) -> dict[str, Any]:
        """List by key, else create; after a lost answer, list again before creating again."""
        for _ in range(self.max_retries + 1):
            for record in await self._all(listing, f"{what} (looking for it by its key)", params):
                if str(record.get(text_field) or "").rstrip().endswith(KEY_LINE + key):
                    return record
            try:
                res = await self._call("POST", path, what, json=body, safe=False)
            except _Lost as exc:
                log.info("Pipedrive: %s: answer lost (%s); looking for it before trying again", what, exc)
                continue
            created: dict[str, Any] = res.json()["data"]
            return created
        raise RetryableError(f"Pipedrive did not answer: could not {what}")

    async def _get(self, path: str, what: str) -> dict[str, Any] | None:
        res = await self._call("GET", path, what, missing_ok=True)
        if res.status_code == 404:
            return None
        data: dict[str, Any] | None = res.json().get("data")
        return data

    async def _all(self, path: str, what: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        start = 0
        while True:
            res = await self._call("GET", path, what, params={**(params or {}), "start": str(start), "limit": "500"},
                                   missing_ok=True)
            if res.status_code == 404:
                return out
            page = res.json()
            out += page.get("data") or []
            more = ((page.get("additional_data") or {}).get("pagination") or {})
            if not more.get("more_items_in_collection"):
                return out
            start = int(more.get("next_start") or start + len(page.get("data") or []))

    async def _call(self, method: str, path: str, what: str, *, params: dict[str, str] | None = None,
                    json: Any = None, missing_ok: bool = False, safe: bool = True) -> httpx.Response:
        problem = RetryableError(f"Pipedrive did not answer: could not {what}")
        for attempt in range(self.max_retries + 1):
            wait = min(0.25 * 2 ** attempt, 4.0) * random.uniform(1.0, 1.5)
            try:
                res = await self._client.request(method, path, params=params, json=json)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                problem = RetryableError(f"cannot reach Pipedrive at {self.base_url} to {what} ({type(exc).__name__})")
            except httpx.TransportError as exc:
                if not safe:
                    raise _Lost(type(exc).__name__) from exc
                problem = RetryableError(f"Pipedrive did not answer: could not {what} ({type(exc).__name__})")
            else:
                if res.status_code < 400 or (res.status_code == 404 and missing_ok):
                    return res
                if res.status_code == 429:
                    wait = float(res.headers.get("Retry-After") or res.headers.get("x-ratelimit-reset") or wait)
                    problem = RetryableError(f"Pipedrive's rate limit is reached; could not {what}", retry_after=wait)
                    if wait > MAX_INLINE_WAIT:
                        raise problem
                elif res.status_code >= 500:
                    if not safe:
                        raise _Lost(f"HTTP {res.status_code}")
                    problem = RetryableError(f"Pipedrive failed with HTTP {res.status_code}: could not {what}")
                else:
                    raise _permanent(res, what)
            if attempt < self.max_retries:
                await asyncio.sleep(wait)
        raise problem


class _Lost(Exception):
    """A create's answer was lost: it may have been made."""


def _kept(account: Account, dates: Sequence[tuple[str, date, date]], segments: Sequence[str],
          stages: Sequence[str]) -> bool:
    if segments and account.segment not in segments:
        return False
    if stages and account.lifecycle_stage not in stages:
        return False
    if not dates:
        return True
    for name, first, last in dates:
        raw = account.fields.get(name[7:]) if name.startswith("fields.") else getattr(account, name, None)
        try:
            day = raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10]) if raw else None
        except ValueError:
            day = None
        if day is not None and first <= day <= last:
            return True
    return False


def _value(name: str, value: Any) -> Any:
    if name in NUMBERS:
        try:
            return float(str(value).replace(",", ""))
        except ValueError:
            raise PermanentError(f"{name} must be a number, not {value!r}") from None
    if name in DATES:
        try:
            return date.fromisoformat(str(value)[:10]).isoformat() if value not in (None, "") else None
        except ValueError:
            raise PermanentError(f"{name} must be a date YYYY-MM-DD, not {value!r}") from None
    return None if value is None else str(value)


def _task(a: dict[str, Any]) -> TaskRecord:
    note = str(a.get("note") or "")
    cancelled = CANCELLED in note
    prio = PRIORITY.search(note)
    due = a.get("due_date")
    return TaskRecord(id=str(a["id"]), account_id=str(a.get("org_id") or ""), assignee_id=str(a.get("user_id") or ""),
                      title=str(a.get("subject") or ""),
                      status="cancelled" if cancelled else "completed" if a.get("done") else "open",
                      priority=prio.group(1) if prio else "normal", due=date.fromisoformat(due) if due else None,
                      reason=note.split(CANCELLED, 1)[1].splitlines()[0] if cancelled else "")


def _permanent(res: httpx.Response, what: str) -> PermanentError:
    try:
        error = str(res.json().get("error") or res.reason_phrase)
    except ValueError:
        error = res.reason_phrase
    if res.status_code == 401:
        return PermanentError("Pipedrive refused the API token (401): copy the current one from Settings > Personal "
                              "preferences > API into PIPEDRIVE_API_TOKEN")
    return PermanentError(f"Pipedrive refused to {what}: {error} (HTTP {res.status_code})")
