"""The console's pages on accounts, playbooks and tasks: Accounts, an account, Playbooks, a playbook, Inbox."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine.api.console import PREFIX, queries
from engine.api.console.charts import bars, columns, line
from engine.api.console.web import deps, person, render
from engine.store.console_auth import snoozed

__all__ = ["router"]

router = APIRouter(prefix=PREFIX, include_in_schema=False)
HEALTH_DAYS = 90
"""The account page's health chart covers this many days back."""
INBOX = 200
"""Most tasks the inbox lists."""
RUN_DAYS = 30
PERF_DAYS = 90
"""The playbook page's performance covers runs started this many days back (as csops report's default)."""
"""The playbook page's runs chart covers this many days back."""
_reports: dict[str, tuple[Any, Any]] = {}
"""Folder → (fingerprint, validation report): validated again only when a file changed."""


@router.get("/accounts")
async def accounts(request: Request, q: str = "", mine: str = "") -> Response:
    who = await person(request)
    d = deps(request)
    db = queries.sql_crm(d.crm)
    found: list[Any] | None = None
    if db is not None:
        found = await queries.account_search(db, q.strip()[:200], owner=who.crm_user if mine else "")
    elif q.strip() and d.crm is not None:  # another CRM: look the id up as typed
        account = await d.crm.get_account(q.strip())
        found = [account] if account is not None else []
    names = await queries.user_names(db) if db is not None else {}
    return render(request, "accounts.html", who, q=q, accounts=found, names=names, searchable=db is not None,
                  mine=bool(mine and who.crm_user))


@router.get("/accounts/{account_id}")
async def account(request: Request, account_id: str) -> Response:
    from engine.errors import Refusal
    from engine.triggers.explainaccount import explain_account

    who = await person(request)
    d = deps(request)
    found = await d.crm.get_account(account_id) if d.crm is not None else None
    if found is None:
        return render(request, "error.html", who, status=404, title="No such account",
                      message=f"The CRM has no account {account_id}.")
    now = d.now()
    history = await d.store.health_since(account_id, now - timedelta(days=HEALTH_DAYS), prior=True)
    runs = (await d.store.runs(account_id=account_id, limit=50)).runs
    events = await d.store.events_for(account_id, limit=30, newest_first=True)
    try:
        explained = (await explain_account(store=d.store, crm=d.crm, playbooks=d.playbooks(), account_id=account_id,
                                           playbook=None, now=now, calendar=d.calendar)).checks
        explain_error = ""
    except Refusal as exc:
        explained, explain_error = {}, exc.message
    db = queries.sql_crm(d.crm)
    tasks = await queries.run_tasks(d.store, account=account_id, open_only=True)
    health, health_problem = await _health(request, d, account_id, now)
    names = await queries.user_names(db) if db is not None else {}
    return render(request, "account.html", who, account=found, owner=names.get(found.owner_id or "", ""),
                  chart=line(f"Health score of {found.name}, last {HEALTH_DAYS} days", history), history=history,
                  active=[r for r in runs if r.ended_at is None], past=[r for r in runs if r.ended_at is not None],
                  events=events, explained=explained, explain_error=explain_error, tasks=tasks,
                  decisions=await d.store.decisions(account_id=account_id, limit=20), health=health,
                  health_problem=health_problem,
                  measures_chart=bars("Points per measure (0-100)", [
                      (m["measure"], m["points"]) for m in (health or {}).get("measures", [])
                      if m["points"] is not None]))


async def _health(request: Request, d: Any, account_id: str, now: Any) -> tuple[dict[str, Any] | None, str]:
    """The account's score computed now with its breakdown (engine/health, as GET /v1/accounts/{id}/health),
    or None and why not (no health model beside the playbooks, or one with problems)."""
    from engine.health.hooks import file_beside, model_beside
    from engine.health.view import account_health

    books = d.playbooks()
    model = getattr(request.app.state, "health_model", None) or model_beside(books)
    if model is None:
        path = file_beside(books)
        return None, (f"{os.path.basename(path)} has problems, so no score is computed (csops validate says where)"
                      if path is not None else "")
    return await account_health(d.store, d.crm, model, account_id, now), ""


def _folder(d: Any) -> Path | None:
    folder = getattr(d.playbooks, "folder", None)
    return Path(folder) if folder is not None else None


def _validate(folder: Path) -> Any:
    from engine.language.validate import validate_paths
    from engine.root import fingerprint

    now = fingerprint(folder)
    cached = _reports.get(str(folder))
    if cached is None or cached[0] != now:
        cached = (now, validate_paths([str(folder)]))
        _reports[str(folder)] = cached
    return cached[1]


async def _files(d: Any) -> list[Any]:
    folder = _folder(d)
    if folder is None or not folder.is_dir():
        return []
    from engine.language.validate import UsageError

    try:
        report = await asyncio.to_thread(_validate, folder)
    except UsageError:
        return []
    return list(report.files)


