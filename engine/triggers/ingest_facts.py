"""Events in: checking one against schemas/event.schema.json, and the facts a built-in event changes.

``validate_event`` answers in plain words with the JSON path of each problem, so the API can say
"data.score: must be a number 0-100" in a 400/422. It is written out by hand rather than run
through a JSON Schema library: it is several times faster on the ingest path, and
tests/unit/test_ingest.py checks that it agrees with the published schema on every sample.

``apply_facts`` does what a built-in event changes before triggers are matched: the health
history and the CRM's health fields, first uses, account fields. Each change can be applied a
second time (a processor died before marking the event processed) without changing the answer:
the previous score is the one recorded before the event's time, not the CRM's current one, and a
first use remembers the event that made it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable

from connectors.base import CRM, Account, PermanentError
from engine.language.textfmt import has_control
from engine.payloads.runcontext import account_data
from engine.store.store import Store
from engine.triggers.signals import EventSignal, lookup

__all__ = ["ACCOUNT_FACTS", "BUILT_IN", "Change", "apply_facts", "outside_years", "parse_event", "parse_time",
           "read_event", "validate_event"]

BUILT_IN = frozenset({"health.updated", "usage.feature_used", "account.updated", "task.completed", "email.replied",
                      "email.bounced", "contact.unsubscribed", "account.churned"})
ACCOUNT_FACTS = frozenset({"health.updated", "usage.feature_used", "account.updated"})
"""The built-in types whose facts ``apply_facts`` reads the account for (other events change no account fact)."""
TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
TOP = ("id", "type", "account_id", "occurred_at", "data")
TEXT_FIELDS = frozenset({"name", "segment", "lifecycle_stage", "renewal_status", "owner", "owner_id"})
DATE_FIELDS = frozenset({"renewal_date", "contract_start"})
CUSTOM_FIELD = re.compile(r"fields\.[A-Za-z_][A-Za-z0-9_]*")
FIELD_NAMES = ("name, segment, lifecycle_stage, owner, arr, renewal_date, contract_start, renewal_status, "
               "health_band, health_score or fields.NAME")


@runtime_checkable
class UsageNotes(Protocol):
    """A CRM that keeps ``account.usage`` itself (the built-in one); others get usage from the product."""

    async def note_usage(self, account_id: str, name: str, first_used: date) -> bool: ...


def validate_event(obj: Any) -> list[str]:
    """The problems of one event (SPEC section 8), each as "path: what is wrong"; [] when it is valid."""
    return _checked(obj)[0]


def read_event(obj: Any) -> EventSignal | list[str]:
    """``validate_event`` then ``parse_event``, the time parsed once (the API's path: per event, every µs counts);
    also refused: a time outside years 1-9999 once in UTC. Data that is not JSON is left to the store, which
    refuses that event alone (engine/triggers/ingest.py ``_write``)."""
    problems, when = _checked(obj)
    if problems:
        return problems
    assert when is not None
    try:
        when.astimezone(UTC)
    except OverflowError:
        return [outside_years(obj["occurred_at"])]
    return EventSignal(id=obj["id"], type=obj["type"], account_id=obj["account_id"], occurred_at=when,
                       data=dict(obj.get("data") or {}))


def outside_years(value: Any) -> str:
    """The problem of an occurred_at outside the years 1 to 9999 once in UTC."""
    return (f"occurred_at: is outside the years 1 to 9999 once converted to UTC ({value!r:.60}); "
            "send a real date-time")


def _checked(obj: Any) -> tuple[list[str], datetime | None]:
    """The problems of one event and its time (None when it has none that parses).

    The API runs this for every event of every batch: the usual event (a dict of known fields, its
    ids short text, a type seen before) takes the fast tests first (``type(x) is dict`` is a fifth of
    an ``isinstance`` against the Mapping ABC); anything else goes through the same checks in full."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        return [f"(event): must be a JSON object, not {_kind(obj)}"], None
    problems = [] if obj.keys() <= _TOP else [f"{key}: is not a field of an event; the fields are {', '.join(TOP)}"
                                               for key in obj if key not in _TOP]
    ident, account = obj.get("id"), obj.get("account_id")
    if not (type(ident) is str and 0 < len(ident) <= 255 and type(account) is str and 0 < len(account) <= 255
            and not has_control(ident) and not has_control(account)):
        for key, longest in (("id", 255), ("account_id", 255)):
            value = obj.get(key)
            if key not in obj:
                problems.append(f"{key}: is required")
            elif not isinstance(value, str) or not 1 <= len(value) <= longest:
                problems.append(f"{key}: must be text of 1 to {longest} characters")
            elif has_control(value):
                problems.append(f"{key}: must not hold control characters (NUL, tab, newline...), "
                                f"found {value!r:.60}; send printable text")
    kind = obj.get("type")
    if type(kind) is not str or kind not in _TYPES_SEEN:  # not a str: maybe a list, which no set can hold
        if "type" not in obj:
            problems.append("type: is required")
        elif not isinstance(kind, str) or len(kind) > 200 or not TYPE.fullmatch(kind):
            problems.append(f"type: must be a dotted lower-case name like health.updated or "
                            f"billing.invoice_overdue, not {kind!r:.60}")
        elif type(kind) is str and len(_TYPES_SEEN) < 10_000:  # a bound on memory: past it, new types are matched
            _TYPES_SEEN.add(kind)
    when = parse_time(obj["occurred_at"]) if "occurred_at" in obj else None
    if "occurred_at" not in obj:
        problems.append("occurred_at: is required")
    elif when is None:
        problems.append(f"occurred_at: must be an RFC 3339 date-time with a time zone, like 2025-03-01T09:30:00Z, "
                        f"not {obj['occurred_at']!r:.60}")
    data = obj.get("data", _NO_DATA)
    if type(data) is not dict and not isinstance(data, Mapping):
        problems.append(f"data: must be a JSON object, not {_kind(data)}")
    elif isinstance(kind, str) and (check := _DATA_CHECKS.get(kind)) is not None:
        problems.extend(check(data))
    return problems, when


_TOP = frozenset(TOP)
_TYPES_SEEN: set[str] = set()
"""Event types that passed the type check (str, at most 200 characters, TYPE): the same answer again."""
_NO_DATA: Mapping[str, Any] = {}


def _health_data(data: Mapping[str, Any]) -> list[str]:
    score: Any = data.get("score")
    out: list[str] = []
    if "score" not in data:
        out.append("data.score: is required for health.updated")
    elif not (_number(score) and 0 <= score <= 100):
        out.append(f"data.score: must be a number 0-100, not {score!r:.40}")
    if "band" in data and data["band"] not in ("green", "yellow", "red"):
        out.append(f"data.band: must be green, yellow or red, not {data['band']!r:.40}")
    return out


def _usage_data(data: Mapping[str, Any]) -> list[str]:
    out = []
    if "feature" not in data:
        out.append("data.feature: is required for usage.feature_used")
    for key in ("feature", "product"):
        if key in data and not (isinstance(data[key], str) and 1 <= len(data[key]) <= 255):
            out.append(f"data.{key}: must be text of 1 to 255 characters")
    return out


def _account_data(data: Mapping[str, Any]) -> list[str]:
    fields = data.get("fields")
    if not isinstance(fields, Mapping) or not fields:
        return ["data.fields: is required for account.updated: an object of changed fields and their new values"]
    return [p for name, value in fields.items() if (p := _field_problem(str(name), value))]


def _task_data(data: Mapping[str, Any]) -> list[str]:
    task = data.get("task_id")
    if not isinstance(task, str) or not task:
        return ["data.task_id: is required for task.completed: the id of the completed task"]
    return []


_DATA_CHECKS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "health.updated": _health_data, "usage.feature_used": _usage_data, "account.updated": _account_data,
    "task.completed": _task_data}
