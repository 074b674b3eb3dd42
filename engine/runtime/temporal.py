"""The one Temporal adapter of the trigger path: run statuses, and the start and signal callables.

The triggers (engine/triggers/) never import temporalio: they start a run through a ``Start`` and
deliver an event through a ``SignalRun``. This module builds both over a temporalio Client, and
holds the one map from Temporal's execution status to the store's run status (engine/runtime/
runrecord.py uses it too). ``CONTINUED_AS_NEW`` is not an ending: the run goes on under the same
workflow id in its next execution (a long run keeps its history small that way).
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from engine.errors import TemporaryOutage
from engine.language import model as m
from engine.language.context import Calendar
from engine.payloads.runtypes import Event
from engine.runtime.starter import begin_run
from engine.triggers.enrol import Start
from engine.triggers.ingest import SignalRun
from engine.triggers.signals import Decision

__all__ = ["ENDED", "ended_status", "outage", "temporal_signaller", "temporal_starter"]

ENDED: dict[WorkflowExecutionStatus, str] = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.TERMINATED: "cancelled",
    WorkflowExecutionStatus.CANCELED: "cancelled",
}
"""Temporal's status of an execution that ended -> the store's status. RUNNING and CONTINUED_AS_NEW
are absent: the run goes on."""

OUTAGE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED)


def ended_status(status: WorkflowExecutionStatus | None) -> str | None:
    """The store's status for a run Temporal describes with ``status``; None while it goes on."""
    return ENDED.get(status) if status is not None else None


def outage(exc: BaseException) -> BaseException:
    """``exc`` as a TemporaryOutage when it says Temporal is unreachable (it ends by itself), else as is."""
    if isinstance(exc, RPCError) and exc.status in OUTAGE:
        return TemporaryOutage(f"Temporal is unreachable: {exc}")
    return exc


def temporal_starter(client: Any, task_queue: str, *, calendar: Calendar) -> Start:
    """A ``Start`` over a temporalio Client: engine.runtime.starter.begin_run with the decision's occurrence
    and trigger, and the calendar the run counts business days with (processes get it from engine/root.py)."""
    cal = calendar.as_dict()

    async def start(playbook: m.Playbook, decision: Decision) -> tuple[str, str]:
        try:
            outcome, _, temporal_run_id = await begin_run(client, playbook, account_id=decision.account_id,
                                                          task_queue=task_queue, occurrence=decision.occurrence,
                                                          trigger=decision.trigger_data, calendar=cal)
        except RPCError as exc:
            raise outage(exc) from exc
        return outcome, temporal_run_id

    return start


def temporal_signaller(client: Client) -> SignalRun:
    """A ``SignalRun`` over a temporalio Client: the ``deliver_event`` signal; a run that is gone answers
    the status Temporal reports for it. A run that moved to its next execution between the signal and
    the look (continued as new) gets the signal again, once."""

    async def signal_run(run_id: str, event: Event) -> bool | str:
        handle = client.get_workflow_handle(run_id)
        for _ in range(2):
            try:
                await handle.signal("deliver_event", event)
                return True
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise outage(exc) from exc
            try:
                described = await handle.describe()
            except RPCError:
                return False
            if described.status is None:
                return False
            ended = ended_status(described.status)
            if ended is not None:
                return ended
        return False

    return signal_run
