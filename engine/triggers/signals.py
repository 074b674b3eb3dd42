"""What the trigger matcher reads (a signal and the facts about the account) and what it answers.

The matcher (engine/triggers/matcher.py) is pure: the store and the HTTP API gather these inputs, call
``decide`` or ``explain``, and record the answer. Everything here is plain data; ``Decision.seen``
and ``Check.seen`` are JSON-able so they can be stored as they are.

A signal is one of:

- :class:`EventSignal`: an event (SPEC section 8), e.g. ``health.updated``, ``usage.feature_used``,
  ``account.updated`` (lifecycle changes and date edits arrive this way), or a custom type;
- :class:`Scan`: the daily scan of date triggers over the days ``(since, today]``;
- :class:`Tick`: one tick of a ``schedule`` trigger's cron expression;
- :class:`ManualStart`: a person starting the playbook from the CLI or the API.

The small functions at the end read values out of these inputs (dates, scores, custom fields) the
same way everywhere, and show triggers and values to people.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Literal

from engine.language.context import Calendar
from engine.language.model import (
    ContractMilestone,
    EventTrigger,
    HealthDrop,
    LifecycleChange,
    NewUsage,
    Schedule,
    Trigger,
)


@dataclass(frozen=True, kw_only=True)
class EventSignal:
    """An event for one account, as it arrived."""

    kind: ClassVar[str] = "event"
    id: str
    """The event id (events are idempotent by id)."""
    type: str
    """The event type: ``health.updated``, ``usage.feature_used``, ``account.updated``, or a custom one."""
    account_id: str
    """The account the event is about."""
    occurred_at: datetime
    """When it happened (aware); health windows are measured back from here."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """The event's data: ``{score, band}``, ``{feature, product}``, ``{fields: {name: new value}}``..."""
    previous: Mapping[str, Any] = field(default_factory=dict)
    """For ``account.updated``: the old value of each changed field, by the same names as ``data.fields``
    (supplied by the caller, who knew the account before the change)."""

    def as_dict(self) -> dict[str, Any]:
        """The event as expressions see it (``event`` in an event trigger's ``where``)."""
        return {"id": self.id, "type": self.type, "account_id": self.account_id,
                "occurred_at": self.occurred_at.isoformat(), "data": dict(self.data)}


@dataclass(frozen=True, kw_only=True)
class Scan:
    """The daily scan of date triggers for one account: milestone days in ``(since, today]`` are due.

    A scan after a missed day passes the last scanned day as ``since``, so the missed days are
    caught up and no day is looked at twice.
    """

    kind: ClassVar[str] = "scan"
    account_id: str
    """The account scanned."""
    since: date
    """The last day already scanned (exclusive); the first scan ever passes the day before ``today``."""
    today: date
    """The day scanned up to (inclusive), in the calendar's time zone."""


def scans(ids: Iterable[str], since: date, today: date) -> Iterator[Scan]:
    """``Scan(account_id=i, since=since, today=today)`` for each id, one at a time. Set up without the frozen
    dataclass's ``__init__`` (a call of ``object.__setattr__`` per field, a fifth of a scan's matching);
    the signals are the same (equal, same fields)."""
    for i in ids:
        signal = object.__new__(Scan)
        signal.__dict__.update(account_id=i, since=since, today=today)
        yield signal


@dataclass(frozen=True, kw_only=True)
class Tick:
    """One tick of a cron schedule, for one account."""

    kind: ClassVar[str] = "tick"
    account_id: str
    """The account the tick is delivered for."""
    cron: str
    """The cron expression as written in the trigger; matches ``schedule`` triggers with the same one."""
    at: datetime
    """The tick's scheduled time (aware); the occurrence key, so a repeated tick is a duplicate."""
    timezone: str = "UTC"
    """The trigger's time zone, matched together with ``cron``."""


@dataclass(frozen=True, kw_only=True)
class ManualStart:
    """A person starting the playbook for one account."""

    kind: ClassVar[str] = "manual"
    account_id: str
    """The account to start it for."""
    by: str = ""
    """Who started it (for the record)."""
    occurrence: str = ""
    """An occurrence key the person chose; when given it wins over ``entry.key``."""


