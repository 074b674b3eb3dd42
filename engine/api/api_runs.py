"""The API's read side and run control: runs, their step timeline and live status, cancel, decisions,
explain, and failed events (list, queue again). ``csops runs`` and ``csops explain`` (engine/cli/cli_runs.py)
and the console share the functions here: they raise the engine's errors (engine.errors: ``NotFound``,
``Conflict``, ``Unavailable``), never an HTTP one; the API answers them at its boundary
(engine/api/api_errors.py), the CLI with exit codes.

Live status and cancel go to Temporal through :class:`Workflows`; :class:`TemporalWorkflows` is
the real one, tests pass a stand-in with the same two methods.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Query

from engine.api.deps import ApiError, Authorised, errors
from engine.api.runmodels import (
    CancelIn as CancelIn,
)
from engine.api.runmodels import (
    CancelOut as CancelOut,
)
from engine.api.runmodels import (
    CheckOut as CheckOut,
)
from engine.api.runmodels import (
    DecisionOut as DecisionOut,
)
from engine.api.runmodels import (
    DecisionsOut as DecisionsOut,
)
from engine.api.runmodels import (
    ExplainOut as ExplainOut,
)
from engine.api.runmodels import (
    FailedEventOut as FailedEventOut,
)
from engine.api.runmodels import (
    FailedEventsOut as FailedEventsOut,
)
from engine.api.runmodels import (
    LiveOut as LiveOut,
)
from engine.api.runmodels import (
    PlaybookExplainOut as PlaybookExplainOut,
)
from engine.api.runmodels import (
    RetryIn as RetryIn,
)
from engine.api.runmodels import (
    RetryOut as RetryOut,
)
from engine.api.runmodels import (
    RetryResultOut as RetryResultOut,
)
from engine.api.runmodels import (
    RunDetailOut as RunDetailOut,
)
from engine.api.runmodels import (
    RunOut as RunOut,
)
from engine.api.runmodels import (
    RunsOut as RunsOut,
)
from engine.api.runmodels import (
    StepOut as StepOut,
)
from engine.api.runmodels import (
    decision_out as decision_out,
)
from engine.api.runmodels import (
    failed_event_out as failed_event_out,
)
from engine.api.runmodels import (
    live_out as live_out,
)
from engine.api.runmodels import (
    run_out as run_out,
)
from engine.api.runmodels import (
    step_out as step_out,
)
from engine.errors import Conflict, NotFound, Unavailable
from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.store.runstore import ENDED_STATUSES
from engine.store.store import Store
from engine.store.store_models import RunRecord
from engine.triggers.matchproc import MatchTimeout, MatchWorker
from engine.triggers.signals import Check

STATUS_TIMEOUT = 3.0
"""Seconds a live status query may take before the run is shown without it."""

router = APIRouter(prefix="/v1")
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many (1 to 500)")]


class Workflows(Protocol):
    """Temporal, as far as runs need it."""

    async def status(self, run_id: str) -> dict[str, Any] | None:
        """The run's ``status`` query answer; None when Temporal does not know the run.

        Raises:
            Unavailable: Temporal cannot be reached (code ``temporal_unavailable``).
        """

    async def cancel(self, run_id: str, reason: str) -> Literal["cancelling", "not_found", "ended"]:
        """Signal ``cancel`` to the run, unless it is unknown or has ended.

        Raises:
            Unavailable: Temporal cannot be reached (code ``temporal_unavailable``).
        """


class TemporalWorkflows:
    """:class:`Workflows` over a Temporal client, connected on first use."""

    def __init__(self, client: Callable[[], Awaitable[Any]]) -> None:
        self._get = client
        self._client: Any = None

    async def _handle(self, run_id: str) -> Any:
        if self._client is None:
            try:
                self._client = await self._get()
            except (RuntimeError, OSError) as exc:
                raise Unavailable("temporal_unavailable", f"cannot reach Temporal: {str(exc).splitlines()[0][:200]} "
                                  "(is csops up running?)") from None
        return self._client.get_workflow_handle(run_id)

    async def status(self, run_id: str) -> dict[str, Any] | None:
        from temporalio.service import RPCError, RPCStatusCode

        handle = await self._handle(run_id)
        try:
            answer = await handle.query("status", rpc_timeout=_seconds(STATUS_TIMEOUT))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise Unavailable("temporal_unavailable", f"Temporal did not answer the status query: {exc.message}") \
                from None
        return dict(answer) if isinstance(answer, Mapping) else asdict(answer)

    async def refresh(self, store: Store, run_id: str) -> RunRecord | None:
        """Bring the store's record of the run up to date from Temporal (engine/runtime/runrecord.py)."""
        from temporalio.service import RPCError

        from engine.runtime.runrecord import refresh

        await self._handle(run_id)  # connects, or raises Unavailable
        try:
            return await refresh(store, self._client, run_id)
        except RPCError as exc:
            raise Unavailable("temporal_unavailable", f"Temporal did not answer: {exc.message}") from None

    async def cancel(self, run_id: str, reason: str) -> Literal["cancelling", "not_found", "ended"]:
        from temporalio.client import WorkflowExecutionStatus
        from temporalio.service import RPCError, RPCStatusCode

        handle = await self._handle(run_id)
        try:
            desc = await handle.describe()
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return "ended"
            await handle.signal("cancel", reason)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                # A signal to a run that just ended says NOT_FOUND too: it is gone either way.
                return "not_found"
            raise Unavailable("temporal_unavailable", f"Temporal refused the cancel signal: {exc.message}") from None
        return "cancelling"


