"""The ``csops`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from functools import cache

from engine import report
from engine.validate import UsageError, validate_paths

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csops", description="Customer Success playbooks as code.")
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
    start = sub.add_parser("start", help="start a run of a playbook for an account (a manual trigger)",
                           description="Start PLAYBOOK for ACCOUNT. Starting a run that is already running never "
                                       "makes a second one: it says 'already running'.")
    start.add_argument("playbook", help="playbook id")
    start.add_argument("--account", required=True, help="account id")
    start.add_argument("--occurrence", default="", help="occurrence key (default: none)")
    start.add_argument("--playbooks", default="", help="playbooks folder (default CSOPS_PLAYBOOKS or playbooks/)")
    return parser


def cmd_up(args: argparse.Namespace) -> int:
    from engine.settings import Settings
    from engine.up import UpOptions, up

    return up(UpOptions(home=Settings.from_env().home, temporal_address=args.temporal_address, port=args.port,
                        ui_port=args.ui_port))


def cmd_start(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from engine.settings import Settings
    from engine.starter import connect, load_playbooks, start_run

    settings = Settings.from_env()
    folder = Path(args.playbooks) if args.playbooks else settings.playbooks
    playbook = load_playbooks(folder).get(args.playbook)
    if playbook is None:
        print(f"csops start: no valid playbook {args.playbook!r} in {folder} (csops validate {folder} says why)",
              file=sys.stderr)
        return EXIT_USAGE
    if not playbook.enabled:
        print(f"csops start: playbook {args.playbook!r} is disabled (enabled: false in {playbook.source})",
              file=sys.stderr)
        return EXIT_USAGE

    async def go() -> tuple[str, str]:
        client = await connect(settings)
        return await start_run(client, playbook, account_id=args.account, occurrence=args.occurrence,
                               task_queue=settings.task_queue)

    try:
        outcome, run_id = asyncio.run(go())
    except RuntimeError as exc:  # temporalio's "Failed client connect"
        print(f"csops start: cannot reach Temporal at {settings.temporal_address}: {exc} (is csops up running?)",
              file=sys.stderr)
        return EXIT_USAGE
    print(f"{outcome}: {run_id}")
    return EXIT_OK


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
            print(report.as_text(problems, lines))
        if not args.quiet:
            errors = sum(1 for p in problems if p.severity == "error")
            warnings = len(problems) - errors
            files = len(result.files)
            verdict = "no problems" if not problems else f"{errors} error(s), {warnings} warning(s)"
            print(f"{files} playbook file(s) checked: {verdict}", file=sys.stderr if problems else sys.stdout)
    failing = [p for p in problems if p.severity == "error" or args.strict]
    return EXIT_PROBLEMS if failing else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns the exit status."""
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
    parser.print_help()
    return EXIT_USAGE


def run() -> None:
    """Console-script entry: flush and leave with os._exit (temporalio's core can abort at shutdown)."""
    try:
        status = main()
    except KeyboardInterrupt:
        status = 130
    except Exception as exc:  # noqa: BLE001 - a bug of ours is reported in one line, not a traceback
        print(f"csops: internal error: {exc!r} (please report it)", file=sys.stderr)
        status = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
