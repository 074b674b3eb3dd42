"""The Salesforce CRM over its REST API (httpx): Account, Contact, User and Task sObjects and SOQL.

Auth is an OAuth bearer token: one given by the caller, or one fetched with the OAuth 2.0 client
credentials flow and fetched again when Salesforce answers ``INVALID_SESSION_ID``.

Exactly once: tasks and notes are upserted by an External ID field on Task (``Csops_Key__c`` by
default) holding a hash of the idempotency key, ``PATCH sobjects/Task/Csops_Key__c/{hash}``. A retry
after a lost answer updates the task the first attempt made (200) instead of making a second (201).
Notes are completed Tasks on the account for the same reason: a ContentNote needs a second call to
link it to the account and has no External ID, so a lost answer could leave a duplicate or orphan.

Scans (``list_accounts``, the AccountLister Protocol) page through Account by SOQL, keyset-paged
by Id: connectors.salesforce_list.

Errors: 429, 5xx, timeouts and dropped connections are retried here ``max_retries`` times, then
raised as RetryableError; 403 ``REQUEST_LIMIT_EXCEEDED`` (the org's API request limit) is a
RetryableError with a long ``retry_after``; other 4xx are PermanentError naming what to fix.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import date
from typing import Any

import httpx

from connectors import redact
from connectors import salesforce_errors as errors
from connectors.base import Account, Contact, NewTask, PermanentError, RetryableError, TaskRecord, User
from connectors.salesforce_list import list_page
from connectors.salesforce_map import (
    CANCELLED_STATUS,
    PRIORITIES,
    STATUSES,
    SUBJECT_MAX,
    TASK_FIELDS,
    FieldMap,
    account_from,
    account_patch,
    cancelled_description,
    cancelled_status_problems,
    check_choice,
    contact_from,
    describe_problems,
    is_id,
    key_hash,
    note_body,
    soql_quote,
    task_body,
    task_from,
    user_from,
)

__all__ = ["SalesforceCRM"]

TOKEN_PATH = "/services/oauth2/token"
MAX_INLINE_WAIT = 10.0
"""A Retry-After longer than this is left to the activity's retry (it would hold a worker slot)."""
OBJECTS = ("Account", "Contact", "User", "Task")


