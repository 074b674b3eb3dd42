"""HubSpot as the CRM: companies are accounts, owners are users, tasks and notes go on the company.

It speaks HubSpot's CRM v3 REST API (v4 for the company → contacts associations) over httpx with a
private-app token. The property mapping is in :mod:`connectors.hubspot_map`; the company search
behind ``list_accounts`` (date scans, schedule ticks) in :mod:`connectors.hubspot_search`.

Failures: 429 waits for ``Retry-After`` (or the rate-limit window) and tries again, and when a
response says ``X-HubSpot-RateLimit-Remaining: 0`` the next request waits out
``X-HubSpot-RateLimit-Interval-Milliseconds`` first. 5xx, timeouts and dropped connections are
retried a few times with backoff, then raise RetryableError. Other 4xx raise PermanentError with
HubSpot's ``message`` and ``category`` in plain words.

Exactly once: HubSpot has no idempotency key for creates, so every task and note carries its key in
a custom property (``csops_idempotency_key``), and each create first searches for that key and
returns the record it finds. A create whose answer was lost (connection cut, timeout, 5xx) is not
retried here: HubSpot's search index lags behind writes by seconds, so a search right away could
miss the task just made. It raises RetryableError with ``retry_after = index_delay`` instead, and
the retried activity searches again once the index has caught up. Within that window (and only
there) a duplicate stays possible; a unique-value key property closes it (409 on a second create,
answered by searching again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime
from typing import Any

import httpx

from connectors.base import (
    Account,
    ConnectorError,
    Contact,
    NewTask,
    PermanentError,
    RetryableError,
    TaskRecord,
    User,
)
from connectors.hubspot_http import (
    SETTINGS_HINT,
    TokenRefused,
    association,
    backoff_seconds,
    detail_of,
    lost,
    now_text,
    number,
    permanent_error,
    rate_limited,
    retry_after_seconds,
    search_body,
)
from connectors.hubspot_map import PropertyMap
from connectors.hubspot_search import list_companies

__all__ = ["REQUIRED_SCOPES", "HubSpotCRM", "TokenRefused"]

log = logging.getLogger(__name__)

REQUIRED_SCOPES = {
    "crm.objects.companies.read": "read accounts and search them for scans",
    "crm.objects.companies.write": "update accounts",
    "crm.objects.contacts.read": "read contacts, tasks and notes",
    "crm.objects.contacts.write": "create and update tasks and notes",
    "crm.objects.owners.read": "read owners (users)",
}
"""The private app's scopes and what each is for (HubSpot files tasks and notes under contacts)."""
TASK_TO_COMPANY = 192
NOTE_TO_COMPANY = 190
MAX_INLINE_WAIT = 15.0
"""Seconds a call may sleep for a 429 before handing the wait to the activity's retry instead."""


