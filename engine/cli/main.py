"""The ``csops`` command line."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

from engine.cli.common import load_settings
from engine.language import report
from engine.language.textfmt import colour_verdicts, green, red, yellow
from engine.language.validate import UsageError, validate_paths

if TYPE_CHECKING:
    from engine.config.settings import Settings

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2

_settings = load_settings
"""The name before issue 12, for subcommand modules written against it (new code: cli.common.load_settings)."""


def _version() -> str:
    """The installed package's version (pyproject.toml), or "unknown" when run from an uninstalled tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("csops")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csops", description="Customer Success playbooks as code.")
    parser.add_argument("--version", action="version", version=f"csops {_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    val = sub.add_parser("validate", help="check playbooks and report every problem with its position",
                         description="Check playbook files (or every *.yaml below folders) and report each problem "
                                     "as path:line:col. Exit 0 clean, 1 problems, 2 usage or I/O error.")
    val.add_argument("paths", nargs="+", metavar="PATH", help="playbook files or folders")
    val.add_argument("--format", choices=("text", "json", "github"), default="text", help="output format")
    val.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    val.add_argument("--json-schema", action="store_true",
                     help="also run a plain JSON Schema validator over each file as a cross-check (slower)")
    val.add_argument("-q", "--quiet", action="store_true", help="print problems only, no summary")
    upp = sub.add_parser("up", help="run the embedded stack: Temporal dev server with UI, and the worker",
                         description="Start Temporal's dev server (state under CSOPS_HOME, default .csops/) and the "
                                     "worker; Ctrl-C stops all of it.")
    upp.add_argument("--temporal-address", default="", help="use this Temporal (host:port) instead of the dev server")
    upp.add_argument("--port", type=int, default=7233, help="dev server gRPC port (default 7233)")
    upp.add_argument("--ui-port", type=int, default=8233, help="dev server web UI port (default 8233)")
    upp.add_argument("--api-port", type=int, default=0, help="HTTP API port (default CSOPS_API_PORT, else 8000)")
    upp.add_argument("--skip-invalid", action="store_true",
                     help="start even when playbooks do not validate, without them (a warning per file); by "
                          "default csops up prints their problems and exits 2")
    start = sub.add_parser("start", help="start a run of a playbook for an account (a manual trigger)",
                           description="Start PLAYBOOK for ACCOUNT through the same checks as any trigger: the "
                                       "playbook needs a manual trigger, and the audience, one active run, the entry "
                                       "key and the cooldown apply. A start they refuse exits 1 naming the rule; "
                                       "--force --reason TEXT starts it anyway (recorded with the run). The run and "
                                       "its decision are recorded: csops runs, csops explain and events see it.")
    start.add_argument("playbook", help="playbook id")
    start.add_argument("--account", required=True, help="account id")
    start.add_argument("--occurrence", default="", help="occurrence key (default: entry.key, else none)")
    start.add_argument("--playbooks", default="", help="playbooks folder (default CSOPS_PLAYBOOKS or playbooks/)")
    start.add_argument("--force", action="store_true",
                       help="start past the audience, cooldown or a missing manual trigger (needs --reason)")
    start.add_argument("--reason", default="", help="why it is forced: recorded, shown by runs show and explain")
    start.add_argument("--by", default="", help="who starts it, for the record (default: your login name, else cli)")
    chk = sub.add_parser("check-config", help="check csops.yaml and test each configured connection",
                         description="Read the configuration (--config, else CSOPS_CONFIG, else ./csops.yaml, else "
                                     "the embedded defaults), report every problem in it as path:line:col, then set "
                                     "up each connector and test its connection. Exit 0 all work, 1 a connection has "
                                     "problems, 2 the configuration is invalid or unreadable.")
    chk.add_argument("--config", default="", metavar="PATH",
                     help="the config file (default CSOPS_CONFIG, else csops.yaml)")
    chk.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    chk.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                     help="how long each connection may take to answer (default 15)")
    chk.add_argument("--temporal", action="store_true", help="also connect to Temporal")
    from engine.cli.cli_runs import add_parsers as add_run_parsers

    add_run_parsers(sub)
    from engine.cli.cli_process import add_parsers as add_process_parsers

    add_process_parsers(sub)
    from engine.cli.cli_events import add_parsers as add_event_parsers

    add_event_parsers(sub)
    from engine.cli.cli_demo import add_parsers as add_demo_parsers

    add_demo_parsers(sub)
    from engine.cli.cli_sim import add_parsers as add_sim_parsers

    add_sim_parsers(sub)
    from engine.cli.cli_suppression import add_parsers as add_suppression_parsers

    add_suppression_parsers(sub)
    from engine.cli.cli_scan import add_parsers as add_scan_parsers

    add_scan_parsers(sub)
    from engine.cli.cli_reports import register as add_report_parsers

    add_report_parsers(sub)
    from engine.cli.cli_health import register as add_health_parsers

    add_health_parsers(sub)
    from engine.cli.cli_console import add_parsers as add_console_parsers

    add_console_parsers(sub)
    return parser


