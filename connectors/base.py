"""The small interfaces every connector implements, and the records they exchange.

Activities talk to outside systems only through these Protocols; ``worker.py`` builds the
implementations (built-in SQL CRM and outboxes on a fresh machine, HubSpot/Salesforce/SMTP/Slack
in production) and passes them in. Every side-effecting call carries an ``idempotency_key``
(``workflow-id/step-path``): an implementation that can dedupe on the remote side should; the
ledger (connectors.ledger) makes a repeated call with a done key return the recorded result either way.

Error tree (activities map these to retryable or not)::

    ConnectorError            a call failed
    ├── RetryableError        timeouts, 429, 5xx: try again later (retry_after in seconds, if known)
    └── PermanentError        4xx, bad data, unknown recipient: retrying cannot help
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, runtime_checkable


class ConnectorError(Exception):
    """A connector call failed; ``detail`` keeps what the remote side said."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class RetryableError(ConnectorError):
    """Worth retrying: a timeout, 429 or 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None, detail: str = "") -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """Retrying cannot help: a 4xx, bad data, an unknown record."""


@dataclass(frozen=True, kw_only=True)
class User:
    """A person on the team (CSM, AE, manager)."""

    id: str
    """Stable id in the CRM."""
    email: str
    """Email address; also how Slack DMs find the person."""
    name: str = ""
    """Display name."""
    title: str = ""
    """Job title."""
    manager_id: str | None = None
    """The user's manager (for owner.manager)."""
    timezone: str = "UTC"
    """IANA time zone."""
    out_of_office: bool = False
    """Away: work goes to ``backup_id`` when set."""
    backup_id: str | None = None
    """Who covers while out of office."""
    roles: tuple[str, ...] = ()
    """Coverage roles this user can hold (csm, ae, ...)."""


@dataclass(frozen=True, kw_only=True)
class Contact:
    """A person at the customer."""

    id: str
    """Stable id in the CRM."""
    account_id: str
    """The account the contact belongs to."""
    email: str
    """Email address."""
    first_name: str = ""
    """Given name."""
    last_name: str = ""
    """Family name."""
    title: str = ""
    """Job title."""
    role: str = ""
    """Role at the account (billing, champion, admin...): ``contacts:ROLE`` selects by it."""
    phone: str = ""
    """Phone number."""
    primary: bool = False
    """The account's primary contact."""
    timezone: str = ""
    """IANA time zone of the contact (send windows); "" when unknown: the account's, then the calendar's."""


@dataclass(frozen=True, kw_only=True)
class Account:
    """A customer account with the fields the playbook language knows (SPEC section 5)."""

    id: str
    """Stable id in the CRM."""
    name: str
    """Company name."""
    segment: str = ""
    """Segment (strategic, commercial, smb...)."""
    lifecycle_stage: str = ""
    """Lifecycle stage (onboard, adopt, expand, renew...)."""
    owner_id: str | None = None
    """The owning user (CSM)."""
    arr: float = 0.0
    """Annual recurring revenue."""
    renewal_date: date | None = None
    """Next renewal date."""
    contract_start: date | None = None
    """Contract start date."""
    renewal_status: str = ""
    """Renewal status (open, renewed, churned...)."""
    health_score: int | None = None
    """Health score 0-100."""
    health_band: str = ""
    """green, yellow or red."""
    previous_health_score: int | None = None
    """The score before the latest change."""
    usage: dict[str, Any] = field(default_factory=dict)
    """Usage facts (feature → count or first-use date)."""
    fields: dict[str, Any] = field(default_factory=dict)
    """Custom fields."""


@dataclass(frozen=True, kw_only=True)
class NewTask:
    """A task to create."""

    account_id: str
    """The account it is about."""
    assignee_id: str
    """The user who gets it."""
    title: str
    """Subject."""
    notes: str = ""
    """Body."""
    due: date | None = None
    """Due date."""
    priority: str = "normal"
    """low, normal or high."""


@dataclass(frozen=True, kw_only=True)
class TaskRecord:
    """A task as the CRM has it."""

    id: str
    """Stable id in the CRM."""
    account_id: str
    """The account it is about."""
    assignee_id: str
    """Who has it now."""
    title: str
    """Subject."""
    status: str = "open"
    """open, completed (closed counts as completed), or cancelled: closed by csops because its run
    exited or was cancelled, not done."""
    priority: str = "normal"
    """low, normal or high."""
    due: date | None = None
    """Due date."""
    reason: str = ""
    """Why a cancelled task was cancelled ("" otherwise)."""


@dataclass(frozen=True, kw_only=True)
class OutgoingEmail:
    """An email ready to send: addresses resolved, templates rendered."""

    to: tuple[str, ...]
    """Recipient addresses."""
    sender: str
    """From address."""
    subject: str
    """Subject line (no CR/LF)."""
    body: str
    """Plain-text body."""
    category: str = "operational"
    """operational or marketing."""
    sender_name: str = ""
    """Display name of the sender."""
    unsubscribe_url: str = ""
    """Marketing only: the recipient's one-click unsubscribe link (https://...), filled in by
    connectors.mailpolicy.PolicyMailer; SMTP refuses marketing mail without it."""
    unsubscribe_mailto: str = ""
    """Marketing only: a ``mailto:`` URI that unsubscribes the recipient, or empty."""