def _seconds(n: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)


# --- answers ------------------------------------------------------------------------------------


# --- shared with the CLI ------------------------------------------------------------------------

async def run_detail(store: Store, workflows: Workflows | None, run_id: str) -> RunDetailOut | None:
    """The run, its timeline and its live state; None for an unknown run."""
    run = await store.get_run(run_id)
    if run is None:
        return None
    refresh = getattr(workflows, "refresh", None)
    if refresh is not None and run.ended_at is None:
        # The store's copy follows Temporal when looked at (engine/runtime/runrecord.py): the ending and
        # the step audit are brought up to date first. Temporal down: show what is recorded.
        with contextlib.suppress(Unavailable, TimeoutError):
            run = await asyncio.wait_for(refresh(store, run_id), STATUS_TIMEOUT) or run
    timeline = await store.timeline(run_id)
    live, live_error = None, None
    if workflows is None:
        live_error = "Temporal is not configured here"
    elif run.ended_at is None:
        try:
            answer = await asyncio.wait_for(workflows.status(run_id), STATUS_TIMEOUT)
        except (Unavailable, TimeoutError) as exc:
            live_error = str(exc) or f"Temporal did not answer within {STATUS_TIMEOUT:g} s"
        else:
            live = live_out(answer) if answer is not None else None
            live_error = None if answer is not None else "Temporal has no such run (its history may be gone)"
    return RunDetailOut(run=run_out(run), timeline=[step_out(a) for a in timeline], live=live, live_error=live_error)


async def refreshed(store: Store, workflows: Workflows | None, runs: list[RunRecord]) -> list[RunRecord]:
    """The runs, those recorded as running brought up to date from Temporal first (best effort:
    with Temporal unreachable or slow, as recorded)."""
    refresh = getattr(workflows, "refresh", None)
    if refresh is None or all(r.ended_at is not None for r in runs):
        return runs

    async def one(r: RunRecord) -> RunRecord:
        if r.ended_at is not None:
            return r
        with contextlib.suppress(Unavailable, TimeoutError):
            return await asyncio.wait_for(refresh(store, r.run_id), STATUS_TIMEOUT) or r
        return r
    return list(await asyncio.gather(*(one(r) for r in runs)))


async def cancel_run(store: Store, workflows: Workflows | None, run_id: str, reason: str) -> CancelOut:
    """Send ``cancel`` to a running run.

    Raises:
        NotFound: ``unknown_run``.
        Conflict: ``run_ended``, in the store or in Temporal.
        Unavailable: ``temporal_unavailable``, Temporal not reachable or not configured.
    """
    run = await store.get_run(run_id)
    if run is None:
        raise NotFound("unknown_run", f"there is no run {run_id!r}; csops runs lists them")
    if run.ended_at is not None or run.status in ENDED_STATUSES:
        raise Conflict("run_ended", f"run {run_id!r} already ended ({run.status}); there is nothing to cancel")
    if workflows is None:
        raise Unavailable("temporal_unavailable", "Temporal is not configured here, so runs cannot be cancelled")
    said = await workflows.cancel(run_id, reason)
    if said != "cancelling":
        raise Conflict("run_ended", f"run {run_id!r} is no longer running in Temporal ({said.replace('_', ' ')})")
    return CancelOut(run_id=run_id, status="cancelling")


@dataclass(frozen=True, kw_only=True)
class Explained:
    """Explain for one account."""

    account_id: str
    """The account."""
    checks: dict[str, list[Check]]
    """Each playbook's checks, by playbook id."""


