"""``csops event send|import|failed|retry``, and the ``csops import`` parser (engine/cli/cli_import.py runs it).

``send`` and ``import`` go through the same Ingestor as the HTTP API, with the store, CRM and
Temporal of the settings, and process what they stored before they return, printing one line per
event and one per trigger decision. They use a Temporal client, so they end through
``engine.cli.main.run``'s ``os._exit``. ``failed`` and ``retry`` only read and write the settings' store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from engine.language.textfmt import red, shown, yellow
from engine.triggers.ingest import validate_event
from engine.triggers.ingest_notes import IngestResult, storable_errors

if TYPE_CHECKING:
    from engine.config.settings import Settings
    from engine.store.store import Store

T = TypeVar("T")

__all__ = ["add_parsers", "main"]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
BATCH = 500


def add_parsers(sub: Any) -> None:
    """Add ``event`` and ``import`` to the ``csops`` subcommands."""
    event = sub.add_parser("event", help="send events to csops (as POST /v1/events does)",
                           description="Send one event, or import a file of them, through the event pipeline: "
                                       "stored once per id, facts applied, triggers matched, delivered to running "
                                       "runs. See docs/events.md.")
    events = event.add_subparsers(dest="event_command", metavar="ACTION")
    send = events.add_parser("send", help="send one event",
                             description="Send one event. Exit 0 accepted or a duplicate, 1 rejected or not "
                                         "processed, 2 usage error or Temporal unreachable.")
    send.add_argument("--type", required=True, help="event type, e.g. health.updated or billing.invoice_overdue")
    send.add_argument("--account", required=True, help="account id")
    send.add_argument("--data", default="{}", help='the event data as a JSON object, e.g. \'{"score": 42}\'')
    send.add_argument("--id", default="", help="event id (default: a new random one; reuse one to resend safely)")
    send.add_argument("--occurred-at", default="", help="RFC 3339 time it happened (default: now)")
    imp = events.add_parser("import", help="send the events of a JSON-lines file",
                            description="Send every event of FILE (one JSON object per line). Exit 0 all accepted "
                                        "or duplicates, 1 some rejected, 2 unreadable file or Temporal unreachable.")
    imp.add_argument("file", metavar="FILE.jsonl", help="the events, one JSON object per line")
    failed = events.add_parser("failed", help="list events set aside after failing every attempt",
                               description="List the events that failed every processing attempt and were set "
                                           "aside, the latest to fail first (docs/events.md). Exit 0.")
    failed.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    events.add_parser("queued", help="how many events wait to be processed, and since when",
                      description="How many stored events are not processed yet and when the oldest came in: "
                                  "one that grows old means no processor runs (csops api processes unless "
                                  "--no-processing; then csops process does). Exit 0.")
    retry = events.add_parser("retry", help="queue failed events again",
                              description="Queue failed events again, their attempts reset; the processor takes them "
                                          "up at once. Exit 0 all queued again, 1 an id was not a failed event.")
    retry.add_argument("ids", nargs="+", metavar="ID", help="event ids, as csops event failed lists them")
    from engine.cli.cli_import import add_parser as add_import_parser

    add_import_parser(sub)


def main(args: argparse.Namespace) -> int:
    """Run ``event ...`` or ``import ...``; the exit status."""
    if args.command == "import":
        from engine.cli.cli_import import run_import

        return run_import(args)
    if args.event_command == "send":
        return _send(args)
    if args.event_command == "import":
        return _import_events(args)
    if args.event_command == "failed":
        return _failed(args)
    if args.event_command == "retry":
        return _retry(args)
    if args.event_command == "queued":
        return _queued()
    print("csops event: say send, import, queued, failed or retry (csops event --help)", file=sys.stderr)
    return EXIT_USAGE


def _settings(command: str) -> Settings | None:
    from engine.cli.common import load_settings as load

    return load(command)


def _send(args: argparse.Namespace) -> int:
    try:
        data = parse_text(args.data, "the value")
    except ValueError as exc:
        print(f"csops event send: --data: {exc}; write an object like '{{\"score\": 42}}'", file=sys.stderr)
        return EXIT_USAGE
    event = {"id": args.id or f"cli-{uuid.uuid4().hex}", "type": args.type, "account_id": args.account,
             "occurred_at": args.occurred_at or datetime.now(UTC).isoformat(), "data": data}
    return _run([(0, event)], "csops event send")


def parse_text(text: str, what: str) -> Any:
    """JSON within the API's limits (engine/api/api_body.py: nesting, number and text sizes), so a hostile
    line is one clear rejection, not a RecursionError or a minutes-long int conversion.

    Raises:
        ValueError: not JSON, or over a limit, in plain words naming ``what``.
    """
    from engine.api.api_body import BodyError, parse_json

    if not text.strip():
        raise ValueError(f"{what} is empty")
    try:
        return parse_json(text.encode("utf-8", "surrogatepass"))
    except BodyError as exc:
        syntax = exc.__context__  # parse_json raises from None, keeping the decoder's own error as context
        if isinstance(syntax, json.JSONDecodeError):
            raise ValueError(f"not JSON ({syntax.msg} at column {syntax.colno})") from None
        raise ValueError(exc.message.replace("the body", what)) from None


def _import_events(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"csops event import: cannot read {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    events: list[tuple[int, Any]] = []
    bad = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append((number, parse_text(line, "the line")))
        except ValueError as exc:
            print(f"{path}:{number}: rejected: {exc}")
            bad += 1
    status = _run(events, "csops event import", where=str(path))
    return EXIT_PROBLEMS if bad and status == EXIT_OK else status


def _run(events: Sequence[tuple[int, Any]], command: str, where: str = "") -> int:
    # Rejections need no Temporal: say them first, and connect only when something is left to send.
    status = EXIT_OK
    valid = []
    for number, obj in events:
        # what ingest would reject too (a time outside years 1-9999 in UTC), said before connecting
        problems = validate_event(obj) or storable_errors(obj)
        if problems:
            ident = obj.get("id") if isinstance(obj, dict) else None
            said = shown(ident) if ident else "(no id)"
            print(f"{where}:{number}: " * bool(where) + f"rejected {said}: {'; '.join(problems)}")
            status = EXIT_PROBLEMS
        else:
            valid.append((number, obj))
    if not valid:
        return status
    settings = _settings(command.removeprefix("csops "))
    if settings is None:
        return EXIT_USAGE
    try:
        results = asyncio.run(_ingest(settings, [obj for _, obj in valid]))
    except RuntimeError as exc:  # temporalio's "Failed client connect"
        from engine.cli.common import unreachable

        print(unreachable(command, settings.temporal_address, exc), file=sys.stderr)
        return EXIT_USAGE
    for (number, obj), result in zip(valid, results, strict=True):
        print(f"{where}:{number}: " * bool(where) + _line(result))
        for text in (*result.decisions, *result.notes):
            print(f"  {text}")
        if any("stays queued" in n or "set aside" in n for n in result.notes):
            status = EXIT_PROBLEMS
        if str(result.status) == "unknown_account":
            print(yellow(f"{where}:{number}: " * bool(where) + f"warning: {result.id}: the CRM has no account "
                         f"{obj['account_id']!r}, so no playbook starts for it; check the id (csops import accounts "
                         "adds accounts to the built-in CRM)", sys.stderr), file=sys.stderr)
            status = EXIT_PROBLEMS
    return status


def _failed(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print(f"csops event failed: --limit must be 1 or more, not {args.limit}", file=sys.stderr)
        return EXIT_USAGE
    found = _on_store("event failed", lambda store: store.failed_events(args.limit))
    if found is None:
        return EXIT_USAGE
    if not found:
        print("no failed events")
        return EXIT_OK
    rows = [(e.id, e.type, e.account_id, str(e.attempts), f"{e.received_at:%Y-%m-%d %H:%M:%S}",
             " ".join(e.last_error.split())) for e in found]
    head = ("ID", "TYPE", "ACCOUNT", "ATTEMPTS", "FIRST RECEIVED (UTC)", "LAST ERROR")
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head) - 1)]
    for row in (head, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    more = "; there may be more: raise --limit" if len(found) == args.limit else ""
    print(f"{len(found)} failed event(s){more}; csops event retry ID queues one again")
    return EXIT_OK


def _queued() -> int:
    found = _on_store("event queued", lambda store: store.queue())
    if found is None:
        return EXIT_USAGE
    count, oldest = found
    if oldest is None:
        print("no events queued: every stored event is processed or failed (csops event failed)")
        return EXIT_OK
    age = (datetime.now(UTC) - oldest).total_seconds()
    print(f"{count} event(s) queued, the oldest received {oldest:%Y-%m-%d %H:%M:%S} UTC ({age:.0f} s ago); "
          "if that stays old, no processor is running: csops api processes events unless --no-processing, "
          "csops process does beside such APIs")
    return EXIT_OK


_REQUEUED = {"requeued": "queued again with its attempts reset; the event processor (csops up, csops api, "
                         "or csops process beside `csops api --no-processing`) takes it up",
             "unknown": "no event has this id",
             "queued": "not a failed event: it is still queued (waiting for its turn or a retry)",
             "processed": "not a failed event: it was processed"}


def _retry(args: argparse.Namespace) -> int:
    outcomes = _on_store("event retry", lambda store: store.requeue(args.ids))
    if outcomes is None:
        return EXIT_USAGE
    for event_id, outcome in outcomes.items():
        print(f"{event_id}: {_REQUEUED[outcome]}")
    return EXIT_OK if all(o == "requeued" for o in outcomes.values()) else EXIT_PROBLEMS


def _on_store(command: str, work: Callable[[Store], Coroutine[Any, Any, T]]) -> T | None:
    """``work`` on the configured store, which is closed after; None when the settings are wrong (said)."""
    settings = _settings(command)
    if settings is None:
        return None
    from engine.store.store import Store

    store = Store(settings.database_url)
    try:
        return asyncio.run(work(store))
    finally:
        store.close()


def _line(r: IngestResult) -> str:
    if r.status == "duplicate":
        return f"duplicate {shown(r.id)}: an event with this id was received before; nothing was done again"
    if r.status == "rejected":
        return red("rejected", sys.stdout) + f" {shown(r.id)}: {'; '.join(r.errors)}"
    if str(r.status) == "unknown_account":  # the ingest's own verdict, where it gives one
        return f"accepted {shown(r.id)}: unknown account, stored (it starts nothing until the account exists)"
    return f"accepted {shown(r.id)}" + ("" if r.decisions else ": no trigger fired")


async def _ingest(settings: Settings, events: list[Any]) -> list[IngestResult]:
    from engine.root import Root

    root = Root(settings)
    try:
        await root.client()  # Temporal first: unreachable, nothing is stored and the caller says so
        ingest = await root.ingestor()
        results: list[IngestResult] = []
        for at in range(0, len(events), BATCH):
            results.extend(await ingest.ingest(events[at:at + BATCH], process=True))
        return results
    finally:
        await root.close()