@dataclass(frozen=True, kw_only=True)
class ChatMessage:
    """A chat message: to a channel (``#name``) or a person (by email)."""

    channel: str = ""
    """Channel name without '#', or empty for a DM."""
    user_email: str = ""
    """Recipient of a DM, or empty for a channel."""
    text: str
    """Message text (also the notification text when blocks are given)."""
    blocks: tuple[dict[str, Any], ...] = ()
    """Block Kit blocks."""


@dataclass(frozen=True, kw_only=True)
class HttpResult:
    """The outcome of a webhook call."""

    status: int
    """HTTP status."""
    body: str = ""
    """Response body (truncated)."""


@runtime_checkable
class Lifecycle(Protocol):
    """What every connector csops builds from csops.yaml also has (engine/wiring.py builds them; the
    built-in SQL CRM and the outboxes get theirs there).

    ``check`` says in plain words what stops the connection from working ([] when it works):
    ``csops check-config`` and the worker's start call it. ``close`` releases connections.
    """

    async def check(self) -> list[str]: ...
    async def close(self) -> None: ...


class CRM(Protocol):
    """Accounts, contacts, users, tasks and notes."""

    async def get_account(self, account_id: str) -> Account | None: ...
    async def list_contacts(self, account_id: str) -> list[Contact]: ...
    async def get_user(self, user_id_or_email: str) -> User | None: ...
    async def create_task(self, task: NewTask, idempotency_key: str) -> TaskRecord: ...
    async def get_task(self, task_id: str) -> TaskRecord | None: ...
    async def update_task(self, task_id: str, *, status: str | None = None, assignee_id: str | None = None,
                          priority: str | None = None, reason: str = "") -> TaskRecord: ...
    async def update_account(self, account_id: str, changes: dict[str, Any]) -> Account:
        """Write fields: the playbook names (name, segment, lifecycle_stage, owner, arr, renewal_date,
        contract_start, renewal_status) and ``fields.NAME`` for custom fields; values as templates
        render them (text), converted to each field's type."""
        ...
    async def add_note(self, account_id: str, text: str, idempotency_key: str) -> str: ...


class Mailer(Protocol):
    """Sends one email; returns its Message-ID."""

    async def send(self, message: OutgoingEmail, idempotency_key: str) -> str: ...


class Chat(Protocol):
    """Posts one chat message; returns the message's id (channel:ts for Slack)."""

    async def post(self, message: ChatMessage, idempotency_key: str) -> str: ...


class Http(Protocol):
    """Calls a webhook."""

    async def request(self, method: str, url: str, *, headers: dict[str, str], json: Any,
                      idempotency_key: str) -> HttpResult: ...


@dataclass(frozen=True, kw_only=True)
class AccountView:
    """An account with the people templates see: its owner, the owner's manager and its contacts."""

    account: Account
    """The account."""
    owner: User | None = None
    """The owning user, if any."""
    manager: User | None = None
    """The owner's manager, if any."""
    contacts: tuple[Contact, ...] = ()
    """The account's contacts, primary first."""


@runtime_checkable
class AccountViews(Protocol):
    """Optional for a CRM: read an account and its people in one go (one query or session), which
    the engine does before every step. Without it the engine makes the four calls of ``CRM``."""

    async def account_view(self, account_id: str) -> AccountView | None: ...


NUMBER_COLUMNS = frozenset({"arr", "health_score", "previous_health_score"})
"""The numeric columns ``AccountLister.list_accounts`` may be asked to compare (``numbers``)."""
NUMBER_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}
"""The operators of ``numbers`` and what each does (to Python numbers and to SQLAlchemy columns alike)."""


@runtime_checkable
class AccountLister(Protocol):
    """Optional for a CRM: page through its accounts, filtered, for the daily date scan and schedule
    triggers (engine/triggers/scan.py). A CRM without it can still start runs from events."""

    async def list_accounts(self, after: str | None = None, limit: int = 1000, *,
                            dates: Sequence[tuple[str, date, date]] = (), segments: Sequence[str] = (),
                            lifecycle_stages: Sequence[str] = (), skip: Collection[str] = (),
                            numbers: Sequence[tuple[str, str, float]] = ()) -> list[Account]:
        """A page of at most ``limit`` accounts in ascending id order, with ids after ``after``.

        The caller asks for the next page with ``after`` = the last id of this one and stops at a
        page shorter than ``limit``. ``dates`` keeps accounts where any (field, first, last) holds
        a date in [first, last] (field: ``renewal_date``, ``contract_start`` or ``fields.NAME``);
        ``segments`` and ``lifecycle_stages`` keep accounts with one of the values when not empty.
        Filters all apply together (AND); within ``dates`` any one range suffices (OR). ``skip``
        names account fields the caller does not read (``usage``, ``fields``, ``name``, ``arr``,
        ``renewal_date``, ``contract_start``, ``renewal_status``; ``health`` for the three health fields,
        ``people`` for ``owner_id``): a CRM may leave them empty to read less (the built-in one does; the
        others read them anyway). The id, segment and lifecycle stage are always read. ``numbers`` holds
        comparisons (column, operator, number) of the numeric fields ``arr``, ``health_score`` and
        ``previous_health_score`` (operators ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``) taken from
        the playbook's ``audience.when``, which the caller evaluates again for every account returned:
        a CRM may leave out the accounts that fail one (the built-in one does, in SQL, and keeps a
        null field) or return them all (the others do).

        Raises:
            ValueError: a date field the CRM cannot filter on (not mapped).
            RetryableError: the CRM is unavailable or rate-limits; the scan is retried.
            PermanentError: the CRM refused the query (bad credentials, missing permission).
        """
        ...
