"""``csops scan status``: where the daily scan is, in one line.

The newest ``DailyScan`` workflow in Temporal: its status and, while it runs, its ``progress`` query
(pages done, accounts read, runs started; engine/runtime/scanpages.py), else the ``scan`` memo it left; and
the last day the store has as scanned. Exit 0 shown, 1 no scan yet, 2 Temporal or the
configuration unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["add_parsers", "cmd_scan", "status_line"]

EXIT_OK, EXIT_NONE, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any) -> None:
    """Add ``scan status`` to the ``csops`` subcommands (its handler is ``runs_handler``)."""
    top = sub.add_parser("scan", help="the daily scan's progress",
                         description="The newest daily scan: status, pages, accounts read, runs started. "
                                     "Exit 0 shown, 1 no scan yet, 2 Temporal or the configuration unusable.")
    acts = top.add_subparsers(dest="scan_action", metavar="ACTION")
    acts.add_parser("status", help="one line: the newest daily scan's status and progress")
    top.set_defaults(runs_handler=cmd_scan, scan_action=None)


def status_line(workflow_id: str, status: str, progress: Mapping[str, Any], last_scanned: str) -> str:
    """The line ``csops scan status`` prints."""
    if not progress:
        figures = "no pages yet"
    else:
        figures = (f"window ({progress.get('since', '')}, {progress.get('today', '')}], {progress.get('pages', 0)} "
                   f"pages, {progress.get('accounts', 0)} accounts read, {progress.get('found', 0)} due, "
                   f"{progress.get('started', 0)} started, {progress.get('playbooks_left', 0)} playbooks with "
                   "pages left")
    return f"daily scan {workflow_id}: {status.lower()}, {figures}; last day scanned: {last_scanned or 'none'}"


def cmd_scan(args: argparse.Namespace) -> int:
    """Run ``csops scan status``."""
    from engine.config.config import ConfigError
    from engine.config.settings import Settings

    if args.scan_action != "status":
        print("csops scan: say status (csops scan --help)", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = Settings.load()
    except ConfigError as exc:
        print(f"csops scan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_status(settings))


async def _status(settings: Any) -> int:
    from temporalio.client import WorkflowExecutionStatus

    from engine.runtime.starter import connect
    from engine.store.store import Store
    from engine.triggers.scan import SCAN_NAME

    store = Store(settings.database_url)
    try:
        last = await store.last_scan(SCAN_NAME)
    finally:
        store.close()
    try:
        client = await connect(settings)
        newest = None
        async for wf in client.list_workflows("WorkflowType = 'DailyScan'", limit=1):
            newest = wf
    except RuntimeError as exc:
        print(f"csops scan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if newest is None:
        print(f"no daily scan has run yet; last day scanned: {last or 'none'}")
        return EXIT_NONE
    handle = client.get_workflow_handle(newest.id, run_id=newest.run_id)
    progress: Mapping[str, Any] = {}
    if newest.status == WorkflowExecutionStatus.RUNNING:
        progress = await handle.query("progress")
    else:
        memo = await newest.memo()
        progress = memo.get("scan") or {}
    status = newest.status.name if newest.status is not None else "unknown"
    print(status_line(newest.id, status, progress, last.isoformat() if last else ""))
    return EXIT_OK
