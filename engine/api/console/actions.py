"""The console's actions, each a POST with the CSRF token, checked against the person's role, and audited.

ops may act on everything; a csm only on tasks assigned to them and runs of accounts they own.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from engine.api.console import PREFIX
from engine.api.console.pages import owns_account
from engine.api.console.web import Forbidden, deps, form, person, render
from engine.store.console_auth import Person, audit, snooze

__all__ = ["router"]

router = APIRouter(prefix=PREFIX, include_in_schema=False)
MAX_REASON = 1000
"""Longest cancel reason kept (as the API's)."""
MAX_SNOOZE = 90
"""A task can be snoozed at most this many days ahead."""


@router.post("/runs/{run_id:path}/cancel")
async def cancel(request: Request, run_id: str) -> Response:
    from engine.api.api_errors import status_of
    from engine.errors import Refusal
    from engine.runtime.runcontrol import cancel_run

    who = await person(request)
    fields = await form(request, who.csrf)
    d = deps(request)
    run = await d.store.get_run(run_id)
    if run is not None and not who.ops and not await owns_account(d, who.crm_user, run.account_id):
        raise Forbidden(f"only ops, or the account's owner, may cancel runs of {run.account_id}")
    reason = fields.get("reason", "").strip()[:MAX_REASON]
    if not reason:
        return _back(request, who, "Say why the run is cancelled (the reason is kept with the run).", status=422)
    try:
        await cancel_run(d.store, d.workflows, run_id, f"{reason} (by {who.email})")
    except Refusal as exc:
        return _back(request, who, exc.message, status=status_of(exc))
    await audit(d.store, actor=who.email, action="cancel_run", target=run_id, detail=reason)
    return RedirectResponse(f"{PREFIX}/runs/{quote(run_id, safe=':')}?note=cancelling", status_code=303)


async def _task(request: Request, who: Person, task_id: str) -> Any:
    """The run task ``task_id`` (the store's run_tasks), once ``who`` may act on it."""
    from engine.runtime.runtasks import get_task

    task = await get_task(deps(request).store, task_id)
    if task is None:
        raise Forbidden(f"no run created a task {task_id}")
    if not who.ops and task.assignee.casefold() != who.email.casefold():
        raise Forbidden("a csm may complete or snooze only their own tasks")
    return task


@router.post("/tasks/{task_id}/complete")
async def complete(request: Request, task_id: str) -> Response:
    from engine.reports.inbox import TaskClosed, UnknownTask, complete_task

    who = await person(request)
    await form(request, who.csrf)
    task = await _task(request, who, task_id)
    d = deps(request)
    # As a task.completed event from the CRM would (engine/reports/inbox.py): while its run goes,
    # the event goes through the ingestor and the run completes the CRM task once and moves on;
    # once the run has ended, the CRM task is completed directly. A second click does nothing more.
    try:
        done = await complete_task(d.store, task_id, ingest=d.ingestor.ingest, crm=d.crm, now=d.now())
    except (UnknownTask, TaskClosed) as exc:
        return _back(request, who, str(exc), status=409)
    if done.how != "already":
        await audit(d.store, actor=who.email, action="complete_task", target=task_id, detail=task.title)
    return RedirectResponse(f"{PREFIX}/inbox?note=completed", status_code=303)


@router.post("/tasks/{task_id}/snooze")
async def snooze_task(request: Request, task_id: str) -> Response:
    who = await person(request)
    fields = await form(request, who.csrf)
    task = await _task(request, who, task_id)
    d = deps(request)
    today = d.now().date()
    try:
        until = date.fromisoformat(fields.get("until", ""))
    except ValueError:
        until = today
    if not today < until <= today + timedelta(days=MAX_SNOOZE):
        return _back(request, who, f"Snooze to a day after today and at most {MAX_SNOOZE} days ahead.", status=422)
    await snooze(d.store, task_id, until, who.email)
    await audit(d.store, actor=who.email, action="snooze_task", target=task_id, detail=f"until {until}: {task.title}")
    return RedirectResponse(f"{PREFIX}/inbox?note=snoozed", status_code=303)


def _back(request: Request, who: Person, message: str, status: int) -> Response:
    return render(request, "error.html", who, status=status, title="Not done", message=message,
                  back=request.headers.get("referer", ""))