def cmd_up(args: argparse.Namespace) -> int:
    from engine.cli.up import UpOptions, check_playbooks, up

    settings = load_settings("up")
    if settings is None:
        return EXIT_USAGE
    for flag, port in (("--port", args.port), ("--ui-port", args.ui_port), ("--api-port", args.api_port)):
        if not 0 < port <= 65535 and (port or flag != "--api-port"):
            print(f"csops up: {flag} {port} is not a port; give a number from 1 to 65535", file=sys.stderr)
            return EXIT_USAGE
    if not check_playbooks(settings.playbooks, args.skip_invalid):
        return EXIT_USAGE
    return up(UpOptions(home=settings.home, temporal_address=args.temporal_address, port=args.port,
                        ui_port=args.ui_port, api_port=args.api_port or settings.api_port))


def started_by() -> str:
    """Who ``csops start`` records without ``--by``: the login name ($USER, else as getpass finds it:
    LOGNAME..., the password database), else ``cli`` (a container user with no name): never empty."""
    import getpass

    try:
        return (os.environ.get("USER") or getpass.getuser()).strip() or "cli"
    except (OSError, KeyError, ImportError):  # no variable and no passwd entry for this uid
        return "cli"


def cmd_start(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    from pathlib import Path

    from engine.root import Root
    from engine.triggers.door import StartRefused, start_by_hand
    from engine.wiring import BuildError

    settings = load_settings("start")
    if settings is None:
        return EXIT_USAGE
    if args.playbooks:
        settings = dataclasses.replace(settings, playbooks=Path(args.playbooks))
    if args.reason and not args.force:
        print("csops start: --reason goes with --force (it says why the rules are passed)", file=sys.stderr)
        return EXIT_USAGE

    async def go() -> int:
        async with Root(settings) as root:
            try:
                done = await start_by_hand(await root.door(), args.playbook, args.account, occurrence=args.occurrence,
                                           by=args.by.strip() or started_by(), force=args.force,
                                           reason=args.reason, via="cli")
            except StartRefused as exc:
                print(f"csops start: not started: {exc.message}", file=sys.stderr)
                return EXIT_USAGE if exc.code in ("unknown_playbook", "reason_required") else EXIT_PROBLEMS
            except BuildError as exc:
                print(f"csops start: {exc}", file=sys.stderr)
                return EXIT_USAGE
        print(f"started: {done.decision.run_id}" + (" (forced)" if done.decision.reason == "forced" else ""))
        return EXIT_OK

    from temporalio.service import RPCError

    try:
        return asyncio.run(go())
    except (RuntimeError, RPCError) as exc:  # temporalio's "Failed client connect"; the decision says failed
        from engine.cli.common import unreachable

        print(unreachable("csops start", settings.temporal_address, exc), file=sys.stderr)
        return EXIT_USAGE


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        result = validate_paths(args.paths, json_schema=args.json_schema)
    except UsageError as exc:
        print(f"csops validate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problems = result.problems

    @cache
    def lines(path: str) -> list[str]:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return fh.read().splitlines()
        except OSError:
            return []

    if args.format == "json":
        print(report.as_json(problems))
    elif args.format == "github":
        if problems:
            print(report.as_github(problems))
    else:
        if problems:
            print(colour_verdicts(report.as_text(problems, lines), sys.stdout))
        if not args.quiet:
            errors = sum(1 for p in problems if p.severity == "error")
            warnings = len(problems) - errors
            files = len(result.files)
            verdict = "no problems" if not problems else f"{errors} error(s), {warnings} warning(s)"
            out = sys.stderr if problems else sys.stdout
            print(f"{files} playbook file(s) checked: " + (red(verdict, out) if errors else
                                                          yellow(verdict, out) if problems else green(verdict, out)),
                  file=out)
    failing = [p for p in problems if p.severity == "error" or args.strict]
    return EXIT_PROBLEMS if failing else EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    import asyncio

    from engine.config.config import ConfigError
    from engine.config.settings import DEFAULT_CONFIG, Settings

    try:
        settings = Settings.load(config_file=args.config)
    except ConfigError as exc:
        if args.format == "json":
            print(json.dumps({"config": args.config or None, "ok": False, "error": str(exc),
                              "problems": json.loads(report.as_json(exc.problems)), "connections": []}, indent=2))
        elif exc.problems:
            for p in exc.problems:
                print(colour_verdicts(f"{p.path}:{p.line}:{p.col}: [{p.severity}] {p.message} ({p.rule})", sys.stdout))
                if p.hint:
                    print(f"  hint: {p.hint}")
            print(f"{exc}: fix the file and run csops check-config again; nothing was connected", file=sys.stderr)
        else:
            print(f"csops check-config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    loop = asyncio.new_event_loop()
    try:
        # not asyncio.run: it would wait at exit for a connect stuck on a thread past the timeout
        rows = loop.run_until_complete(_check_connections(settings, args.timeout, args.temporal))
    finally:
        loop.close()
    failing = sum(1 for _, _, problems in rows if problems)
    where = settings.config_file or None
    if args.format == "json":
        print(json.dumps({"config": where, "ok": not failing, "problems": [], "connections": [
            {"name": name, "kind": kind, "ok": not problems, "problems": problems} for name, kind, problems in rows]},
            indent=2))
        return EXIT_PROBLEMS if failing else EXIT_OK
    print(f"{where}: checking {len(rows)} connections" if where else
          f"no {DEFAULT_CONFIG} found (and CSOPS_CONFIG is not set): checking the embedded defaults")
    for name, kind, problems in rows:
        label = f"{name} ({kind})" if kind else name
        if len(problems) == 1:
            print(f"{label}: {red(problems[0], sys.stdout)}")
        elif problems:
            print(f"{label}: {red(f'{len(problems)} problems', sys.stdout)}")
            print("\n".join(f"  - {problem}" for problem in problems))
        else:
            print(f"{label}: {green('OK', sys.stdout)}")
    verb = "has" if failing == 1 else "have"
    print(f"{failing} of {len(rows)} connections {verb} problems" if failing else f"all {len(rows)} connections work")
    return EXIT_PROBLEMS if failing else EXIT_OK


async def _check_connections(settings: Settings, timeout: float, temporal: bool) -> list[tuple[str, str, list[str]]]:
    """Set up every configured part and check it: (name, kind, problems) per part."""
    import asyncio

    from engine.wiring import Part, build_parts, check_parts, close_parts

    parts = await build_parts(settings, timeout)
    built = [p for p in parts if isinstance(p, Part)]
    try:
        found = iter(await check_parts(built, timeout))
        rows = [(p.name, p.kind, next(found)) if isinstance(p, Part) else (p.part, p.kind, [p.reason])
                for p in parts]
    finally:
        await close_parts(built)
    if temporal:
        from engine.runtime.starter import connect

        try:
            await asyncio.wait_for(connect(settings), timeout)
            problems = []
        except (RuntimeError, OSError, TimeoutError) as exc:
            said = re.search(r'message: "([^"]+)"', str(exc))  # the OS's words inside the Rust client's error
            why = (f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else
                   said.group(1) if said else str(exc).splitlines()[0][:200])
            problems = [f"cannot connect: {why} (is csops up running, and is the address right?)"]
        rows.append(("temporal", settings.temporal_address, problems))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns the exit status."""
    from connectors.redact import install_logging

    install_logging()  # secrets a server echoes never reach a log line (the API runs here too)
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 for --help
        return int(exc.code or 0)
    if args.command == "validate":
        return cmd_validate(args)
    if args.command == "up":
        return cmd_up(args)
    if args.command == "start":
        return cmd_start(args)
    if args.command == "check-config":
        return cmd_check_config(args)
    if args.command in ("event", "import"):
        from engine.cli.cli_events import main as events_main

        return events_main(args)
    if hasattr(args, "runs_handler"):
        return int(args.runs_handler(args))
    parser.print_help()
    return EXIT_USAGE


def run() -> None:
    """Console-script entry: flush and leave with os._exit (temporalio's core can abort at shutdown)."""
    words = [a for a in sys.argv[1:3] if not a.startswith("-")]
    from engine.cli.interrupts import on_ctrl_c

    on_ctrl_c(" ".join(words[:2] if words[:1] in (["event"], ["runs"], ["import"]) else words[:1]))
    try:
        status = main()
    except KeyboardInterrupt:
        status = 130
    except BrokenPipeError:  # the reader went away (csops runs | head): it took what it wanted; no error line
        status = 141  # 128 + SIGPIPE, what a shell reports for a command a pipe's reader left
    except Exception as exc:  # noqa: BLE001 - a bug of ours is reported in one line, not a traceback
        print(f"csops: internal error: {exc!r} (please report it)", file=sys.stderr)
        status = 3
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    os._exit(status)


if __name__ == "__main__":
    run()