@dataclass(frozen=True, kw_only=True)
class DirectStart:
    """A start that no trigger of the playbook has to match: a ``start_playbook`` step of another run
    (``via="start_playbook"``), or a person's forced start of a playbook without a ``manual`` trigger
    (``via="manual"``). Every other rule (enabled, audience, entry) is checked as for a trigger."""

    kind: ClassVar[str] = "direct"
    account_id: str
    """The account to start it for."""
    via: str
    """What the run sees as ``trigger.type``: start_playbook or manual."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """More for ``trigger``: the starting playbook and run (``from``, ``run``), or who (``by``)."""
    why: str = ""
    """In plain words, for the decision."""
    occurrence: str = ""
    """An occurrence key the person chose; when given it wins over ``entry.key``."""


Signal = EventSignal | Scan | Tick | ManualStart | DirectStart


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What the caller knows about the account and its runs of this playbook at decision time."""

    account: Mapping[str, Any]
    """The account as expressions see it (engine.payloads.runcontext.account_data), after the signal's change
    was applied; dates as ISO text or date objects."""
    now: datetime
    """Decision time (aware): cooldowns and the day of an edit are judged at it."""
    calendar: Calendar = field(default_factory=Calendar)
    """Workdays, holidays and time zone for business days and for what "today" is."""
    contacts: tuple[Mapping[str, Any], ...] = ()
    """The account's contacts as expressions see them (``contacts``)."""
    previous_score: float | None = None
    """The health score before this change (None: no score before)."""
    previous_band: str | None = None
    """The health band before this change."""
    health_history: tuple[tuple[datetime, float], ...] = ()
    """Earlier health scores as (when, score): those inside the longest ``within`` window and the last
    one before it (the score in force when the window opens)."""
    first_feature_use: bool = False
    """The event's feature was never used by the account before this event."""
    first_product_use: bool = False
    """The event's product was never used by the account before this event."""
    active_run: str | None = None
    """The id of the run of this playbook for this account that is still going, if any."""
    last_run_ended_at: datetime | None = None
    """When the last run of this playbook for this account ended (for the cooldown)."""
    started_keys: frozenset[str] = frozenset()
    """Occurrence keys runs of this playbook were already started with for this account."""
    last_scan: date | None = None
    """The last day the daily scan of date triggers covered (``Store.last_scan``), read for playbooks with a
    ``contract_milestone`` trigger: an edit fires a milestone day the scan will not look at again."""


@dataclass(frozen=True)
class Probe:
    """How one trigger stands against a signal (or, for explain, against the facts)."""

    fires: bool
    why: str
    """What was seen, in plain words."""
    seen: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    """The trigger's default occurrence key."""
    error: str = ""
    """Set when the trigger's ``where`` could not be evaluated."""


@dataclass(frozen=True, kw_only=True)
class TriggerRef:
    """Which trigger of the playbook matched."""

    index: int
    """Position in ``triggers`` (0-based)."""
    kind: str
    """Its kind (``health_drop``, ``contract_milestone``...)."""


Reason = Literal["started", "already_active", "cooldown", "audience_segment", "audience_stage", "audience_when",
                 "duplicate_occurrence", "disabled", "expression_error", "forced"]


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The matcher's answer for a signal that a trigger of the playbook matched."""

    outcome: Literal["start", "suppressed"]
    """Start a run, or record that none was started."""
    reason: Reason
    """Machine id of the outcome."""
    message: str
    """The outcome in plain words."""
    playbook: str
    """The playbook id."""
    account_id: str
    """The account."""
    trigger: TriggerRef
    """The trigger that matched."""
    occurrence: str
    """The entry key value ("" = no key); part of the run id."""
    run_id: str
    """The id the run gets (engine.payloads.runtypes.run_id_for)."""
    trigger_data: dict[str, Any]
    """What the run sees as ``trigger`` in expressions (``type`` and details)."""
    seen: dict[str, Any]
    """The values the decision looked at (JSON-able)."""


