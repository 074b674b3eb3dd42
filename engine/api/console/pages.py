"""The console's pages on runs and decisions: Home, Runs, a run, Decisions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine.api.console import PREFIX, queries
from engine.api.console.charts import bars
from engine.api.console.web import deps, person, render
from engine.store.console_auth import recent_audit

__all__ = ["owns_account", "router"]

router = APIRouter(prefix=PREFIX, include_in_schema=False)
STATUSES = ("running", "completed", "failed", "exited", "cancelled")
PAGE = 50
"""Runs per page."""


@router.get("")
async def home(request: Request) -> Response:
    who = await person(request)
    d = deps(request)
    now: datetime = d.now()
    week = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    db = queries.sql_crm(d.crm)
    from engine.api.api_reports import refresh_open

    await refresh_open(d, request)  # the task figures read run_tasks: open runs first (at most every 30 s)

    async def none() -> None:
        return None
    # Independent reads, each on its own thread: the page costs the slowest, not the sum.
    active, tasks, bands, escalations, movers, failed, failed_events, actions = await asyncio.gather(
        queries.active_by_playbook(d.store), queries.task_counts(d.store, now.date()),
        queries.bands(db) if db is not None else none(), queries.escalations_since(d.store, week),
        queries.movers(d.store, week), queries.failed_runs(d.store, 10), d.store.failed_events(100),
        recent_audit(d.store, 10) if who.ops else none())
    return render(request, "home.html", who, active=active, active_total=sum(n for _, n in active),
                  active_chart=bars("Active runs by playbook", active), tasks=tasks, week=week,
                  escalations=escalations, bands=bands, movers=movers,
                  band_chart=bars("Accounts by health band", [(b or "no band", n) for b, n in bands or []]),
                  failed=failed, failed_events=len(failed_events), actions=actions or [])


@router.get("/runs")
async def runs(request: Request, playbook: str = "", account: str = "", status: str = "", owner: str = "",
               cursor: str = "") -> Response:
    who = await person(request)
    d = deps(request)
    status = status if status in STATUSES else ""
    next_cursor, problem = None, ""
    if owner:
        db = queries.sql_crm(d.crm)
        owned = await queries.owned_accounts(db, owner) if db is not None else []
        if account:
            owned = [a for a in owned if a == account]
        found = await queries.runs_of_accounts(d.store, owned, playbook=playbook or None, status=status or None,
                                               limit=PAGE)
        if db is None:
            problem = "The owner filter needs the built-in CRM; your CRM's owners are not read here."
    else:
        try:
            page = await d.store.runs(account_id=account or None, playbook=playbook or None, status=status or None,
                                      limit=PAGE, cursor=cursor or None)
        except ValueError as exc:
            page, problem = await d.store.runs(limit=PAGE), str(exc)
        found, next_cursor = page.runs, page.next_cursor
    return render(request, "runs.html", who, runs=found, next_cursor=next_cursor, problem=problem,
                  playbooks=sorted(d.playbooks()), statuses=STATUSES,
                  filters={"playbook": playbook, "account": account, "status": status, "owner": owner})


@router.get("/runs/{run_id:path}")
async def run_page(request: Request, run_id: str, note: str = "") -> Response:
    from engine.runtime.runcontrol import run_detail

    who = await person(request)
    d = deps(request)
    detail = await run_detail(d.store, d.workflows, run_id)
    if detail is None:
        return render(request, "error.html", who, status=404, title="No such run",
                      message=f"There is no run {run_id}.")
    run = detail.run
    events = await d.store.events_for(run.account_id, since=run.started_at, limit=100)
    tasks = await queries.run_tasks(d.store, run_id=run_id)
    decided = await d.store.decisions(account_id=run.account_id, playbook=run.playbook, limit=50)
    start = next((x for x in reversed(decided) if x.run_id == run_id and x.outcome == "started"), None)
    first = [("decision", start.at, str(start.signal.get("type") or start.signal.get("kind") or "trigger"),
              "started", start.message)] if start is not None else []
    rows = first + sorted([("step", a.at, a.step, a.status, a.detail) for a in detail.timeline]
                  + [("event", e.occurred_at, e.type, "received", e.id) for e in events], key=lambda r: r[1])
    may_cancel = run.ended_at is None and (who.ops or await owns_account(d, who.crm_user, run.account_id))
    return render(request, "run.html", who, run=run, live=detail.live, live_error=detail.live_error, rows=rows,
                  tasks=tasks, may_cancel=may_cancel, note=NOTES.get(note, ""))


NOTES = {"cancelling": "Cancel sent: the run stops at once, whatever it was waiting on.",
         "completed": "Completion sent: the run that created the task completes it in the CRM and goes on.",
         "snoozed": "Snoozed: the task is back in your inbox on the day you chose."}
"""Messages a redirect after an action may ask a page to show (by key, so no text comes from the URL)."""


async def owns_account(d: Any, crm_user: str, account_id: str) -> bool:
    """Whether the CRM user owns the account (a csm may act on their own accounts)."""
    if not crm_user:
        return False
    account = await d.crm.get_account(account_id) if d.crm is not None else None
    return account is not None and account.owner_id == crm_user


@router.get("/decisions")
async def decisions(request: Request, account: str = "", playbook: str = "", outcome: str = "") -> Response:
    who = await person(request)
    d = deps(request)
    found = await d.store.decisions(account_id=account or None, playbook=playbook or None, limit=200)
    if outcome:
        found = [x for x in found if x.outcome == outcome]
    return render(request, "decisions.html", who, decisions=found[:100], playbooks=sorted(d.playbooks()),
                  filters={"account": account, "playbook": playbook, "outcome": outcome},
                  now=datetime.now(UTC))
