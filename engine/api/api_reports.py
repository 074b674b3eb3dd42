"""The reports and the task inbox over HTTP: ``/v1/reports/...`` and ``/v1/tasks``.

The answers are the plain data of engine/reports (the same as ``--format json`` of the CLI), so
the console can render them as they are.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from engine.api.deps import ApiError, Authorised, errors

__all__ = ["refresh_open", "router"]

router = APIRouter(prefix="/v1")


def _since(text: str) -> datetime:
    from engine.reports.spans import parse_since

    try:
        return parse_since(text)
    except argparse.ArgumentTypeError as exc:
        raise ApiError(422, "bad_since", str(exc)) from None


@router.get("/reports/playbooks", tags=["reports"], responses=errors(401, 422),
            summary="Per playbook and version: runs, goal conversion, step execution rate, tasks, emails")
async def get_playbook_report(d: Authorised, since: str = "90d", playbook: str = "",
                              tolerance: Annotated[int, Query(ge=0, le=30 * 86400,
                                                              description="seconds a step may be late")] = 900,
                              refresh: bool = True) -> dict[str, Any]:
    from datetime import timedelta

    from engine.reports.performance import playbook_report

    start = _since(since)
    warnings = await refresh_open(d) if refresh else []
    data = await playbook_report(d.store, since=start, playbook=playbook, tolerance=timedelta(seconds=tolerance))
    return {**data, "warnings": warnings}


REFRESH_EVERY = 30.0
"""Seconds between two refreshes of the open runs by the API: a console reloading a page every few
seconds costs Temporal one pass per half minute, not one per page."""


async def refresh_open(d: Any, request: Request | None = None) -> list[str]:
    """Refresh the store's open runs through the API's Temporal (when it has one); warnings. With
    ``request`` (the inbox), at most every ``REFRESH_EVERY`` seconds per app."""
    from engine.reports.sync import refresh_open_runs

    updater = getattr(d.workflows, "refresh", None)
    if updater is None:
        return []
    if request is not None:
        state = request.app.state
        if time.monotonic() - getattr(state, "reports_refreshed", -REFRESH_EVERY) < REFRESH_EVERY:
            return []
        state.reports_refreshed = time.monotonic()
    count, problems = await refresh_open_runs(d.store, lambda run_id: updater(d.store, run_id))
    return [f"{len(problems)} of {count} open run(s) could not be refreshed: {problems[0]}"] if problems else []


@router.get("/reports/workload", tags=["reports"], responses=errors(401, 503),
            summary="Per person: open and overdue tasks, escalations, accounts by segment, capacity utilisation")
async def get_workload(d: Authorised, request: Request) -> dict[str, Any]:
    from engine.reports.workload import workload_report

    if d.crm is None:
        raise ApiError(503, "no_crm", "the API has no CRM to read accounts from")
    return await workload_report(d.store, d.crm, _coverage(request), today=d.now().astimezone(d.calendar.zone).date())


def _coverage(request: Request) -> Any:
    """The coverage model beside the playbooks, read once per app (None: no coverage file, or unreadable)."""
    state = request.app.state
    if not hasattr(state, "report_coverage"):
        from engine.config.config import ConfigError
        from engine.config.settings import Settings
        from engine.root import load_coverage_model

        try:
            state.report_coverage = load_coverage_model(Settings.load())
        except ConfigError:
            state.report_coverage = None
    return state.report_coverage


@router.get("/tasks", tags=["tasks"], responses=errors(401, 422),
            summary="Open tasks of runs, soonest due first (a CSM's inbox)")
async def get_tasks(d: Authorised, request: Request, owner: str | None = None, overdue: bool = False,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100, check: bool = True) -> dict[str, Any]:
    from engine.reports.inbox import list_tasks

    await refresh_open(d, request)
    found = await list_tasks(d.store, today=d.now().astimezone(d.calendar.zone).date(), owner=owner,
                             overdue=overdue, crm=d.crm if check else None, limit=limit)
    return {"tasks": found}


@router.post("/tasks/{task_id}/complete", tags=["tasks"], responses=errors(401, 404, 409, 503),
             summary="Complete a task as a task.completed event would: the run moves on, the CRM task is "
                     "completed once")
async def post_complete(task_id: str, d: Authorised) -> dict[str, Any]:
    from engine.reports.inbox import TaskClosed, UnknownTask, complete_task

    try:
        done = await complete_task(d.store, task_id, crm=d.crm, ingest=d.ingestor.ingest,
                                   now=d.now())
    except UnknownTask as exc:
        raise ApiError(404, "unknown_task", str(exc)) from None
    except TaskClosed as exc:
        raise ApiError(409, "task_closed", str(exc)) from None
    return {"task_id": done.task_id, "run_id": done.run_id, "how": done.how, "event_id": done.event_id}