State = Literal["pass", "fail", "waiting", "error"]


@dataclass(frozen=True, kw_only=True)
class Check:
    """One line of ``csops explain``: a condition on starting a run now, and how it stands."""

    name: str
    """What is checked: ``trigger 1``, ``enabled``, ``audience.segments``, ``active run``, ``cooldown``..."""
    state: State
    """pass: holds now; fail: does not; waiting: depends on an event, tick or person still to come;
    error: an expression could not be evaluated."""
    text: str
    """The check and the values seen, in plain words."""
    seen: dict[str, Any] = field(default_factory=dict)
    """The values looked at (JSON-able)."""
    trigger: TriggerRef | None = None
    """For trigger checks: which trigger."""


def describe(trig: Trigger) -> str:
    """A trigger as one line: ``health_drop below 50``, ``contract_milestone renewal_date days_before 90``."""
    if isinstance(trig, HealthDrop):
        if trig.below is not None:
            return f"health_drop below {trig.below}"
        if trig.by is not None:
            return f"health_drop by {trig.by} within {trig.within.text if trig.within else '?'}"
        return f"health_drop to_band {trig.to_band}"
    if isinstance(trig, ContractMilestone):
        which = f"days_before {trig.days_before}" if trig.days_before is not None else f"days_after {trig.days_after}"
        return f"contract_milestone {trig.field} {which}" + (" (business days)" if trig.business_days else "")
    if isinstance(trig, NewUsage):
        return f"new_usage feature {trig.feature}" if trig.feature is not None else f"new_usage product {trig.product}"
    if isinstance(trig, LifecycleChange):
        return f"lifecycle_change to {trig.to}" + (f" from {trig.from_stage}" if trig.from_stage else "")
    if isinstance(trig, EventTrigger):
        return f"event {trig.type}" + (f" where {trig.where}" if trig.where else "")
    if isinstance(trig, Schedule):
        return f"schedule '{trig.cron}' ({trig.timezone})"
    return "manual"


def lookup(data: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """``name`` in ``data``: ``renewal_date``, or ``fields.NAME`` as a dotted key or nested under ``fields``."""
    if name in data:
        return True, data[name]
    head, _, rest = name.partition(".")
    inner = data.get(head)
    if rest and isinstance(inner, Mapping) and rest in inner:
        return True, inner[rest]
    return False, None


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (data from outside may have any shape)."""
    return value if isinstance(value, Mapping) else {}


def as_date(value: Any) -> date | None:
    """A date from a date, a datetime, or ISO text; None for anything else."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        for parse in (date.fromisoformat, lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).date()):
            try:
                return parse(value.strip())
            except ValueError:
                continue
    return None


def key_text(value: Any) -> str:
    """An evaluated ``entry.key`` as the occurrence text: dates as ISO, None as no key."""
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def number(value: Any) -> float | None:
    """A score: a finite number, or None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if isinstance(value, int) or math.isfinite(value) else None


def fmt(value: float | None) -> str:
    """A score for people: 42, not 42.0."""
    if value is None:
        return "none"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


_PLAIN = frozenset((str, int, float, bool, type(None)))


def jsonable(value: Any) -> Any:
    """``value`` with dates as ISO text and anything else unknown to JSON as text."""
    if type(value) in _PLAIN:  # most values: one look-up instead of a chain of isinstance checks
        return value
    if type(value) is dict:  # plain values inline: a decision's two dicts are mostly text and numbers
        return {k if type(k) is str else str(k): v if type(v) in _PLAIN else jsonable(v) for k, v in value.items()}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


_TEXT = frozenset((str,))


def own_json(value: dict[str, Any]) -> dict[str, Any]:
    """``jsonable(value)`` for a dict the caller made and hands over: the dict itself when it already is
    JSON (text keys, plain values: a scan's thousands of decisions), else a converted copy."""
    if _PLAIN.issuperset(map(type, value.values())) and _TEXT.issuperset(map(type, value)):
        return value
    converted: dict[str, Any] = jsonable(value)
    return converted
