"""``csops forecast PLAYBOOK [--days 90] [--from-events FILE]``: the fleet-wide dry run.

Prints who the playbook would start for today (and why not for the others), then replays the
last ``--days`` days of stored events (or the events of FILE, from its first event's day) in a
sandbox and prints the tasks, alerts and emails per week and per person. A progress bar goes to
stderr when it is a terminal. Exit 0 done, 2 a usage problem (unknown playbook, unreadable file).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine.root import Root
from engine.store.store import Store
from engine.store.store_models import EventRow

__all__ = ["add_forecast", "read_events", "stored_events"]

EXIT_OK, EXIT_USAGE = 0, 2


def add_forecast(sub: Any) -> None:
    """Register ``csops forecast`` (its handler is ``runs_handler``, which csops calls)."""
    p = sub.add_parser("forecast", help="dry-run a playbook over every account: who it starts today, and what it "
                                        "would have done over past events (nothing sent)",
                       description="Who PLAYBOOK would start for today (with the reason for each account it would "
                                   "not), then a replay of past events through the matcher and simulated runs: the "
                                   "tasks, alerts and emails per week and per person. Nothing is sent; nothing is "
                                   "written to the CRM or the store. See docs/reporting.md.")
    p.add_argument("playbook", help="playbook id")
    p.add_argument("--days", type=int, default=90, help="how many days to replay (default 90)")
    p.add_argument("--from-events", default="", metavar="FILE",
                   help="replay these events (a JSON list or JSON lines of API events) instead of the stored ones")
    p.add_argument("--no-replay", action="store_true", help="only say who it would start for today")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(runs_handler=cmd_forecast)


def read_events(path: Path) -> list[dict[str, Any]]:
    """API event objects from a JSON list or JSON lines file.

    Raises:
        ValueError: unreadable, not JSON, or an item is not an object with occurred_at (the message says where).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        items = json.loads(text) if text.lstrip().startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not JSON ({exc.msg}); give a JSON list or one event per line") \
            from None
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("occurred_at"), str):
            raise ValueError(f"{path}: event {i} is not an event object with occurred_at")
        try:
            datetime.fromisoformat(item["occurred_at"].replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{path}: event {i} has occurred_at {item['occurred_at']!r}, not an ISO 8601 time") \
                from None
    return items


async def stored_events(store: Store, since: datetime) -> list[dict[str, Any]]:
    """The store's events that occurred at or after ``since``, as API event objects, oldest first."""
    query = select(EventRow).where(EventRow.occurred_at >= since).order_by(EventRow.occurred_at, EventRow.id)
    rows = await store.db.read(lambda s: [r.record() for r in s.scalars(query).all()])
    return [{"id": r.id, "type": r.type, "account_id": r.account_id, "occurred_at": r.occurred_at.isoformat(),
             "data": r.data} for r in rows]


def _bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\rreplaying [{'#' * filled}{'.' * (width - filled)}] day {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_forecast(args: argparse.Namespace) -> int:
    from engine.cli.reportcommon import emit, with_root
    from engine.reports.forecast import forecast_replay, load_fleet, would_start_today
    from engine.reports.text import forecast_text
    from engine.sim.simulate import SimulationError

    if args.days < 1:
        print("csops forecast: --days must be 1 or more", file=sys.stderr)
        return EXIT_USAGE
    try:
        from_file = read_events(Path(args.from_events)) if args.from_events else None
    except ValueError as exc:
        print(f"csops forecast: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def work(root: Root) -> int:
        playbook = root.playbooks().get(args.playbook)
        if playbook is None:
            print(f"csops forecast: there is no valid playbook {args.playbook!r} in {root.settings.playbooks} "
                  f"(known: {', '.join(sorted(root.playbooks())) or 'none'}; csops validate says why)", file=sys.stderr)
            return EXIT_USAGE
        crm, now = await root.crm(), datetime.now(UTC)
        try:
            report: dict[str, Any] = {"playbook": playbook.id, "today": await would_start_today(
                root.store, crm, playbook, now=now, calendar=root.calendar)}
            if not args.no_replay:
                if from_file is not None:
                    first = min((datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for e in from_file),
                                default=now - timedelta(days=args.days))
                    start, events = first.astimezone(UTC), from_file
                else:
                    start = now - timedelta(days=args.days)
                    events = await stored_events(root.store, start)
                accounts, contacts, users = await load_fleet(crm, root.coverage())
                began = time.monotonic()
                report["replay"] = await forecast_replay(
                    playbook, accounts=accounts, contacts=contacts, users=users, events=events, start=start,
                    days=args.days, calendar=root.calendar, coverage=root.coverage(),
                    progress=_bar if sys.stderr.isatty() else None)
                report["replay"]["seconds"] = round(time.monotonic() - began, 1)
        except SimulationError as exc:
            print(f"csops forecast: {exc}", file=sys.stderr)
            return EXIT_USAGE
        emit(report, args.format, forecast_text)
        return EXIT_OK
    return with_root("forecast", work)
