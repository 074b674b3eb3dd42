"""``csops runs``, ``csops runs show ID``, ``csops runs cancel ID``, ``csops explain`` and ``csops api``.

The first four read the store (and ask Temporal for live status and to cancel) directly, not
through the HTTP API; ``csops api`` serves the API (engine/api/app.py) with uvicorn. ``csops runs``
starts with a line for the daily scan while it runs and for a day after (``csops scan status``'s line:
window, pages, accounts read, runs started), since the runs it starts come from it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.language.textfmt import yellow

if TYPE_CHECKING:
    from engine.cli.cli_scan import ScanSeen
    from engine.config.settings import Settings
    from engine.runtime.runcontrol import RunDetail

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SCAN_SECONDS = 3.0
"""How long ``csops runs`` waits for the daily scan's status before listing the runs without it."""
SCAN_SHOWN = timedelta(days=1)
"""How long after it ended the daily scan is still shown above the runs."""
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parsers(sub: Any) -> None:
    """Register the subcommands on ``csops``'s subparsers; each sets ``runs_handler``."""
    runs = sub.add_parser("runs", help="list runs, show one's step timeline, cancel one",
                          description="List runs (newest first), or show / cancel one.")
    runs.set_defaults(runs_handler=cmd_runs, runs_action="list")
    _list_options(runs)
    runs_sub = runs.add_subparsers(dest="runs_action", metavar="ACTION")
    _list_options(runs_sub.add_parser("list", help="list runs (the default)"))
    show = runs_sub.add_parser("show", help="a run's step timeline and current step")
    show.add_argument("run_id", metavar="ID")
    show.add_argument("--format", choices=("text", "json"), default="text")
    cancel = runs_sub.add_parser("cancel", help="cancel a running run (signals it to stop)")
    cancel.add_argument("run_id", metavar="ID")
    cancel.add_argument("--reason", default="", help="why, for the run's record")
    exp = sub.add_parser("explain", help="would each playbook start a run for an account now, and why (not)",
                         description="For each playbook (or --playbook), how each condition on starting a run "
                                     "stands for the account now, and its latest trigger decisions.")
    exp.add_argument("--account", required=True, help="account id")
    exp.add_argument("--playbook", default=None, help="only this playbook")
    exp.add_argument("--format", choices=("text", "json"), default="text")
    exp.set_defaults(runs_handler=cmd_explain)
    api = sub.add_parser("api", help="serve the HTTP API (events in, runs and decisions out)",
                         description="Serve the HTTP API with uvicorn. Clients send CSOPS_API_TOKEN as a bearer "
                                     "token; without it the API does not start, unless --insecure-dev (loopback).")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=0, help="port (default CSOPS_API_PORT, else 8000)")
    api.add_argument("--insecure-dev", action="store_true",
                     help="serve without a token, on a loopback address only (csops up uses this)")
    api.add_argument("--processing", choices=("child", "in-process", "none"), default="child",
                     help="where the events it stores are processed: in a child process (the default: the API's "
                          "own process only takes events in), in its own process (one process; slower), or none "
                          "(`csops process` does it: docs/operations.md, Sizing)")
    api.add_argument("--no-processing", action="store_const", const="none", dest="processing",
                     help="the same as --processing none")
    api.set_defaults(runs_handler=cmd_api)


def _list_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--account", default=None, help="only this account's runs")
    p.add_argument("--playbook", default=None, help="only this playbook's runs")
    p.add_argument("--status", choices=("running", "completed", "failed", "exited", "cancelled"), default=None)
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--cursor", default=None, help="the next page (printed under a full page)")
    p.add_argument("--format", choices=("text", "json"), default="text")


def _settings(command: str) -> Settings | None:
    from engine.cli.common import load_settings

    return load_settings(command)


def _go(work: Callable[[], Awaitable[int]]) -> int:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(work())
    finally:
        loop.close()


def _workflows(settings: Settings) -> Any:
    from engine.runtime.runcontrol import TemporalWorkflows
    from engine.runtime.starter import connect

    return TemporalWorkflows(lambda: connect(settings))


