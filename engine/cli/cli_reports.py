"""``csops report playbooks|workload``, ``csops tasks [done ID]`` and ``csops forecast``.

Each command builds its parts from the composition root (engine/root.py) and prints the plain
data of engine/reports as text or JSON. Exit 0 done, 1 a task could not be completed, 2 a usage
or configuration problem.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import Any

from engine.cli.reportcommon import emit, with_root
from engine.reports.spans import parse_since, parse_span
from engine.root import Root

__all__ = ["emit", "register", "with_root"]

EXIT_OK, EXIT_FAILED = 0, 1
CONNECT_TIMEOUT = 5.0


def register(sub: Any) -> None:
    """Add the commands to ``csops``'s subparsers (each sets ``runs_handler``, which csops calls)."""
    rep = sub.add_parser("report", help="playbook performance and CSM workload",
                         description="Reports over the store: see docs/reporting.md for every figure.")
    rep_sub = rep.add_subparsers(dest="report_kind", metavar="REPORT", required=True)
    pbs = rep_sub.add_parser("playbooks", help="per playbook and version: runs, goal conversion, step execution "
                                               "rate, tasks and emails")
    pbs.add_argument("--since", type=parse_since, default="90d", help="runs started since: a span (90d, the default) "
                                                                      "or a date")
    pbs.add_argument("--playbook", default="", help="only this playbook")
    pbs.add_argument("--tolerance", type=parse_span, default="15m",
                     help="how late a step may be and still count as on schedule (default 15m)")
    pbs.add_argument("--no-refresh", action="store_true",
                     help="report what the store has; do not ask Temporal about runs still open first")
    pbs.add_argument("--format", choices=("text", "json"), default="text")
    pbs.set_defaults(runs_handler=cmd_playbooks)
    wl = rep_sub.add_parser("workload", help="per person: open and overdue tasks, escalations, accounts by segment, "
                                             "capacity utilisation (targets in coverage.yaml)")
    wl.add_argument("--format", choices=("text", "json"), default="text")
    wl.set_defaults(runs_handler=cmd_workload)
    tasks = sub.add_parser("tasks", help="open tasks of runs (a CSM's inbox); tasks done ID completes one",
                           description="List open tasks, soonest due first, or complete one as a task.completed "
                                       "event would (the run moves on; the CRM task is completed once).")
    _task_options(tasks)
    tasks.set_defaults(runs_handler=cmd_tasks)
    tasks_sub = tasks.add_subparsers(dest="tasks_action", metavar="ACTION")
    _task_options(tasks_sub.add_parser("list", help="list open tasks (the default)"))
    done = tasks_sub.add_parser("done", help="complete a task")
    done.add_argument("task_id", metavar="ID")
    done.set_defaults(runs_handler=cmd_task_done)
    from engine.cli.cli_forecast import add_forecast

    add_forecast(sub)


def _task_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--owner", default=None, metavar="EMAIL", help="only this person's tasks")
    p.add_argument("--overdue", action="store_true", help="only tasks past their due date")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--no-check", action="store_true", help="do not ask the CRM whether listed tasks are still open")
    p.add_argument("--no-refresh", action="store_true",
                   help="do not ask Temporal about runs still open first (their newest tasks may be missing)")
    p.add_argument("--format", choices=("text", "json"), default="text")


async def refresh_runs(root: Root) -> list[str]:
    """Refresh the store's open runs from Temporal; warnings to print (none when all went well)."""
    from engine.reports.sync import open_runs, refresh_open_runs
    from engine.runtime.runrecord import refresh

    if not await open_runs(root.store):
        return []
    try:
        client = await asyncio.wait_for(root.client(), CONNECT_TIMEOUT)
    except (RuntimeError, OSError, TimeoutError) as exc:
        return [f"cannot reach Temporal at {root.settings.temporal_address} ({str(exc).splitlines()[0][:120]}): "
                "runs still open are shown as the store last saw them"]
    count, problems = await refresh_open_runs(root.store, lambda run_id: refresh(root.store, client, run_id))
    return [f"{len(problems)} of {count} open run(s) could not be refreshed: {problems[0]}"] if problems else []


def cmd_playbooks(args: argparse.Namespace) -> int:
    from engine.reports.performance import playbook_report
    from engine.reports.text import performance_text

    async def work(root: Root) -> int:
        if not args.no_refresh:
            for warning in await refresh_runs(root):
                print(f"csops report: {warning}", file=sys.stderr)
        data = await playbook_report(root.store, since=args.since, playbook=args.playbook, tolerance=args.tolerance)
        emit(data, args.format, performance_text)
        return EXIT_OK
    return with_root("report", work)


def cmd_workload(args: argparse.Namespace) -> int:
    from engine.reports.text import workload_text
    from engine.reports.workload import workload_report

    async def work(root: Root) -> int:
        data = await workload_report(root.store, await root.crm(), root.coverage(),
                                     today=datetime.now(root.calendar.zone).date())
        emit(data, args.format, workload_text)
        return EXIT_OK
    return with_root("report", work)


def cmd_tasks(args: argparse.Namespace) -> int:
    from engine.reports.inbox import list_tasks
    from engine.reports.text import tasks_text

    async def work(root: Root) -> int:
        if not args.no_refresh:
            for warning in await refresh_runs(root):
                print(f"csops tasks: {warning}", file=sys.stderr)
        found = await list_tasks(root.store, today=datetime.now(root.calendar.zone).date(), owner=args.owner,
                                 overdue=args.overdue, crm=None if args.no_check else await root.crm(),
                                 limit=args.limit)
        emit(found, args.format, tasks_text)
        return EXIT_OK
    return with_root("tasks", work)


def cmd_task_done(args: argparse.Namespace) -> int:
    from engine.reports.inbox import TaskClosed, UnknownTask, complete_task

    async def work(root: Root) -> int:
        ingestor = await root.ingestor()
        try:
            done = await complete_task(root.store, args.task_id, crm=await root.crm(),
                                       ingest=lambda events: ingestor.ingest(events, process=True))
        except (UnknownTask, TaskClosed) as exc:
            print(f"csops tasks done: {exc}", file=sys.stderr)
            return EXIT_FAILED
        said = {"event": f"completed: the run {done.run_id} was told (event {done.event_id}) and completes it in the "
                         "CRM",
                "crm": f"completed in the CRM (its run {done.run_id} has ended)",
                "already": "already completed: nothing done again"}
        print(f"task {done.task_id} {said[done.how]}")
        return EXIT_OK
    return with_root("tasks", work)
