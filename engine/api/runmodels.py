"""The response and request bodies of the runs, decisions, explain and failed-events routers, and the
converters from the engine's records to them (engine/api/api_runs.py serves them; csops runs prints them).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from engine.runtime.runcontrol import Live, RunDetail
from engine.store.store_models import AuditRow, DecisionRecord, EventRecord, RunRecord


class RunOut(BaseModel):
    """One run of a playbook for an account."""

    run_id: str = Field(description="The workflow id: pb:{playbook}:{account}:{occurrence}")
    temporal_run_id: str
    playbook: str
    version: str = Field(description="The playbook's content hash the run was started with")
    account_id: str
    occurrence: str
    status: str = Field(description="running, completed, failed, exited or cancelled")
    reason: str
    trigger: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None


class RunsOut(BaseModel):
    """A page of runs, newest first."""

    runs: list[RunOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last")


class StepOut(BaseModel):
    """One step transition."""

    step: str
    status: str
    at: datetime
    detail: str


class LiveOut(BaseModel):
    """What Temporal says of the run now (its status query)."""

    current_step: str
    outcome: str
    open_tasks: list[str]
    steps_done: list[str]
    held: str = Field(default="", description="While an email waits for its send window: step, window, until when")


class RunDetailOut(BaseModel):
    """A run with its step timeline and, when Temporal answers, its live state."""

    run: RunOut
    timeline: list[StepOut]
    live: LiveOut | None = Field(description="null when Temporal did not answer (see live_error) or the run ended")
    live_error: str | None


class CancelIn(BaseModel):
    """Why the run is cancelled (kept in its record)."""

    reason: str = Field(default="", max_length=1000)


class CancelOut(BaseModel):
    """The cancel signal was sent; the run stops at once, whatever it waits on."""

    run_id: str
    status: Literal["cancelling"]


class DecisionOut(BaseModel):
    """One trigger decision: did a signal start a run, and why (not)."""

    id: int
    at: datetime
    playbook: str
    account_id: str
    signal: dict[str, Any]
    outcome: str = Field(description="started, suppressed or failed")
    reason: str
    message: str
    occurrence: str
    run_id: str
    seen: dict[str, Any]


class DecisionsOut(BaseModel):
    """Decisions, newest first."""

    decisions: list[DecisionOut]


class CheckOut(BaseModel):
    """One condition on starting a run now."""

    name: str
    state: str = Field(description="pass, fail, waiting or error")
    text: str
    seen: dict[str, Any]


class PlaybookExplainOut(BaseModel):
    """How each condition of one playbook stands for the account."""

    playbook: str
    checks: list[CheckOut]


class ExplainOut(BaseModel):
    """Explain for an account: every (or one) playbook's checks, and the latest decisions."""

    account_id: str
    playbooks: list[PlaybookExplainOut]
    decisions: list[DecisionOut]


class FailedEventOut(BaseModel):
    """An event set aside after failing every processing attempt."""

    id: str
    type: str
    account_id: str
    occurred_at: datetime
    received_at: datetime = Field(description="When it was first received")
    failed_at: datetime = Field(description="When its last allowed attempt failed")
    attempts: int = Field(description="Failed attempts")
    last_error: str = Field(description="Why the last attempt failed")
    data: dict[str, Any]


class FailedEventsOut(BaseModel):
    """Failed events, the latest to fail first."""

    events: list[FailedEventOut]


class RetryIn(BaseModel):
    """Failed events to queue again."""

    ids: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        min_length=1, max_length=1000, description="Event ids, as GET /v1/events/failed lists them (1 to 1,000)")


class RetryResultOut(BaseModel):
    """What became of one id."""

    id: str
    status: Literal["requeued", "unknown", "queued", "processed"] = Field(
        description="requeued (queued again, attempts reset); unknown (no such event); queued (not failed: still "
                    "waiting or being tried); processed (not failed: done)")


class RetryOut(BaseModel):
    """One result per id, in the order sent (a repeated id once)."""

    requeued: int
    results: list[RetryResultOut]


def failed_event_out(e: EventRecord) -> FailedEventOut:
    """The API shape of a failed event."""
    assert e.failed_at is not None
    return FailedEventOut(id=e.id, type=e.type, account_id=e.account_id, occurred_at=e.occurred_at,
                          received_at=e.received_at, failed_at=e.failed_at, attempts=e.attempts,
                          last_error=e.last_error, data=e.data)


def run_out(r: RunRecord) -> RunOut:
    """The API shape of a run."""
    return RunOut(**asdict(r))


def step_out(a: AuditRow) -> StepOut:
    """The API shape of a step transition."""
    return StepOut(step=a.step, status=a.status, at=a.at, detail=a.detail)


def decision_out(d: DecisionRecord) -> DecisionOut:
    """The API shape of a decision."""
    return DecisionOut(**asdict(d))


def live_out(live: Live) -> LiveOut:
    """The API shape of a run's live state."""
    return LiveOut(**asdict(live))


def run_detail_out(detail: RunDetail) -> RunDetailOut:
    """The API shape of a run with its timeline and live state."""
    return RunDetailOut(run=run_out(detail.run), timeline=[step_out(a) for a in detail.timeline],
                        live=None if detail.live is None else live_out(detail.live), live_error=detail.live_error)