def cmd_runs(args: argparse.Namespace) -> int:
    """``csops runs [list|show|cancel]``."""
    from engine.api.runmodels import run_detail_out, run_out
    from engine.cli.cli_scan import status_line
    from engine.errors import Refusal, Unavailable
    from engine.runtime.runcontrol import cancel_run, refreshed, run_detail
    from engine.store.store import Store

    settings = _settings("runs")
    if settings is None:
        return EXIT_USAGE
    action = args.runs_action or "list"

    async def work() -> int:
        store = Store(settings.database_url)
        try:
            if action == "show":
                detail = await run_detail(store, _workflows(settings), args.run_id)
                if detail is None:
                    print(f"csops runs show: there is no run {args.run_id!r}; csops runs lists them", file=sys.stderr)
                    return EXIT_FAILED
                print(run_detail_out(detail).model_dump_json(indent=2) if args.format == "json"
                      else _show_text(detail))
                return EXIT_OK
            if action == "cancel":
                done = await cancel_run(store, _workflows(settings), args.run_id, args.reason)
                print(f"cancelling {done.run_id}: it stops at once")
                return EXIT_OK
            try:
                page = await store.runs(account_id=args.account, playbook=args.playbook, status=args.status,
                                        limit=max(1, args.limit), cursor=args.cursor)
            except ValueError as exc:
                print(f"csops runs: {exc}", file=sys.stderr)
                return EXIT_USAGE
            runs = await refreshed(store, _workflows(settings), page.runs)
            scan = await _daily_scan(settings, args)
            if args.format == "json":
                print(json.dumps({"runs": [run_out(r).model_dump(mode="json") for r in runs],
                                  "next_cursor": page.next_cursor,
                                  "daily_scan": scan[0].as_dict(scan[1]) if scan else None}, indent=2))
                return EXIT_OK
            if scan is not None:
                print(status_line(scan[0].workflow_id, scan[0].status, scan[0].progress, scan[1]))
            for r in runs:
                ended = f" ended {r.ended_at:%Y-%m-%d %H:%M}" if r.ended_at else ""
                print(f"{r.run_id}  {r.status:<9}  started {r.started_at:%Y-%m-%d %H:%M}{ended}"
                      + (f"  ({r.reason})" if r.reason else ""))
            print(f"{len(page.runs)} run(s)" + (f"; more: --cursor {page.next_cursor}" if page.next_cursor else ""))
            return EXIT_OK
        except Refusal as exc:
            print(f"csops runs {action}: {exc.message}", file=sys.stderr)
            return EXIT_USAGE if isinstance(exc, Unavailable) else EXIT_FAILED
        finally:
            store.close()

    return _go(work)


async def _daily_scan(settings: Settings, args: argparse.Namespace) -> tuple[ScanSeen, str] | None:
    """The daily scan for the top of ``csops runs`` (it is not a run of an account, but the runs it
    starts come from it): the newest one while it runs or for a day after it ended; none on a page
    after the first, for one account or playbook, for another --status, or with Temporal unreachable
    (the runs are listed all the same)."""
    from temporalio.service import RPCError

    from engine.cli.cli_scan import last_scanned, newest_scan
    from engine.runtime.starter import connect

    if args.account or args.playbook or args.cursor:
        return None

    async def newest() -> ScanSeen | None:
        return await newest_scan(await connect(settings), query_seconds=SCAN_SECONDS)
    try:
        seen = await asyncio.wait_for(newest(), SCAN_SECONDS * 2)
    except (RuntimeError, OSError, RPCError, TimeoutError):
        return None
    if seen is None or (seen.closed_at is not None and datetime.now(UTC) - seen.closed_at > SCAN_SHOWN):
        return None
    if args.status and seen.status.lower().replace("canceled", "cancelled") != args.status:
        return None
    return seen, await last_scanned(settings)


def _show_text(detail: RunDetail) -> str:
    run = detail.run
    lines = [f"{run.run_id}: {run.status}" + (f" ({run.reason})" if run.reason else ""),
             f"  playbook {run.playbook} ({run.version}), account {run.account_id}, started {run.started_at}",
             f"  started by: {_started_by(run.trigger)}"]
    if detail.live is not None:
        lines.append(f"  now at step: {detail.live.current_step or '(between steps)'}")
        if detail.live.held:
            lines.append(f"  email held: {detail.live.held}")
    elif detail.live_error and run.ended_at is None:
        lines.append(f"  live status unavailable: {detail.live_error}")
    lines.append("  timeline:" if detail.timeline else "  timeline: no steps recorded yet")
    lines += [f"    {s.at:%Y-%m-%d %H:%M:%S}  {s.step:<24} {s.status}" + (f"  {s.detail}" if s.detail else "")
              for s in detail.timeline]
    return "\n".join(lines)


