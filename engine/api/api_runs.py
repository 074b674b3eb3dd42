"""The API's read side and run control: the routes of runs, their step timeline and live status, cancel,
decisions, explain, and failed events (list, queue again).

What they do is shared with ``csops runs``, ``csops explain`` and the console, below the API: run detail,
refresh and cancel in engine/runtime/runcontrol.py, explain in engine/triggers/explainaccount.py. Those
raise the engine's errors and give the engine's records; here they become HTTP (engine/api/api_errors.py)
and the API's bodies (engine/api/runmodels.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from engine.api.deps import ApiError, Authorised, errors
from engine.api.runmodels import (
    CancelIn,
    CancelOut,
    CheckOut,
    DecisionsOut,
    ExplainOut,
    FailedEventsOut,
    PlaybookExplainOut,
    RetryIn,
    RetryOut,
    RetryResultOut,
    RunDetailOut,
    RunsOut,
    decision_out,
    failed_event_out,
    run_detail_out,
    run_out,
)
from engine.runtime.runcontrol import cancel_run, refreshed, run_detail
from engine.triggers.explainaccount import explain_account

__all__ = ["router"]

router = APIRouter(prefix="/v1")
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many (1 to 500)")]


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
    return run_detail_out(detail)


@router.post("/runs/{run_id}/cancel", response_model=CancelOut, status_code=202, tags=["runs"],
             summary="Cancel a running run", responses=errors(400, 401, 404, 409, 422, 503))
async def post_cancel(run_id: str, d: Authorised, body: CancelIn | None = None) -> CancelOut:
    sent = await cancel_run(d.store, d.workflows, run_id, body.reason if body else "")
    return CancelOut(run_id=sent.run_id, status=sent.status)


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