class SalesforceCRM:
    """Implements connectors.base.CRM against one Salesforce org.

    Args:
        instance_url: The org's My Domain URL, e.g. ``https://acme.my.salesforce.com``.
        access_token: A bearer token to use as is (it cannot be renewed when it expires).
        client_id: The connected app's consumer key, for the client credentials flow.
        client_secret: The connected app's consumer secret.
        token_url: Where to get tokens; ``instance_url`` when empty. ``/services/oauth2/token`` is
            appended unless it is there already.
        api_version: The REST API version, ``vNN.N``.
        field_map: Overrides of the field mapping (connectors.salesforce_map).
        timeout: Seconds to wait for each HTTP request.
        max_retries: Retries of a call that timed out, was cut, or got 429/5xx, before giving up.
        cancelled_task_status: The Task Status of a task closed because its run ended (not done).
        transport: An httpx transport to send through (tests: ``httpx.MockTransport``); default: the network.

    Raises:
        ValueError: a bad ``instance_url``, ``api_version`` or ``field_map``.
    """

    def __init__(self, instance_url: str, *, access_token: str = "", client_id: str = "", client_secret: str = "",
                 token_url: str = "", api_version: str = "v61.0", field_map: dict[str, str] | None = None,
                 timeout: float = 10.0, max_retries: int = 5, cancelled_task_status: str = CANCELLED_STATUS,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not instance_url.startswith(("https://", "http://")):
            raise ValueError(f"instance_url {instance_url!r} is not an https:// URL (the org's My Domain)")
        version = api_version if api_version.startswith("v") else f"v{api_version}"
        if not re.fullmatch(r"v\d+\.\d+", version):
            raise ValueError(f"api_version {api_version!r} is not like v61.0")
        self.instance_url = instance_url.rstrip("/")
        self.api = f"/services/data/{version}"
        self.fields = FieldMap.build(field_map or {})
        self.cancelled_status = cancelled_task_status.strip() or CANCELLED_STATUS
        self.max_retries = max(0, max_retries)
        base = (token_url or self.instance_url).rstrip("/")
        self._token_url = base if base.endswith(TOKEN_PATH) else base + TOKEN_PATH
        self._token = access_token
        self._client_id, self._client_secret = client_id, client_secret
        self._client = httpx.AsyncClient(base_url=self.instance_url, timeout=timeout, follow_redirects=False,
                                         transport=transport)
        self._token_lock = asyncio.Lock()
        self._described: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"SalesforceCRM(instance_url={self.instance_url!r}, auth={self._auth_kind()!r}, api={self.api!r})"

    def _auth_kind(self) -> str:
        if self._client_id and self._client_secret:
            return "client credentials"
        return "access token" if self._token else "none"

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    # --- the CRM Protocol ---------------------------------------------------------------------

    async def get_account(self, account_id: str) -> Account | None:
        """The account with all its fields, or None when there is none with this id."""
        if not is_id(account_id):
            return None
        record = await self._get(f"/sobjects/Account/{account_id}", f"reading account {account_id}")
        return account_from(record, self.fields) if record is not None else None

    async def list_contacts(self, account_id: str) -> list[Contact]:
        """The account's contacts, primary first, then by id (empty for an unknown account)."""
        if not is_id(account_id):
            return []
        soql = (f"SELECT {', '.join(self.fields.contact_select())} FROM Contact "
                f"WHERE AccountId = {soql_quote(account_id)}")
        rows = await self._query(soql, f"listing the contacts of account {account_id}")
        return sorted((contact_from(r, self.fields) for r in rows), key=lambda c: (not c.primary, c.id))

    async def get_user(self, user_id_or_email: str) -> User | None:
        """A user by id, or by email (case-insensitive, an active user first); None when unknown."""
        ref, fields = user_id_or_email.strip(), self.fields.user_select()
        if "@" in ref:
            email, active = self.fields.user["user.email"], self.fields.user["user.active"]
            order = f" ORDER BY {active} DESC" if active else ""
            rows = await self._query(f"SELECT {', '.join(fields)} FROM User WHERE {email} = {soql_quote(ref)}{order} "
                                     "LIMIT 1", "looking up a user by email")
            return user_from(rows[0], self.fields) if rows else None
        if not is_id(ref):
            return None
        record = await self._get(f"/sobjects/User/{ref}", f"reading user {ref}", {"fields": ",".join(fields)})
        return user_from(record, self.fields) if record is not None else None

    async def create_task(self, task: NewTask, idempotency_key: str) -> TaskRecord:
        """Create the task once per key (an upsert on the Task External ID field)."""
        errors.require_id("account", task.account_id)
        errors.require_id("assignee (a Salesforce user)", task.assignee_id)
        task_id = await self._upsert_task(task_body(task), idempotency_key, "creating the task")
        return TaskRecord(id=task_id, account_id=task.account_id, assignee_id=task.assignee_id,
                          title=task.title[:SUBJECT_MAX], status="open", priority=task.priority, due=task.due)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        """The task, or None."""
        if not is_id(task_id):
            return None
        record = await self._get(f"/sobjects/Task/{task_id}", f"reading task {task_id}",
                                 {"fields": ",".join(TASK_FIELDS)})
        return task_from(record, self.cancelled_status) if record is not None else None

    async def update_task(self, task_id: str, *, status: str | None = None, assignee_id: str | None = None,
                          priority: str | None = None, reason: str = "") -> TaskRecord:
        """Change status (``closed`` is stored as Completed), assignee or priority.

        ``cancelled`` writes ``cancelled_task_status`` (default Completed) and adds a line
        ``Cancelled by csops, not done: REASON`` to the Description (read back as cancelled).
        """
        errors.require_id("task", task_id)
        body: dict[str, Any] = {}
        if status == "cancelled":
            record = await self._get(f"/sobjects/Task/{task_id}", f"reading task {task_id}",
                                     {"fields": "Id,Description"})
            if record is None:
                raise PermanentError(f"task {task_id} does not exist in Salesforce")
            body["Status"] = self.cancelled_status
            body["Description"] = cancelled_description(str(record.get("Description") or ""), reason)
        elif status is not None:
            body["Status"] = check_choice("status", status, STATUSES)
        if assignee_id is not None:
            errors.require_id("assignee (a Salesforce user)", assignee_id)
            body["OwnerId"] = assignee_id
        if priority is not None:
            body["Priority"] = check_choice("priority", priority, PRIORITIES)
        if body:
            await self._call("PATCH", f"{self.api}/sobjects/Task/{task_id}", f"updating task {task_id}", json=body)
        task = await self.get_task(task_id)
        if task is None:
            raise PermanentError(f"task {task_id} does not exist in Salesforce")
        return task

    async def update_account(self, account_id: str, changes: dict[str, Any]) -> Account:
        """Write playbook fields and ``fields.NAME`` (converted to each Salesforce field's type).

        ``owner``/``owner_id`` take a user id or email. All fields go in one PATCH: all or nothing.

        Raises:
            PermanentError: unknown account, field or owner; a value of the wrong type; a
                validation rule or permission that refuses the change.
        """
        errors.require_id("account", account_id)
        rest = {k: v for k, v in changes.items() if k not in ("owner", "owner_id")}
        custom = {self.fields.custom.get(k[7:], k[7:]) for k in rest if k.startswith("fields.")}
        describe = (await self._describe("Account"))["fields"] if custom else {}
        if custom - describe.keys():  # perhaps created since it was described: look again once
            describe = (await self._describe("Account", fresh=True))["fields"]
        body = account_patch(rest, self.fields, describe)
        for name in changes.keys() - rest.keys():
            body[self.fields.account["owner_id"]] = await self._owner(changes[name])
        if body:
            await self._call("PATCH", f"{self.api}/sobjects/Account/{account_id}", f"updating account {account_id}",
                             json=body)
        account = await self.get_account(account_id)
        if account is None:
            raise PermanentError(f"account {account_id} does not exist in Salesforce")
        return account

    async def add_note(self, account_id: str, text: str, idempotency_key: str) -> str:
        """Log a note once per key, as a completed Task on the account; returns the Task id."""
        errors.require_id("account", account_id)
        if not text.strip():
            raise PermanentError("a note needs text")
        return await self._upsert_task(note_body(account_id, text), idempotency_key, "logging the note")

    # --- the AccountLister Protocol ------------------------------------------------------------

    async def list_accounts(self, after: str | None = None, limit: int = 1000, *,
                            dates: Sequence[tuple[str, date, date]] = (), segments: Sequence[str] = (),
                            lifecycle_stages: Sequence[str] = (), skip: Collection[str] = (),
                            numbers: Sequence[tuple[str, str, float]] = ()) -> list[Account]:
        """A page of accounts in ascending (18-character) id order after ``after``, by one SOQL query
        (connectors.salesforce_list; the contract is connectors.base.AccountLister).

        Raises:
            ValueError: a filter field that is unmapped, not on Account or not a Date/Date/Time field;
                an ``after`` that is not a Salesforce id.
            RetryableError: Salesforce is unavailable, rate-limits, or the API request limit is used up.
            PermanentError: Salesforce refused the query (credentials, permissions).
        """
        return await list_page(self, after, limit, dates=dates, segments=segments, stages=lifecycle_stages)

    # --- checks -------------------------------------------------------------------------------

    async def check(self) -> list[str]:
        """What stops this connection from working, in plain words ([] when it works).

        Describes Account, Contact, User and Task: the token works, the integration user can read
        and write them, and every field the mapping needs exists (the Task key as a unique External ID).
        """
        if self._auth_kind() == "none":
            return ["no Salesforce credentials: set client_id and client_secret (client credentials flow) "
                    "or access_token in the crm section of csops.yaml"]
        problems: list[str] = []
        for obj in OBJECTS:
            try:
                described = await self._describe(obj, fresh=True)
            except (errors.AuthError, RetryableError) as exc:
                return [*problems, str(exc)]  # every other object would get the same answer
            except PermanentError as exc:
                problems.append(str(exc))
                continue
            problems += describe_problems(obj, described, self.fields)
            if obj == "Task":
                problems += cancelled_status_problems(described, self.cancelled_status)
        return problems

    # --- HTTP ---------------------------------------------------------------------------------

    async def _owner(self, value: Any) -> str:
        if value in (None, ""):
            raise PermanentError("an account in Salesforce must have an owner; give a user id or email")
        user = await self.get_user(str(value))
        if user is None:
            raise PermanentError(f"owner {value!r} is not a Salesforce user")
        return user.id

    async def _describe(self, obj: str, *, fresh: bool = False) -> dict[str, Any]:
        """The sObject's describe, with ``fields`` as a dict by field name (cached unless ``fresh``)."""
        if fresh or obj not in self._described:
            res = await self._call("GET", f"{self.api}/sobjects/{obj}/describe", f"describing {obj}")
            data = res.json()
            data["fields"] = {f["name"]: f for f in data.get("fields", [])}
            self._described[obj] = data
        return self._described[obj]

    async def _upsert_task(self, body: dict[str, Any], idempotency_key: str, what: str) -> str:
        path = f"{self.api}/sobjects/Task/{self.fields.task_key}/{key_hash(idempotency_key)}"
        res = await self._call("PATCH", path, what, json=body)
        if res.status_code == 204 or not res.content:
            # Before API v46.0 an upsert that updated answered 204 with no body: read the id back.
            found = await self._get(path.removeprefix(self.api), what, {"fields": "Id"})
            if found is None:
                raise RetryableError(f"Salesforce did not return the task while {what}; csops tries again")
            return str(found["Id"])
        return str(res.json()["id"])

    async def _get(self, path: str, what: str, params: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """GET an sObject row; None on 404 (no such record)."""
        res = await self._call("GET", f"{self.api}{path}", what, params=params, missing_ok=True)
        if res.status_code == 404:
            return None
        data: dict[str, Any] = res.json()
        return data

    async def _query(self, soql: str, what: str) -> list[dict[str, Any]]:
        """All rows of a SOQL query, following ``nextRecordsUrl`` page by page."""
        res = await self._call("GET", f"{self.api}/query", what, params={"q": soql})
        page = res.json()
        rows: list[dict[str, Any]] = list(page.get("records", []))
        while not page.get("done", True):
            next_url = str(page.get("nextRecordsUrl", ""))
            if not next_url.startswith("/services/data/"):
                raise PermanentError(f"Salesforce returned an unexpected nextRecordsUrl while {what}")
            page = (await self._call("GET", next_url, what)).json()
            rows += page.get("records", [])
        return rows

    async def _call(self, method: str, path: str, what: str, *, params: Mapping[str, str] | None = None,
                    json: Any = None, missing_ok: bool = False) -> httpx.Response:
        """One API call: bearer token, a fresh token once on INVALID_SESSION_ID, transient failures retried."""
        async def send(token: str) -> httpx.Response:
            return await self._client.request(method, path, params=params, json=json,
                                              headers={"Authorization": f"Bearer {token}"})

        token = await self._current_token()
        res = await self._transient(lambda: send(token), what)
        if res.status_code == 401 and self._auth_kind() == "client credentials":
            token = await self._refresh(token)
            res = await self._transient(lambda: send(token), what)
        if res.status_code == 404 and missing_ok:
            return res
        if res.status_code >= 300:
            raise errors.error_for(res, what, can_refresh=self._auth_kind() == "client credentials")
        return res

    async def _transient(self, send: Callable[[], Awaitable[httpx.Response]], what: str) -> httpx.Response:
        """The first answer that is not 429/5xx; timeouts and cut connections are tried again too."""
        wait: float | None = None
        detail, problem = "", ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(wait if wait is not None else errors.backoff_seconds(attempt))
            try:
                res = await send()
            except httpx.TimeoutException as exc:
                wait, problem, detail = None, "did not answer in time", type(exc).__name__
                continue
            except httpx.TransportError as exc:
                problem = "could not be reached" if isinstance(exc, httpx.ConnectError) else "closed the connection"
                wait, detail = None, f"{type(exc).__name__}: {exc}"
                continue
            if res.status_code != 429 and res.status_code < 500:
                return res
            wait, detail = errors.retry_after_seconds(res), res.text[:errors.MAX_DETAIL]
            problem = "is rate limiting csops (HTTP 429)" if res.status_code == 429 else \
                f"had an internal error (HTTP {res.status_code})"
            if wait is not None and wait > MAX_INLINE_WAIT:
                break
        tries = f"{attempt + 1} time{'s' if attempt else ''}"
        raise RetryableError(f"Salesforce {problem} while {what} (tried {tries}); csops tries again later",
                             retry_after=wait, detail=detail)

    async def _current_token(self) -> str:
        if self._token:
            return self._token
        if self._auth_kind() == "none":
            raise PermanentError("no Salesforce credentials: set client_id and client_secret, or access_token")
        async with self._token_lock:
            if not self._token:
                self._token = await self._fetch_token()
            return self._token

    async def _refresh(self, stale: str) -> str:
        async with self._token_lock:
            if self._token == stale:  # no other call has fetched a new one meanwhile
                self._token = await self._fetch_token()
            return self._token

    async def _fetch_token(self) -> str:
        """A token by the client credentials flow (the secret goes only in this request's body)."""
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._client_secret}
        res = await self._transient(lambda: self._client.post(self._token_url, data=form), "getting an access token")
        if res.status_code != 200:
            raise errors.error_for(res, "getting an access token", can_refresh=False)
        token = res.json().get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentError("Salesforce's token endpoint answered without an access_token")
        redact.register(token)  # a token obtained at run time is as secret as the configured ones
        return token