"""The event types whose data is checked, and the check (others' data is any object)."""


def _field_problem(name: str, value: Any) -> str:
    where = f"data.fields.{name}"
    if CUSTOM_FIELD.fullmatch(name):
        return ""
    if name in TEXT_FIELDS:
        ok = isinstance(value, str) and (name != "name" or value.strip() != "")
        return "" if ok or (value is None and name != "name") else f"{where}: must be text"
    if name in DATE_FIELDS:
        ok = value is None or value == "" or (isinstance(value, str) and _iso_date(value))
        return "" if ok else f"{where}: must be a date YYYY-MM-DD (or null to clear it), not {value!r:.40}"
    if name == "arr":
        return "" if _number(value) and value >= 0 else f"{where}: must be a number 0 or more, not {value!r:.40}"
    if name == "health_score":
        ok = value is None or (_number(value) and float(value).is_integer() and 0 <= value <= 100)
        return "" if ok else f"{where}: must be a whole number 0-100, not {value!r:.40}"
    if name == "health_band":
        return "" if value in ("", "green", "yellow", "red") else f"{where}: must be green, yellow, red or empty"
    return f"{where}: is not an account field; the fields are {FIELD_NAMES}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _kind(value: Any) -> str:
    names = {list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 date-time with a zone as an aware datetime; None for anything else."""
    if not isinstance(value, str) or not TIME.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value[:-1] + "+00:00" if value[-1] in "Zz" else value)
    except ValueError:
        return None


def parse_event(obj: Mapping[str, Any]) -> EventSignal:
    """A valid event (``validate_event`` found nothing) as the matcher's signal."""
    when = parse_time(obj["occurred_at"])
    assert when is not None, "validate_event first"
    return EventSignal(id=obj["id"], type=obj["type"], account_id=obj["account_id"], occurred_at=when,
                       data=dict(obj.get("data") or {}))


@dataclass(kw_only=True)
class Change:
    """What applying an event's facts found out, for the matcher."""

    previous_score: float | None = None
    """The health score before this event (health.updated)."""
    previous_band: str | None = None
    """The health band before this event (health.updated)."""
    first_feature_use: bool = False
    """The event's feature was never used before (usage.feature_used)."""
    first_product_use: bool = False
    """The event's product was never used before (usage.feature_used)."""
    previous: dict[str, Any] = field(default_factory=dict)
    """Old values of the changed fields (account.updated)."""
    notes: list[str] = field(default_factory=list)
    """What could not be done, in plain words (an unknown account, a value the CRM refused)."""


async def apply_facts(store: Store, crm: CRM, ev: EventSignal, account: Account | None) -> Change:
    """Apply a built-in event's facts to the store and the CRM; ``account`` as read before the change.

    Raises:
        RetryableError: the CRM could not be reached; processing is tried again later.
    """
    change = Change()
    if account is None and ev.type in ACCOUNT_FACTS:
        change.notes.append(f"account {ev.account_id} is not in the CRM: the CRM was not updated and no trigger "
                            "was evaluated; import or create the account, then send the event again with a new id")
    if ev.type == "health.updated":
        await _health(store, crm, ev, account, change)
    elif ev.type == "usage.feature_used":
        await _usage(store, crm, ev, account, change)
    elif ev.type == "account.updated" and account is not None:
        fields = dict(ev.data["fields"])
        data = account_data(account, None)
        for name in fields:
            found, old = (True, account.owner_id) if name in ("owner", "owner_id") else lookup(data, name)
            if found:
                change.previous[name] = old
        await _update(crm, ev.account_id, fields, change)
    return change


async def _health(store: Store, crm: CRM, ev: EventSignal, account: Account | None, change: Change) -> None:
    score, band = float(ev.data["score"]), str(ev.data.get("band") or "")
    at = ev.occurred_at
    prior = await store.last_health(ev.account_id, before=at)
    here = await store.health_since(ev.account_id, at)
    again = any(when == at and value == score for when, value, _ in here)
    if prior is None and account is not None and account.health_score is not None:
        # No history yet: the CRM's score is the one before, unless an earlier try of this very event
        # wrote it already; then the score before is the one that try kept as previous.
        if again and account.health_score == round(score) and account.previous_health_score is not None:
            prior = (float(account.previous_health_score), "")
        else:
            prior = (float(account.health_score), account.health_band)
    if prior is not None:
        change.previous_score, change.previous_band = prior[0], prior[1] or None
    if not again:
        await store.add_health(ev.account_id, at, score, band)
    if account is None or any(when > at for when, _, _ in here):
        return  # a later score is in force already: the CRM keeps it
    changes: dict[str, Any] = {"health_score": round(score)}
    if band:
        changes["health_band"] = band
    if change.previous_score is not None:
        changes["previous_health_score"] = round(change.previous_score)
    await _update(crm, ev.account_id, changes, change)


async def _usage(store: Store, crm: CRM, ev: EventSignal, account: Account | None, change: Change) -> None:
    for kind in ("feature", "product"):
        name = ev.data.get(kind)
        if not name:
            continue
        first = await store.record_use(ev.account_id, kind, name, ev.occurred_at, ev.id)
        if not first:  # tried before and stopped half-way: the first use is still this event's
            found = await store.first_use(ev.account_id, kind, name)
            first = found is not None and found[1] == ev.id
        if kind == "feature":
            change.first_feature_use = first
        else:
            change.first_product_use = first
        if account is not None and isinstance(crm, UsageNotes):
            await crm.note_usage(ev.account_id, name, ev.occurred_at.date())


async def _update(crm: CRM, account_id: str, changes: dict[str, Any], change: Change) -> None:
    try:
        await crm.update_account(account_id, changes)
    except PermanentError as exc:
        change.notes.append(f"the CRM refused the change ({exc}); the event is stored and the CRM keeps its old values")