async def explain_account(*, store: Store, crm: Any, playbooks: Mapping[str, Playbook], account_id: str,
                          playbook: str | None, now: datetime, calendar: Calendar,
                          matcher: MatchWorker | None = None) -> Explained:
    """The matcher's explain for the account and each playbook (or the one named).

    With ``matcher`` the conditions are evaluated in its child process, off the event loop, each
    playbook within the matcher's time bound: one over it is explained as a single ``error`` check.

    Raises:
        NotFound: ``unknown_playbook``, ``unknown_account``.
        Unavailable: ``crm_unavailable``, no CRM configured.
    """
    from engine.payloads.runcontext import read_view, view_data
    from engine.triggers.enrol import facts_for
    from engine.triggers.explain import explain
    from engine.triggers.matcher import today_of

    if playbook is not None and playbook not in playbooks:
        raise NotFound("unknown_playbook", f"there is no valid playbook {playbook!r}; "
                       f"known: {', '.join(sorted(playbooks)) or 'none'} (csops validate says why one is missing)")
    if crm is None:
        raise Unavailable("crm_unavailable", "no CRM is configured here, so accounts cannot be read")
    view = await read_view(crm, account_id)
    if view is None:
        raise NotFound("unknown_account", f"the CRM has no account {account_id!r}")
    data = view_data(view)
    account = data["account"]
    chosen = [playbooks[playbook]] if playbook is not None else [playbooks[k] for k in sorted(playbooks)]
    checks = {}
    for pb in chosen:
        facts = await facts_for(store, pb, account, now=now, calendar=calendar, contacts=tuple(data["contacts"]),
                                previous_score=account["health"].get("previous_score"))
        if matcher is None:
            checks[pb.id] = explain(pb, facts, today_of(facts))
            continue
        try:
            checks[pb.id] = await matcher.explain(pb, facts, today_of(facts))
        except MatchTimeout as exc:
            checks[pb.id] = [Check(name="conditions", state="error", text=str(exc),
                                   seen={"timeout_s": matcher.timeout})]
    return Explained(account_id=account_id, checks=checks)


# --- routes -------------------------------------------------------------------------------------

@router.get("/runs", response_model=RunsOut, tags=["runs"], summary="Runs, newest first, filtered",
            responses=errors(400, 401, 422))
async def list_runs(d: Authorised, account: str | None = None, playbook: str | None = None,
                    status: Literal["running", "completed", "failed", "exited", "cancelled"] | None = None,
                    limit: Limit = 50, cursor: str | None = None) -> RunsOut:
    try:
        page = await d.store.runs(account_id=account, playbook=playbook, status=status, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise ApiError(400, "bad_cursor", str(exc)) from None
    runs = await refreshed(d.store, d.workflows, page.runs)
    return RunsOut(runs=[run_out(r) for r in runs], next_cursor=page.next_cursor)


@router.get("/runs/{run_id}", response_model=RunDetailOut, tags=["runs"],
            summary="A run with its step timeline and live state", responses=errors(401, 404, 422))
async def get_run(run_id: str, d: Authorised) -> RunDetailOut:
    detail = await run_detail(d.store, d.workflows, run_id)
    if detail is None:
        raise ApiError(404, "unknown_run", f"there is no run {run_id!r}; GET /v1/runs lists them")
    return detail


@router.post("/runs/{run_id}/cancel", response_model=CancelOut, status_code=202, tags=["runs"],
             summary="Cancel a running run", responses=errors(400, 401, 404, 409, 422, 503))
async def post_cancel(run_id: str, d: Authorised, body: CancelIn | None = None) -> CancelOut:
    return await cancel_run(d.store, d.workflows, run_id, body.reason if body else "")


@router.get("/decisions", response_model=DecisionsOut, tags=["decisions"],
            summary="Trigger decisions, newest first", responses=errors(401, 422))
async def list_decisions(d: Authorised, account: str | None = None, playbook: str | None = None,
                         limit: Limit = 50) -> DecisionsOut:
    found = await d.store.decisions(account_id=account, playbook=playbook, limit=limit)
    return DecisionsOut(decisions=[decision_out(x) for x in found])


@router.get("/accounts/{account_id}/explain", response_model=ExplainOut, tags=["decisions"],
            summary="Would each playbook start a run for the account now, and why (not)",
            responses=errors(401, 404, 422, 503))
async def get_explain(account_id: str, d: Authorised, playbook: str | None = None) -> ExplainOut:
    found = await explain_account(store=d.store, crm=d.crm, playbooks=d.playbooks(), account_id=account_id,
                                  playbook=playbook, now=d.now(), calendar=d.calendar, matcher=d.explainer)
    recent = await d.store.decisions(account_id=account_id, playbook=playbook, limit=20)
    return ExplainOut(account_id=account_id, decisions=[decision_out(x) for x in recent], playbooks=[
        PlaybookExplainOut(playbook=pid, checks=[CheckOut(name=c.name, state=c.state, text=c.text, seen=c.seen)
                                                 for c in checks]) for pid, checks in found.checks.items()])


@router.get("/events/failed", response_model=FailedEventsOut, tags=["events"],
            summary="Events set aside after failing every processing attempt, latest first",
            responses=errors(401, 422))
async def list_failed_events(d: Authorised, limit: Limit = 100) -> FailedEventsOut:
    return FailedEventsOut(events=[failed_event_out(e) for e in await d.store.failed_events(limit)])


@router.post("/events/retry", response_model=RetryOut, tags=["events"],
             summary="Queue failed events again (attempts reset); per id what happened",
             responses=errors(400, 401, 422))
async def post_retry(body: RetryIn, d: Authorised) -> RetryOut:
    outcomes = await d.store.requeue(body.ids)
    return RetryOut(requeued=sum(1 for o in outcomes.values() if o == "requeued"),
                    results=[RetryResultOut(id=i, status=o) for i, o in outcomes.items()])