def _started_by(trigger: dict[str, Any]) -> str:
    """What started a run, from its trigger: the trigger type, who, and a forced start's reason."""
    words = str(trigger.get("type", "unknown"))
    if trigger.get("by"):
        words += f" by {trigger['by']}"
    if trigger.get("run"):
        words += f" from run {trigger['run']}"
    forced = trigger.get("forced")
    if isinstance(forced, dict):
        words += f"; FORCED past {forced.get('over', '?')}: {forced.get('reason', '')}"
    return words


def cmd_explain(args: argparse.Namespace) -> int:
    """``csops explain --account ID [--playbook P]``."""
    from engine.api.runmodels import decision_out
    from engine.errors import Refusal
    from engine.language.validate import Report, UsageError, validate_paths
    from engine.root import Root
    from engine.triggers.explainaccount import explain_account
    from engine.wiring import BuildError

    settings = _settings("explain")
    if settings is None:
        return EXIT_USAGE
    try:
        folder = validate_paths([str(settings.playbooks)])
    except UsageError as exc:
        print(f"csops explain: {exc}; no playbook to explain (CSOPS_PLAYBOOKS names the folder)", file=sys.stderr)
        folder = Report(files=[], playbooks={})
    valid = folder.playbooks
    invalid = [f for f in folder.files if any(p.severity == "error" for p in f.problems)]

    async def work() -> int:
        async with Root(settings) as root:  # the configured calendar and playbooks, as the runs see them
            try:
                crm = await root.crm()
            except BuildError as exc:
                print(f"csops explain: {exc}", file=sys.stderr)
                return EXIT_USAGE
            named = [f for f in invalid if f.declared and f.declared[0] == args.playbook]
            if named:  # not "unknown playbook": it exists, it is broken
                print(f"csops explain: {_invalid_line(named[0])}", file=sys.stderr)
                return EXIT_FAILED
            try:
                found = await explain_account(store=root.store, crm=crm, playbooks=valid,
                                              account_id=args.account, playbook=args.playbook,
                                              now=datetime.now(UTC), calendar=root.calendar)
                recent = await root.store.decisions(account_id=args.account, playbook=args.playbook, limit=10)
            except Refusal as exc:
                print(f"csops explain: {exc.message}", file=sys.stderr)
                return EXIT_FAILED
        if args.format == "json":
            print(json.dumps({"account_id": found.account_id, "playbooks": [
                {"playbook": pid, "checks": [{"name": c.name, "state": c.state, "text": c.text, "seen": c.seen}
                                             for c in checks]} for pid, checks in found.checks.items()],
                "invalid": [] if args.playbook else [
                    {"path": f.path, "playbook": f.declared[0] if f.declared else None,
                     "errors": sum(1 for p in f.problems if p.severity == "error")} for f in invalid],
                "decisions": [decision_out(d).model_dump(mode="json") for d in recent]}, indent=2))
            return EXIT_OK
        for pid, checks in found.checks.items():
            print(f"{pid} for {found.account_id}:")
            print("\n".join(f"  [{c.state}] {c.name}: {c.text}" for c in checks))
        if not args.playbook:
            for f in invalid:
                print(yellow(_invalid_line(f), sys.stdout))
        if recent:
            print("latest decisions:")
            print("\n".join(f"  {d.at:%Y-%m-%d %H:%M} {d.playbook}: {d.outcome} ({d.reason}) {d.message}"
                            for d in recent))
        return EXIT_OK

    return _go(work)


def _invalid_line(f: Any) -> str:
    """One line for a playbook file that does not validate: it is never considered, and how to see why."""
    from engine.language.textfmt import count

    errors = sum(1 for p in f.problems if p.severity == "error")
    pid = f"playbook {f.declared[0]} " if f.declared else ""
    return (f"{pid}({f.path}) does not validate ({count(errors, 'error')}): it starts no runs until fixed; "
            f"csops validate {f.path} says why")


