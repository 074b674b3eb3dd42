"""Delivering a processed event to the account's running runs (the ingestor's routing)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from engine.payloads.runtypes import Event
from engine.store.store import Store
from engine.triggers.signals import EventSignal

__all__ = ["ENDED", "SignalRun", "deliver"]

SignalRun = Callable[[str, Event], Awaitable[bool | str]]
"""Delivers an event to a run (workflow id): True when delivered; False, or the status it ended with
(completed, failed, exited, cancelled), when the run is no longer there."""

ENDED = ("completed", "failed", "exited", "cancelled")


async def deliver(store: Store, signal_run: SignalRun, now: Callable[[], datetime], ev: EventSignal) -> list[str]:
    """Deliver the event to each running run of the account; a run Temporal no longer has is marked ended."""
    event = Event(id=ev.id, type=ev.type, account_id=ev.account_id, occurred_at=ev.occurred_at.isoformat(),
                  data=dict(ev.data))
    delivered, cursor = [], None
    while True:
        page = await store.runs(account_id=ev.account_id, status="running", limit=100, cursor=cursor)
        for run in page.runs:
            answer = await signal_run(run.run_id, event)
            if answer is True:
                delivered.append(run.run_id)
                continue
            status = answer if isinstance(answer, str) and answer in ENDED else "completed"
            await store.end_run(run.run_id, status=status, temporal_run_id=run.temporal_run_id,
                                at=now(), reason=f"ended in Temporal ({status}); noticed when event "
                                                 f"{ev.id} could not be delivered")
        if page.next_cursor is None:
            return delivered
        cursor = page.next_cursor
