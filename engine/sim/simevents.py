"""Timed events of a simulation (``csops simulate --events``, a test case's ``events:``): when each
happens and what it does (an event type delivered to the runs, account changes, a task completed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = ["EVENT_KEYS", "SimEvent", "event_time", "parse_events"]


@dataclass(frozen=True, kw_only=True)
class SimEvent:
    """One timed event of a simulation."""

    at: datetime
    """When it happens (simulated time)."""
    at_text: str
    """``at`` as written, for messages."""
    type: str = ""
    """An event type delivered to the run (``health.updated``...), or empty."""
    id: str = ""
    """The event id (default ``sim-N``)."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """The event's data."""
    account: Mapping[str, Any] = field(default_factory=dict)
    """Account fields changed in the CRM at that time (as ``update`` steps write them)."""
    complete_task: str = ""
    """The step whose task is completed at that time (also delivers ``task.completed``)."""


EVENT_KEYS = ("at", "type", "id", "data", "account", "complete_task")


def parse_events(events: Sequence[Mapping[str, Any]], begin: datetime) -> list[SimEvent]:
    """Timed events in time order; ValueError says which one is wrong and how."""
    out: list[SimEvent] = []
    for i, ev in enumerate(events):
        where = f"event {i + 1}"
        if not isinstance(ev, Mapping):
            raise ValueError(f"{where}: expected a mapping with at: and type:, account: or complete_task:")
        unknown = sorted(set(ev) - set(EVENT_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(EVENT_KEYS)}")
        if "at" not in ev:
            raise ValueError(f"{where}: needs at: (an offset from the start such as 45d or 36h, or an ISO time)")
        if not any(ev.get(k) for k in ("type", "account", "complete_task")):
            raise ValueError(f"{where}: needs type: (an event type), account: (field changes) or complete_task: "
                             "(a step id)")
        for key in ("data", "account"):
            if not isinstance(ev.get(key, {}), Mapping):
                raise ValueError(f"{where}: {key}: must be a mapping")
        out.append(SimEvent(at=event_time(ev["at"], begin, where), at_text=str(ev["at"]), type=str(ev.get("type", "")),
                            id=str(ev.get("id") or f"sim-{i + 1}"), data=dict(ev.get("data") or {}),
                            account=dict(ev.get("account") or {}), complete_task=str(ev.get("complete_task") or "")))
    return sorted(out, key=lambda e: e.at)


def event_time(value: Any, begin: datetime, where: str) -> datetime:
    """An offset from ``begin`` (``45d``, ``36h``, ``P2D``) or an absolute ISO date or time (UTC unless given)."""
    from engine.language.durations import DurationError, parse_duration

    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value).strip()
    try:
        dur = parse_duration(text)
        if not dur.business_days:
            return begin + timedelta(seconds=dur.seconds)
    except DurationError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: at: {text!r} is neither an offset (45d, 36h, 2w) nor an ISO time "
                         "(2027-03-01T09:00:00Z)") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if at < begin:
        raise ValueError(f"{where}: at: {text} is before the simulation's start {begin.isoformat()}")
    return at