@router.get("/playbooks")
async def playbooks(request: Request) -> Response:
    who = await person(request)
    d = deps(request)
    files = await _files(d)
    active = dict(await queries.active_by_playbook(d.store))
    rows = []
    for f in files:
        pid = f.playbook.id if f.playbook else (f.declared[0] if f.declared else "")
        errors = [p for p in f.problems if p.severity == "error"]
        rows.append({"id": pid, "file": os.path.basename(f.path), "title": f.playbook.title if f.playbook else "",
                     "valid": not errors, "errors": len(errors), "warnings": len(f.problems) - len(errors),
                     "active": active.get(pid, 0), "enabled": f.playbook.enabled if f.playbook else False})
    if not files:  # no folder to read (a test app, or playbooks given as a mapping): the loaded ones
        rows = [{"id": pid, "file": "", "title": pb.title, "valid": True, "errors": 0, "warnings": 0,
                 "active": active.get(pid, 0), "enabled": pb.enabled} for pid, pb in sorted(d.playbooks().items())]
    return render(request, "playbooks.html", who, rows=rows, folder=_folder(d))


@router.get("/playbooks/{name}")
async def playbook(request: Request, name: str) -> Response:
    who = await person(request)
    d = deps(request)
    files = await _files(d)
    found = next((f for f in files if os.path.basename(f.path) == name), None)
    found = found or next((f for f in files if f.playbook is not None and f.playbook.id == name), None)
    loaded = d.playbooks().get(name) if found is None else found.playbook
    if found is None and loaded is None:
        return render(request, "error.html", who, status=404, title="No such playbook",
                      message=f"There is no playbook {name} in the playbooks folder.")
    text = Path(found.path).read_text(encoding="utf-8") if found is not None else ""
    problems = sorted(found.problems, key=lambda p: (p.line, p.col)) if found is not None else []
    marked = {p.line for p in problems}
    pid = loaded.id if loaded is not None else (found.declared[0] if found and found.declared else name)
    since = d.now().date() - timedelta(days=RUN_DAYS - 1)
    per_day = await queries.runs_by_day(d.store, pid, since)
    performance = await _performance(request, d, pid)
    folder = _folder(d)
    file_name = os.path.relpath(found.path, folder) if found is not None and folder is not None else ""
    changed = datetime.fromtimestamp(os.stat(found.path).st_mtime, UTC) if found is not None else None
    return render(request, "playbook.html", who, pid=pid, playbook=loaded, file=found, file_name=file_name,
                  changed=changed, problems=problems,
                  lines=list(enumerate(text.splitlines(), start=1)), marked=marked,
                  versions=await queries.versions(d.store, pid),
                  runs_chart=columns(f"Runs of {pid} started per day, last {RUN_DAYS} days", per_day),
                  runs_total=sum(n for _, n in per_day), performance=performance, perf_days=PERF_DAYS)


async def _performance(request: Request, d: Any, pid: str) -> list[dict[str, Any]]:
    """Each version's figures from the performance report (engine/reports), with its step bars."""
    from engine.api.api_reports import refresh_open
    from engine.reports.performance import playbook_report

    await refresh_open(d, request)  # open runs brought up to date first (at most every 30 s)
    report = await playbook_report(d.store, since=d.now() - timedelta(days=PERF_DAYS), playbook=pid)
    out = []
    for book in report["playbooks"]:
        for v in book["versions"] if book["playbook"] == pid else []:
            rated = [(s["step"], round(s["execution_rate"] * 100)) for s in v["steps"]
                     if s["execution_rate"] is not None]
            out.append({**v, "chart": bars(f"Step execution rate of version {v['version'][:12]}", rated, unit="%"),
                        "suppressed": book["suppressed"]})
    return out


@router.get("/inbox")
async def inbox(request: Request, note: str = "") -> Response:
    from engine.api.api_reports import refresh_open
    from engine.api.console.pages import NOTES
    from engine.reports.inbox import list_tasks

    who = await person(request)
    d = deps(request)
    today = d.now().date()
    # Tasks runs created, as the store last saw them: open runs are refreshed from Temporal first
    # (at most every 30 s per API process, as GET /v1/tasks does), each listed task checked in the CRM.
    warnings = await refresh_open(d, request)
    mine = await list_tasks(d.store, today=today, owner=who.email, crm=d.crm, limit=INBOX)
    hidden = await snoozed(d.store, today)
    shown = [t for t in mine if t["task_id"] not in hidden]
    db = queries.sql_crm(d.crm)
    names = await queries.account_names(db, [t["account_id"] for t in mine]) if db is not None else {}
    return render(request, "inbox.html", who, today=today, names=names, warnings=warnings,
                  overdue=[t for t in shown if t["overdue"]], upcoming=[t for t in shown if not t["overdue"]],
                  snoozed=[(t, hidden[t["task_id"]]) for t in mine if t["task_id"] in hidden],
                  note=NOTES.get(note, ""), tomorrow=today + timedelta(days=1))
