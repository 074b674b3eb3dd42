"""Keeping the store's record of runs in step with Temporal, without costing the runs anything.

Temporal holds the truth about a run (its steps with their times, how it ended). The store keeps
a copy for listing, cooldowns and the step audit. Rather than have every run write to the store
(an activity per transition costs every run), the copy is brought up to date from Temporal when
it is looked at: ``refresh`` asks the run's ``status`` query (or its result once it ended) and
records the ending and one audit row per step transition, idempotently. ``is_running`` lets the
trigger path check a "running" record before it suppresses a new run because of it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from engine.payloads.runtypes import RunOutcome, RunStatus, StepResult
from engine.runtime.runtasks import save_tasks, task_rows
from engine.runtime.temporal import ended_status
from engine.store.store import Store
from engine.store.store_models import AuditRow, RunRecord

DETAIL = 500


def store_status(outcome: str) -> str:
    """A run's outcome as the store names it: completed, failed, exited or cancelled."""
    if outcome in ("completed", "failed", "cancelled"):
        return outcome
    return "exited"  # the exit criteria, or an exit step (success, failure or neutral)


def audit_rows(run_id: str, steps: dict[str, StepResult]) -> list[AuditRow]:
    """One row per step transition the run reports, oldest first (with the step's kind, planned
    time and, for email and alert steps, the messages sent, suppressed and capped)."""
    rows = []
    for step, res in steps.items():
        if not res.at:
            continue
        detail = res.result if isinstance(res.result, str) else json.dumps(res.result, default=str)
        rows.append(AuditRow(run_id=run_id, step=step, status=res.status, at=datetime.fromisoformat(res.at),
                             detail=(detail or "")[:DETAIL], kind=res.kind,
                             planned_at=datetime.fromisoformat(res.planned) if res.planned else None,
                             **_messages(res)))
    return sorted(rows, key=lambda r: r.at)


def _messages(res: StepResult) -> dict[str, int]:
    """Messages an email or alert step sent, and emails the mail policy held back (its markers)."""
    if res.status != "done" or res.kind not in ("email", "alert") or not isinstance(res.result, list):
        return {}
    held = {marker: sum(1 for r in res.result if r == marker) for marker in ("suppressed", "capped")}
    return {"sent": len(res.result) - sum(held.values()), **held}


async def _record_steps(store: Store, record: RunRecord, steps: dict[str, StepResult]) -> None:
    """The step audit and the tasks the run created (engine.runtime.runtasks)."""
    await store.add_audit(audit_rows(record.run_id, steps))
    await save_tasks(store, task_rows(record, steps))


async def refresh(store: Store, client: Client, run_id: str) -> RunRecord | None:
    """Bring the store's record of ``run_id`` up to date from Temporal; the record (None if unknown).

    A run Temporal no longer knows (its history was deleted after retention) is left as recorded.
    """
    record = await store.get_run(run_id)
    if record is None or record.ended_at is not None:
        return record
    handle = client.get_workflow_handle(run_id, result_type=RunOutcome)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return record
        raise
    ended = ended_status(described.status)
    if ended is None:
        status: RunStatus = await handle.query("status", result_type=RunStatus)
        await _record_steps(store, record, status.steps)
        return record
    at = described.close_time or datetime.now(UTC)
    reason = ended
    if ended == "completed":
        try:
            outcome = await handle.result()
        except WorkflowFailureError as exc:
            outcome = RunOutcome(outcome="failed", reason=str(exc.cause or exc))
        await _record_steps(store, record, outcome.steps)
        ended, reason = store_status(outcome.outcome), f"{outcome.outcome}: {outcome.reason}"
    await store.end_run(run_id, status=ended, reason=reason, at=at)
    return await store.get_run(run_id)


async def is_running(store: Store, client: Client, run_id: str) -> bool:
    """Whether a run the store has as running still runs (refreshing the record if it ended)."""
    record = await refresh(store, client, run_id)
    return record is not None and record.ended_at is None


def as_dict(record: RunRecord, timeline: list[AuditRow]) -> dict[str, Any]:
    """A run and its timeline as JSON-able data (for csops runs show and the API)."""
    return {"run_id": record.run_id, "playbook": record.playbook, "version": record.version,
            "account_id": record.account_id, "occurrence": record.occurrence, "status": record.status,
            "reason": record.reason, "trigger": record.trigger, "started_at": record.started_at.isoformat(),
            "ended_at": record.ended_at.isoformat() if record.ended_at else None,
            "timeline": [{"step": r.step, "status": r.status, "at": r.at.isoformat(), "detail": r.detail}
                         for r in timeline]}
