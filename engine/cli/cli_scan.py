"""``csops scan status``: where the daily scan is, in one line.

The newest ``DailyScan`` workflow in Temporal: its status and, while it runs, its ``progress`` query
(pages done, accounts read, runs started; engine/runtime/scanpages.py), else the ``scan`` memo it left; and
the last day the store has as scanned. Exit 0 shown, 1 no scan yet, 2 Temporal or the
configuration unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["ScanSeen", "add_parsers", "cmd_scan", "last_scanned", "newest_scan", "status_line"]

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
    if args.scan_action != "status":
        print("csops scan: say status (csops scan --help)", file=sys.stderr)
        return EXIT_USAGE
    from engine.cli.common import load_settings

    settings = load_settings("scan status")
    if settings is None:
        return EXIT_USAGE
    return asyncio.run(_status(settings))


@dataclass(frozen=True, kw_only=True)
class ScanSeen:
    """The newest ``DailyScan`` as Temporal has it."""

    workflow_id: str
    status: str
    """Temporal's status name: RUNNING, COMPLETED, FAILED..."""
    progress: Mapping[str, Any]
    """The ``progress`` query while it runs (its memo if the query fails), else its ``scan`` memo."""
    closed_at: datetime | None
    """When it ended (None while it runs)."""

    def as_dict(self, last_scanned: str) -> dict[str, Any]:
        """For ``--format json``."""
        return {"workflow_id": self.workflow_id, "status": self.status.lower(), "progress": dict(self.progress),
                "closed_at": self.closed_at.isoformat() if self.closed_at else None, "last_scanned": last_scanned}


async def newest_scan(client: Any, query_seconds: float = 5.0) -> ScanSeen | None:
    """The newest ``DailyScan`` workflow (None: none has run), with its progress."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    newest = None
    async for wf in client.list_workflows("WorkflowType = 'DailyScan'", limit=1):
        newest = wf
    if newest is None:
        return None
    memo = await newest.memo()
    progress: Mapping[str, Any] = memo.get("scan") or {}
    if newest.status == WorkflowExecutionStatus.RUNNING:
        handle = client.get_workflow_handle(newest.id, run_id=newest.run_id)
        # A scan whose worker is down cannot answer: its memo has the figures up to the last round.
        with contextlib.suppress(RPCError, asyncio.TimeoutError):
            progress = await handle.query("progress", rpc_timeout=timedelta(seconds=query_seconds))
    status = newest.status.name if newest.status is not None else "UNKNOWN"
    return ScanSeen(workflow_id=newest.id, status=status, progress=progress, closed_at=newest.close_time)


async def last_scanned(settings: Any) -> str:
    """The last day the store has as scanned (ISO), or ""."""
    from engine.store.store import Store
    from engine.triggers.scan import SCAN_NAME

    store = Store(settings.database_url)
    try:
        last = await store.last_scan(SCAN_NAME)
    finally:
        store.close()
    return last.isoformat() if last else ""


async def _status(settings: Any) -> int:
    from engine.runtime.starter import connect

    last = await last_scanned(settings)
    try:
        client = await connect(settings)
        seen = await newest_scan(client)
    except RuntimeError as exc:  # temporalio's "Failed client connect"
        from engine.cli.common import unreachable

        print(unreachable("csops scan", settings.temporal_address, exc), file=sys.stderr)
        return EXIT_USAGE
    if seen is None:
        print(f"no daily scan has run yet; last day scanned: {last or 'none'}")
        return EXIT_NONE
    print(status_line(seen.workflow_id, seen.status, seen.progress, last))
    return EXIT_OK