def cmd_api(args: argparse.Namespace) -> int:
    """``csops api``: serve until Ctrl-C or SIGTERM."""
    settings = _settings("api")
    if settings is None:
        return EXIT_USAGE
    if not settings.api_token and not args.insecure_dev:
        print("csops api: CSOPS_API_TOKEN is not set: set it to a long random value (e.g. `openssl rand -hex 32`) "
              "and give it to the clients; or pass --insecure-dev to serve without one on this machine only",
              file=sys.stderr)
        return EXIT_USAGE
    insecure = args.insecure_dev and not settings.api_token
    if insecure and args.host not in LOOPBACK:
        print(f"csops api: --insecure-dev serves on a loopback address only, not {args.host}; set CSOPS_API_TOKEN "
              "to serve on the network", file=sys.stderr)
        return EXIT_USAGE
    port = args.port or settings.api_port
    if not 0 < port <= 65535:
        print(f"csops api: --port {port} is not a port; give a number from 1 to 65535", file=sys.stderr)
        return EXIT_USAGE
    if insecure:
        print(f"csops api: no CSOPS_API_TOKEN: serving WITHOUT a token on {args.host}:{port} (--insecure-dev; "
              "loopback only)", file=sys.stderr, flush=True)
    if args.processing == "none":
        print("csops api: --processing none: events are stored only; run `csops process` on the same store to "
              "process them (csops event queued shows what waits)", file=sys.stderr, flush=True)
    return _go(lambda: serve(settings, args.host, port, insecure, processing=args.processing))


async def serve(settings: Settings, host: str, port: int, insecure: bool, *, processing: str = "child") -> int:
    """Build the parts, serve the API on ``host:port``, close the parts; ``processing``: where stored events are
    processed (``child``: a child process, engine/cli/apichild.py; ``in-process``: here; ``none``: elsewhere)."""
    import uvicorn

    from engine.api.app import create_app
    from engine.cli.apichild import ProcessingChild, Server
    from engine.root import Root, reload_on_hangup
    from engine.runtime.runcontrol import TemporalWorkflows
    from engine.wiring import BuildError

    root = Root(settings)
    try:
        crm = await root.crm()
    except BuildError as exc:
        print(f"csops api: {exc}", file=sys.stderr)
        return EXIT_USAGE
    unsubscribe, suppressions = _unsubscribe(settings)
    ingestor, signals = await root.ingestor(), list[int]()  # the signals that stop the server, as they come
    child = ProcessingChild(ingestor.wake, signals=signals) if processing == "child" else None
    # Temporal is connected on first use (Root.client): the API serves reads while it is down.
    app = create_app(store=root.store, ingestor=ingestor, token=settings.api_token or None,
                     insecure=insecure, workflows=TemporalWorkflows(root.client), crm=crm, playbooks=root.playbooks,
                     calendar=root.calendar, door=await root.door(), unsubscribe=unsubscribe,
                     suppressions=suppressions, process=processing == "in-process",
                     alongside=child.running if child is not None else None,
                     processing=child.status if child is not None else None)
    app.state.sources = settings.config.sources  # POST /v1/sources/{name} (engine/sources)
    app.state.suppression_list = root.suppressions  # /v1/suppressions (engine/api/api_suppressions.py)
    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False), signals)
    # SIGHUP: validate the playbooks folder now (uvicorn handles INT and TERM only), the child's too
    reload_on_hangup(root.playbooks, also=child.hangup if child is not None else None)
    try:
        await server.serve()
    finally:
        await root.close()
        if suppressions is not None:
            suppressions.close()
    return EXIT_OK if server.started else EXIT_USAGE


def _unsubscribe(settings: Settings) -> tuple[Any, Any]:
    from connectors.mailpolicy import Unsubscribe
    from connectors.suppression import SuppressionList

    cfg = getattr(settings.config.email, "unsubscribe", None)
    if cfg is None:
        return None, None
    return Unsubscribe(cfg.url, cfg.mailto, cfg.secret.reveal()), SuppressionList(settings.database_url)
