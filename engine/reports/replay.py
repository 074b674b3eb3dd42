"""Drive a fleet through past days on a time-skipping clock: the daily scan each day, each event at its time.

The forecast (engine/reports/forecast.py) drives a sandbox (recording connectors, a scratch
store); a test drives real parts the same way to check the forecast against what happens live.
Both go through the real ingestor (facts, matcher, enrolment, delivery to runs) and the real
daily scan, so a run starts and hears events as it would have. The clock cannot go back, so the
past is replayed shifted forward by whole weeks (``shift``): weekdays stay weekdays; account dates
and event times are shifted by the same amount, and effects are reported at their original time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from connectors.base import Account

__all__ = ["Clock", "drive", "shift_account", "shift_event", "shift_for"]

DAY_START = timedelta(minutes=5)
"""When the daily scan runs on each replayed day (after midnight, as the scheduled scan does)."""


@dataclasses.dataclass
class Clock:
    """The simulated time, as the ingestor's ``now`` reads it (updated after every skip)."""

    at: datetime

    def __call__(self) -> datetime:
        return self.at


def shift_for(start: datetime, now: datetime) -> timedelta:
    """The whole number of weeks that puts ``start`` at or after ``now``."""
    weeks = max(0, -((start - now) // timedelta(weeks=1)))
    return timedelta(weeks=weeks)


def shift_account(account: Account, shift: timedelta) -> Account:
    """The account with its renewal and contract dates moved by ``shift``."""
    def moved(day: date | None) -> date | None:
        return None if day is None else day + shift
    return dataclasses.replace(account, renewal_date=moved(account.renewal_date),
                               contract_start=moved(account.contract_start))


def shift_event(event: Mapping[str, Any], shift: timedelta) -> dict[str, Any]:
    """The event (an API event object) with ``occurred_at`` moved by ``shift``."""
    at = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
    return {**event, "occurred_at": (at + shift).isoformat()}


async def drive(env: WorkflowEnvironment, clock: Clock, *, events: Sequence[Mapping[str, Any]], start: datetime,
                days: int, shift: timedelta, scan: Callable[[], Awaitable[Any]],
                ingest: Callable[[list[dict[str, Any]]], Awaitable[Any]],
                progress: Callable[[int, int], None] | None = None) -> None:
    """Replay ``days`` days from ``start`` (original times): each day the scan, then that day's events.

    ``events`` are API event objects with original times, in any order; those outside the days
    are left out. Events with the same time are ingested together.
    """
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    ordered = sorted((e for e in events if first <= _at(e) < first + timedelta(days=days)), key=_at)
    i = 0
    for day in range(days):
        begin = first + timedelta(days=day)
        await _skip(env, clock, begin + DAY_START + shift)
        await scan()
        while i < len(ordered) and _at(ordered[i]) < begin + timedelta(days=1):
            at = _at(ordered[i])
            batch = []
            while i < len(ordered) and _at(ordered[i]) == at:
                batch.append(shift_event(ordered[i], shift))
                i += 1
            await _skip(env, clock, at + shift)
            await ingest(batch)
        if progress is not None:
            progress(day + 1, days)
    await _skip(env, clock, first + timedelta(days=days) + shift)


def _at(event: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))


async def _skip(env: WorkflowEnvironment, clock: Clock, to: datetime) -> None:
    now = await env.get_current_time()
    if to > now:
        await env.sleep(to - now)
    clock.at = max(to, now)
