"""What the ingestor answers and notes about each event: its results (IngestResult, Processed), which
playbooks listen to an event type, and the plain-words lines for refusals, failures and waits.

Apart from engine/triggers/ingest.py (the event path itself) to keep each module small.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any, Literal

from connectors.base import RetryableError
from engine.errors import TemporaryOutage
from engine.language import model as m
from engine.store.store import retry_delay
from engine.triggers.ingest_facts import outside_years, parse_time


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    """What became of one event of a batch."""

    id: str
    """The event's id ("" when it had none)."""
    status: Literal["accepted", "unknown_account", "duplicate", "rejected"]
    """accepted: stored for processing; unknown_account: stored for processing too, but the CRM has no
    account with that id (it starts nothing until the account exists; its facts are kept); duplicate:
    that id was stored before; rejected: invalid, or refused by the store, and not stored."""
    errors: tuple[str, ...] = ()
    """Why it was rejected, each as "path: what is wrong"; for unknown_account, the warning."""
    decisions: tuple[str, ...] = ()
    """With ``process=True``: the trigger decisions it led to, one line each."""
    notes: tuple[str, ...] = ()
    """With ``process=True``: what could not be done (unknown account...) and where it was delivered."""


@dataclass(frozen=True, kw_only=True)
class Processed:
    """What processing one stored event did."""

    id: str
    """The event id."""
    type: str
    """The event type."""
    account_id: str
    """The account."""
    decisions: tuple[str, ...] = ()
    """Trigger decisions, one line each: ``playbook: started (started) start pb:...``."""
    delivered: tuple[str, ...] = ()
    """Runs (workflow ids) the event was delivered to."""
    notes: tuple[str, ...] = ()
    """What could not be done, in plain words."""
    error: str = ""
    """Set when processing failed, in plain words: the event is tried again after a back-off, or,
    after its last allowed attempt, set aside as failed."""
    cause: str = ""
    """When processing failed: the exception (type and message), as kept in the event's ``last_error``."""
    transient: bool = False
    """When processing failed: whether it was an outage (retried without limit, never set aside)."""


def listens(playbook: m.Playbook, event_type: str) -> bool:
    """Whether a trigger of the playbook can fire on an event of this type (others are not asked)."""
    return any(listens_one(trig, event_type) for trig in playbook.triggers)


def listening_to(playbooks: Mapping[str, m.Playbook]) -> Callable[[str], list[m.Playbook]]:
    """The playbooks with a trigger listening to an event type, worked out once per type (a processing round asks
    per event, and most of its events share a few types)."""
    found: dict[str, list[m.Playbook]] = {}

    def listening(event_type: str) -> list[m.Playbook]:
        books = found.get(event_type)
        if books is None:
            books = found[event_type] = [pb for pb in playbooks.values() if listens(pb, event_type)]
        return books
    return listening


def listens_one(trig: Any, event_type: str) -> bool:
    """Whether this trigger can fire on an event of this type."""
    if isinstance(trig, m.EventTrigger) and trig.type == event_type:
        return True
    if isinstance(trig, m.HealthDrop) and event_type == "health.updated":
        return True
    if isinstance(trig, m.NewUsage) and event_type == "usage.feature_used":
        return True
    return isinstance(trig, m.LifecycleChange | m.ContractMilestone) and event_type == "account.updated"


UNKNOWN = ("account_id: the CRM has no account {account!r}; the event is stored and its facts kept, but it starts "
           "nothing until the account exists (check the id, or import the account first)")
"""The warning of an ``unknown_account`` result."""


def storable_errors(obj: Mapping[str, Any]) -> list[str]:
    """What ``validate_event`` lets through but the store cannot keep: a time outside years 1-9999 once in
    UTC, data that is not plain JSON (NaN, infinity, nested past Python's limit)."""
    when = parse_time(obj["occurred_at"])
    problems = []
    try:
        if when is not None:
            when.astimezone(UTC)
    except OverflowError:
        problems.append(outside_years(obj["occurred_at"]))
    try:
        json.dumps(obj.get("data", {}), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        problems.append(f"data: must be plain JSON (text, finite numbers, true/false, null, lists, objects): "
                        f"{str(exc)[:120]}")
    return problems


def refusal_text(exc: Exception) -> str:
    """Why the store refused one event, in words (a database error's own message, not its SQL)."""
    orig = getattr(exc, "orig", None)
    said = str(orig if orig is not None else exc) or type(exc).__name__
    if getattr(exc, "detail", ""):  # PermanentError: what the database said is in the detail
        said = f"{said}: {exc.detail}"  # type: ignore[attr-defined]
    return f"(event): the store refused it: {said[:300]}"


WAITING = ("not processed yet: an earlier event of the account is still queued (being retried, or taken by "
           "another processor); it stays queued and is processed after that one")
"""The note on an accepted event ``ingest(process=True)`` could not process now."""


def failure_text(p: Processed, attempt: int, *, gave_up: bool, lease: timedelta) -> str:
    """What became of a failed attempt, in plain words."""
    if gave_up:
        return (f"could not process it ({p.cause}); that was attempt {attempt}, the last: it is set aside as failed "
                f"(csops event failed lists it; csops event retry {p.id} queues it again)")
    wait = int(retry_delay(attempt, lease).total_seconds())
    return (f"could not process it now ({p.cause}); it stays queued and is tried again in {wait} s "
            f"(attempt {attempt} failed)")


def notes_of(p: Processed) -> tuple[str, ...]:
    delivered = (f"delivered to {', '.join(p.delivered)}",) if p.delivered else ()
    return (*p.notes, *delivered, *((p.error,) if p.error else ()))


def is_outage(exc: BaseException) -> bool:
    """Whether a failure is an outage that ends by itself: a CRM, Temporal or the database
    unreachable, a timeout or rate limit. Such an event is retried without limit (never set aside):
    a Temporal restart of an hour must not turn every event of that hour into a failed one. (The
    Temporal adapter, engine/runtime/temporal.py, raises TemporaryOutage for Temporal's.)"""
    return isinstance(exc, (RetryableError, ConnectionError, TimeoutError, TemporaryOutage))


KNOWN_FOR = 600.0
"""Seconds an account the CRM had is taken as known without asking again (at ingest)."""


MISSING_FOR = 30.0
"""Seconds an account the CRM did not have is taken as unknown without asking again (at ingest)."""


ACCOUNT_CHECK = 2.0
"""Seconds ingest waits for the CRM to say which accounts it has."""
