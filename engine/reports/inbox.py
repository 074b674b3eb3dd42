"""The task inbox: a person's open tasks across accounts, and completing one.

Completing a task from csops does what a ``task.completed`` event does, once: while the task's
run is going, the event (with an id made from the task id, so a second completion is a
duplicate the store drops) goes through the ingestor to the run, which completes the task in the
CRM itself (once: its change goes through the effect ledger) and moves on. When the run has
ended nobody waits on the task: csops completes it in the CRM directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from engine.errors import CsopsError
from engine.runtime.runtasks import close_task, get_task, tasks
from engine.store.store import Store
from engine.store.store_models import RunTaskRow

__all__ = ["Completed", "TaskClosed", "UnknownTask", "complete_task", "event_id_for", "list_tasks", "task_data"]


class UnknownTask(CsopsError, LookupError):
    """No run created a task with this id."""


class TaskClosed(CsopsError, ValueError):
    """The task was closed (cancelled) when its run ended: there is nothing left to complete."""


@dataclass(frozen=True, kw_only=True)
class Completed:
    """What completing a task did."""

    task_id: str
    run_id: str
    how: Literal["event", "crm", "already"]
    """event: a task.completed event went to the running run; crm: its run had ended, the CRM task
    was completed directly; already: it was completed before (nothing was done again)."""
    event_id: str = ""


def event_id_for(task_id: str) -> str:
    """The id of the ``task.completed`` event csops sends for a task: the same every time."""
    return f"csops-task-completed:{task_id}"


def task_data(row: RunTaskRow, today: date) -> dict[str, Any]:
    """A task as plain data (CLI JSON, API, console)."""
    return {"task_id": row.task_id, "account_id": row.account_id, "title": row.title, "assignee": row.assignee,
            "due": row.due.isoformat() if row.due else None, "status": row.status,
            "overdue": row.status == "open" and row.due is not None and row.due < today,
            "playbook": row.playbook, "run_id": row.run_id, "step": row.step,
            "created_at": row.created_at.isoformat(), "escalations": row.escalations,
            "closed_at": row.closed_at.isoformat() if row.closed_at else None}


async def list_tasks(store: Store, *, today: date, owner: str | None = None, overdue: bool = False,
                     crm: Any = None, limit: int = 100) -> list[dict[str, Any]]:
    """Open tasks (of ``owner`` when given; only those past due with ``overdue``), soonest due first.

    With ``crm``, each listed task is checked in the CRM first (one call per task): one completed
    or cancelled there since csops last looked is recorded so and left out.
    """
    rows = await tasks(store, owner=owner, overdue_on=today if overdue else None, limit=limit)
    if crm is not None:
        kept = []
        for row in rows:
            found = await crm.get_task(row.task_id)
            if found is not None and found.status in ("completed", "cancelled"):
                await close_task(store, row.task_id, found.status)
                continue
            kept.append(row)
        rows = kept
    return [task_data(r, today) for r in rows]


async def complete_task(store: Store, task_id: str, *, ingest: Callable[[list[dict[str, Any]]], Awaitable[Any]],
                        crm: Any, now: datetime | None = None) -> Completed:
    """Complete a task as a ``task.completed`` event would, once however often it is called.

    Args:
        ingest: Takes a batch of events (engine.triggers.ingest.Ingestor.ingest, with or without processing).
        crm: The CRM, for a task whose run has ended.

    Raises:
        UnknownTask: no run created a task with this id.
        TaskClosed: the task was cancelled when its run ended.
    """
    at = now or datetime.now(UTC)
    row = await get_task(store, task_id)
    if row is None:
        raise UnknownTask(f"no run created a task {task_id!r}; `csops tasks` lists the open ones")
    if row.status == "cancelled":
        raise TaskClosed(f"task {task_id} was closed when its run ended ({row.closed_at:%Y-%m-%d}); "
                         "there is nothing to complete")
    if row.status == "completed":
        return Completed(task_id=task_id, run_id=row.run_id, how="already", event_id=event_id_for(task_id))
    run = await store.get_run(row.run_id)
    if run is not None and run.ended_at is None:
        event = {"id": event_id_for(task_id), "type": "task.completed", "account_id": row.account_id,
                 "occurred_at": at.isoformat(), "data": {"task_id": task_id, "by": "csops tasks"}}
        await ingest([event])
        how: Literal["event", "crm"] = "event"
    else:
        found = await crm.get_task(task_id)
        if found is not None and found.status == "open":
            await crm.update_task(task_id, status="completed")
        how = "crm"
    await close_task(store, task_id, "completed", at)
    return Completed(task_id=task_id, run_id=row.run_id, how=how, event_id=event_id_for(task_id) if how == "event"
                     else "")