class HubSpotCRM:
    """Implements connectors.base.CRM on HubSpot.

    Args:
        token: The private app's access token (from the environment; never logged).
        base_url: The API's address.
        property_map: csops field → HubSpot property overrides (see connectors.hubspot_map).
        timeout: Seconds per HTTP request.
        max_retries: Retries inside one call for 429, 5xx and timeouts before RetryableError.
        transport: An httpx transport to send through (tests: ``httpx.MockTransport``); default: the network.
    """

    def __init__(self, token: str, *, base_url: str = "https://api.hubapi.com",
                 property_map: dict[str, str] | None = None, timeout: float = 10.0, max_retries: int = 5,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not token.strip():
            raise ValueError("the HubSpot token is empty: set HUBSPOT_TOKEN to the private app's access token")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.props = PropertyMap(property_map)
        self.max_retries = max_retries
        self.index_delay = 10.0
        """Seconds HubSpot's search index is given to catch up before a lost create is retried."""
        self._pause_until = 0.0
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport, headers={
            "Authorization": f"Bearer {token}", "Accept": "application/json"})

    def __repr__(self) -> str:
        return f"HubSpotCRM(base_url={self.base_url!r}, token=<hidden>)"

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    # --- the CRM Protocol ---------------------------------------------------------------------

    async def get_account(self, account_id: str, extra: dict[str, str] | None = None) -> Account | None:
        """The company as an Account, or None; ``extra`` reads more custom fields (name → property)."""
        if not account_id.isdigit():
            return None  # HubSpot record ids are numeric: no such company
        res = await self._call("GET", f"/crm/v3/objects/companies/{account_id}", f"read account {account_id}",
                               params={"properties": ",".join(self.props.company_properties(extra))}, missing_ok=True)
        return None if res.status_code == 404 else self.props.account(res.json(), extra)

    async def list_contacts(self, account_id: str) -> list[Contact]:
        """The company's associated contacts, primary first, in HubSpot's association order."""
        if not account_id.isdigit():
            return []
        ids: list[str] = []
        after: str | None = None
        while True:
            params = {"limit": "500", **({"after": after} if after else {})}
            res = await self._call("GET", f"/crm/v4/objects/companies/{account_id}/associations/contacts",
                                   f"list the contacts of account {account_id}", params=params, missing_ok=True)
            if res.status_code == 404:
                return []
            page = res.json()
            ids += [str(r["toObjectId"]) for r in page.get("results", [])]
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        contacts: dict[str, Contact] = {}
        for start in range(0, len(ids), 100):  # batch read takes at most 100 ids
            chunk = [{"id": i} for i in ids[start:start + 100]]
            body = {"properties": self.props.contact_properties(), "inputs": chunk}
            res = await self._call("POST", "/crm/v3/objects/contacts/batch/read",
                                   f"read the contacts of account {account_id}", json=body)
            contacts.update((str(o["id"]), self.props.contact(o, account_id)) for o in res.json().get("results", []))
        ordered = [contacts[i] for i in ids if i in contacts]
        return sorted(ordered, key=lambda c: not c.primary)

    async def get_user(self, user_id_or_email: str) -> User | None:
        """A HubSpot owner by owner id or email, or None; its manager comes from ``manager.*`` in the map."""
        ref = user_id_or_email.strip()
        if ref.isdigit():
            res = await self._call("GET", f"/crm/v3/owners/{ref}", f"look up owner {ref}", missing_ok=True)
            owner = res.json() if res.status_code != 404 else None
        elif "@" in ref:
            res = await self._call("GET", "/crm/v3/owners", f"look up owner {ref}", params={"email": ref, "limit": "1"})
            owner = next(iter(res.json().get("results", [])), None)
        else:
            return None
        if not owner:
            return None
        email = str(owner.get("email") or "")
        name = f"{owner.get('firstName') or ''} {owner.get('lastName') or ''}".strip()
        owner_id = str(owner["id"])
        return User(id=owner_id, email=email, name=name, manager_id=self.props.manager_of(owner_id, email))

    async def create_task(self, task: NewTask, idempotency_key: str) -> TaskRecord:
        """Create the task on the company once per key (see the module docstring)."""
        body = {"properties": self.props.new_task(task, idempotency_key, datetime.now(UTC)),
                "associations": [association(task.account_id, TASK_TO_COMPANY)]}
        found = await self._create("tasks", body, idempotency_key, f"create a task on account {task.account_id}")
        return self.props.task(found, task.account_id)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        """The task with the company it is on, or None."""
        obj = await self._task_object(task_id)
        if obj is None:
            return None
        companies = ((obj.get("associations") or {}).get("companies") or {}).get("results") or [{}]
        return self.props.task(obj, str(companies[0].get("id") or ""))

    async def _task_object(self, task_id: str) -> dict[str, Any] | None:
        if not task_id.isdigit():
            return None
        params = {"properties": ",".join(self.props.task_properties()), "associations": "companies"}
        res = await self._call("GET", f"/crm/v3/objects/tasks/{task_id}", f"read task {task_id}", params=params,
                               missing_ok=True)
        if res.status_code == 404:
            return None
        obj: dict[str, Any] = res.json()
        return obj

    async def update_task(self, task_id: str, *, status: str | None = None, assignee_id: str | None = None,
                          priority: str | None = None, reason: str = "") -> TaskRecord:
        """Change status (``closed`` is written as COMPLETED), owner or priority.

        HubSpot has no cancelled status: ``cancelled`` is written as COMPLETED with a line
        ``Cancelled by csops, not done: REASON`` added to the task's body (read back as cancelled).

        Raises:
            PermanentError: unknown task, or a status/priority csops does not know.
        """
        body = ""
        if status == "cancelled":
            obj = await self._task_object(task_id)
            body = str(((obj or {}).get("properties") or {}).get("hs_task_body") or "")
        props = self.props.task_update(status, assignee_id, priority, reason=reason, body=body)
        if props and task_id.isdigit():
            await self._call("PATCH", f"/crm/v3/objects/tasks/{task_id}", f"update task {task_id}",
                             json={"properties": props}, missing_ok=True)
        task = await self.get_task(task_id)
        if task is None:
            raise PermanentError(f"task {task_id} does not exist in HubSpot")
        return task

    async def update_account(self, account_id: str, changes: dict[str, Any]) -> Account:
        """Write account fields as company properties, converted to HubSpot's formats.

        ``owner`` takes an owner id or email. Returns the company as read back.

        Raises:
            PermanentError: unknown company, field or owner; a value of the wrong type.
        """
        changes = dict(changes)
        for name in ("owner", "owner_id"):
            if changes.get(name) not in (None, ""):
                owner = await self.get_user(str(changes[name]))
                if owner is None:
                    raise PermanentError(f"owner {changes[name]!r} is not a HubSpot owner")
                changes[name] = owner.id
        props, custom = self.props.company_update(changes)
        if not account_id.isdigit():
            raise PermanentError(f"account {account_id} does not exist in HubSpot")
        if props:
            res = await self._call("PATCH", f"/crm/v3/objects/companies/{account_id}", f"update account {account_id}",
                                   json={"properties": props}, missing_ok=True)
            if res.status_code == 404:
                raise PermanentError(f"account {account_id} does not exist in HubSpot")
        account = await self.get_account(account_id, custom)
        if account is None:
            raise PermanentError(f"account {account_id} does not exist in HubSpot")
        return account

    async def add_note(self, account_id: str, text: str, idempotency_key: str) -> str:
        """Log a note on the company's timeline once per key; returns the note id."""
        props = {"hs_note_body": text, "hs_timestamp": now_text()}
        if prop := self.props.key_property("note"):
            props[prop] = idempotency_key
        body = {"properties": props, "associations": [association(account_id, NOTE_TO_COMPANY)]}
        return str((await self._create("notes", body, idempotency_key, f"add a note to account {account_id}"))["id"])

    # --- the AccountLister Protocol ------------------------------------------------------------

    async def list_accounts(self, after: str | None = None, limit: int = 1000, *,
                            dates: Sequence[tuple[str, date, date]] = (), segments: Sequence[str] = (),
                            lifecycle_stages: Sequence[str] = (), skip: Collection[str] = (),
                            numbers: Sequence[tuple[str, str, float]] = ()) -> list[Account]:
        """A page of companies in ascending id order, ids above ``after``, found with HubSpot's
        company search (see connectors.hubspot_search and ``AccountLister``).

        Raises:
            ValueError: a date field with no company property (``fields.NAME`` not in property_map).
            RetryableError: HubSpot is unreachable or rate-limits past the retries.
            PermanentError: HubSpot refused the search (token, scope, a property that does not exist).
        """
        return await list_companies(self._call, self.props, after, limit, dates=dates, segments=segments,
                                    stages=lifecycle_stages)

    # --- checks -------------------------------------------------------------------------------

    async def check(self) -> list[str]:
        """Problems with the connection, in plain words; [] when every needed call works."""
        problems: list[str] = []
        try:
            res = await self._call("POST", "/oauth/v2/private-apps/get/access-token-info",
                                   "check the access token", json={"tokenKey": self._token})
            granted = set(res.json().get("scopes") or ())
            missing = [s for s in REQUIRED_SCOPES if s not in granted]
            if missing:
                problems.append(f"the private app lacks the scope(s) {', '.join(missing)} (needed to "
                                f"{'; '.join(REQUIRED_SCOPES[s] for s in missing)}): add them under {SETTINGS_HINT} "
                                "> your app > Scopes and commit the change")
        except (RetryableError, TokenRefused) as exc:
            return [str(exc)]  # nothing else can work: HubSpot is unreachable, or the token is refused
        except PermanentError:
            pass  # no scope list for this token: the probes below still try each read
        probes: list[tuple[str, str, str, dict[str, Any]]] = [
            ("GET", "/crm/v3/objects/companies", "read companies",
             {"params": {"limit": "1", "properties": ",".join(self.props.company_properties())}}),
            ("GET", "/crm/v3/objects/contacts", "read contacts", {"params": {"limit": "1"}}),
            ("GET", "/crm/v3/owners", "read owners", {"params": {"limit": "1"}}),
        ]
        for kind in ("tasks", "notes"):
            if prop := self.props.key_property(kind[:-1]):
                probes.append(("POST", f"/crm/v3/objects/{kind}/search",
                               f"search {kind} by their {prop} property",
                               {"json": search_body(prop, "csops-check", [])}))
        for method, path, what, kwargs in probes:
            try:
                await self._call(method, path, what, **kwargs)
            except ConnectorError as exc:
                if str(exc) not in problems:
                    problems.append(str(exc))
        return problems

    # --- plumbing -----------------------------------------------------------------------------

    async def _create(self, kind: str, body: dict[str, Any], key: str, what: str) -> dict[str, Any]:
        """Search by key, else create: the record's JSON either way."""
        prop = self.props.key_property(kind[:-1])
        if prop and (found := await self._find(kind, prop, key, what)):
            return found
        res = await self._call("POST", f"/crm/v3/objects/{kind}", what, json=body, safe=False)
        if res.status_code == 409:
            if not prop:
                raise permanent_error(res, what)
            # A unique-value key property refused a second record with this key: find the first.
            if found := await self._find(kind, prop, key, what):
                return found
            raise RetryableError(f"HubSpot says the {kind[:-1]} for {key} exists but cannot find it yet",
                                 retry_after=self.index_delay)
        result: dict[str, Any] = res.json()
        return result

    async def _find(self, kind: str, prop: str, key: str, what: str) -> dict[str, Any] | None:
        props = self.props.task_properties() if kind == "tasks" else ["hs_note_body"]
        res = await self._call("POST", f"/crm/v3/objects/{kind}/search", f"{what} (looking for it by its key)",
                               json=search_body(prop, key, props))
        results = res.json().get("results") or []
        return dict(results[0]) if results else None

    async def _call(self, method: str, path: str, what: str, *, params: dict[str, str] | None = None,
                    json: Any = None, missing_ok: bool = False, safe: bool = True) -> httpx.Response:
        """One API call with the retries; ``safe=False`` marks a create, never re-sent after a lost answer."""
        problem = RetryableError(f"HubSpot did not answer: could not {what}")
        for attempt in range(self.max_retries + 1):
            if (pause := self._pause_until - time.monotonic()) > 0:
                await asyncio.sleep(pause)  # the rate-limit window is used up: wait it out
            wait = backoff_seconds(attempt)
            try:
                res = await self._client.request(method, path, params=params, json=json)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                problem = RetryableError(f"cannot reach HubSpot at {self.base_url} to {what} ({type(exc).__name__})")
            except httpx.TransportError as exc:
                if not safe:
                    raise lost(what, type(exc).__name__, self.index_delay) from exc
                problem = RetryableError(f"HubSpot did not answer: could not {what} ({type(exc).__name__})")
            else:
                self._note_window(res)
                status = res.status_code
                if status < 400 or (status == 404 and missing_ok) or (status == 409 and not safe):
                    return res
                if status == 429:
                    wait, problem = rate_limited(res, what, wait)
                    if wait > MAX_INLINE_WAIT:
                        raise problem
                elif status >= 500 or status in (423, 477):
                    if not safe:
                        raise lost(what, f"HTTP {status}", self.index_delay)
                    wait = retry_after_seconds(res) or wait
                    problem = RetryableError(f"HubSpot failed with HTTP {status}: could not {what}",
                                             retry_after=wait, detail=detail_of(res))
                else:
                    raise permanent_error(res, what)
            if attempt < self.max_retries:
                log.info("HubSpot: %s %s failed (%s); retrying in %.1f s", method, path, problem, wait)
                await asyncio.sleep(wait)
        raise problem

    def _note_window(self, res: httpx.Response) -> None:
        remaining = number(res.headers.get("X-HubSpot-RateLimit-Remaining"))
        interval = number(res.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        if remaining is not None and remaining <= 0 and interval:
            self._pause_until = max(self._pause_until, time.monotonic() + interval / 1000)


