"""``csops simulate`` and ``csops test``: a playbook's timeline on a simulated clock, and playbook tests.

Both run the real workflow on Temporal's time-skipping test server with recording connectors
(engine.simulate): nothing is sent, no real system is written to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any) -> None:
    """Register ``simulate`` and ``test`` on ``csops``'s subparsers (each sets ``runs_handler``)."""
    sim = sub.add_parser("simulate", help="run a playbook for one account on a simulated clock and print its timeline",
                         description="Run PLAYBOOK for an account on Temporal's time-skipping test server with "
                                     "recording connectors: nothing is sent and no real system is written to. Prints "
                                     "what the run does day by day. Exit 0 done, 2 bad input.")
    sim.add_argument("playbook", metavar="PLAYBOOK", help="a playbook file, or a playbook id in --playbooks")
    sim.add_argument("--account", required=True, metavar="ID_OR_FILE",
                     help="an account file (YAML/JSON: account, contacts, users; see docs/simulate.md), or an "
                          "account id read (only read) from the configured CRM")
    sim.add_argument("--events", default="", metavar="FILE",
                     help="timed events: a YAML list or JSON lines, each with at: (45d, or an ISO time)")
    sim.add_argument("--start", default="", metavar="DATE",
                     help="first simulated day (YYYY-MM-DD, runs from 09:00 UTC) or time (ISO); default now")
    sim.add_argument("--days", type=int, default=120, metavar="N", help="days to simulate (default 120)")
    sim.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    sim.add_argument("--playbooks", default="playbooks", metavar="FOLDER",
                     help="where playbook ids are looked up (default playbooks/)")
    sim.add_argument("--coverage", default="", metavar="FILE",
                     help="coverage model (default: coverage.yaml beside the playbook, if any)")
    sim.set_defaults(runs_handler=cmd_simulate)
    test = sub.add_parser("test", help="run playbook tests (*.test.yaml) and report each case",
                          description="Run the cases of *.test.yaml files (PATH: a file or a folder, default "
                                      "playbooks/). Exit 0 all pass, 1 a case failed, 2 a bad test file.")
    test.add_argument("path", nargs="?", default="playbooks", metavar="PATH", help="a test file or a folder")
    test.add_argument("-k", dest="select", default="", metavar="TEXT", help="only cases whose name contains TEXT")
    test.set_defaults(runs_handler=cmd_test)


def _fail(message: str) -> int:
    print(f"csops simulate: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_simulate(args: argparse.Namespace) -> int:
    from engine.coverage import load_coverage
    from engine.simulate import SimulationError, format_timeline, simulate
    from engine.validate import UsageError, validate_paths

    path = Path(args.playbook)
    if not path.is_file():
        path = next((p for p in (Path(args.playbooks) / f"{args.playbook}.yaml",
                                 Path(args.playbooks) / f"{args.playbook}.yml") if p.is_file()), path)
    try:
        report = validate_paths([str(path)])
    except UsageError as exc:
        return _fail(str(exc))
    if not report.playbooks:
        return _fail(f"{path} is not a valid playbook (csops validate {path} says why)")
    playbook = next(iter(report.playbooks.values()))
    coverage_file = args.coverage or next((str(p) for p in (path.parent / "coverage.yaml", path.parent / "coverage.yml")
                                           if p.is_file()), "")
    coverage = None
    if coverage_file:
        coverage, problems = load_coverage(coverage_file)
        if coverage is None:
            return _fail(f"{coverage_file} has problems ({problems[0].message if problems else 'unreadable'}); "
                         f"csops validate {path.parent} shows them")
    try:
        start = parse_start(args.start) if args.start else None
        events = read_events(args.events) if args.events else []
        account = read_account(args.account)
        timeline = asyncio.run(simulate(playbook, account["account"], contacts=account["contacts"],
                                        users=account["users"], events=events, start=start, days=args.days,
                                        coverage=coverage))
    except (SimulationError, ValueError, OSError) as exc:
        return _fail(str(exc))
    print(format_timeline(timeline, args.format))
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from engine.playbooktest import run_tests

    return run_tests(args.path, select=args.select, out=sys.stdout)


def parse_start(text: str) -> datetime:
    """``YYYY-MM-DD`` (09:00 UTC that day) or an ISO time (UTC unless it says otherwise)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--start {text}: write a date (2027-01-04) or a time (2027-01-04T09:00:00Z)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def read_events(path: str) -> list[dict[str, Any]]:
    """Events from a YAML list, a JSON list or JSON lines."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if data is None or isinstance(data, dict):  # JSON lines are not YAML; a lone mapping is one event
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {exc.lineno}: not a YAML list nor JSON lines: {exc.msg}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of events (a YAML list, or one JSON object per line)")
    return data


def read_account(ref: str) -> dict[str, Any]:
    """An account file's ``account``, ``contacts`` and ``users``; an id is read from the configured CRM."""
    if not os.path.isfile(ref):
        if ref.endswith((".yaml", ".yml", ".json")):
            raise ValueError(f"{ref}: no such account file")
        return asyncio.run(_from_crm(ref))
    data = yaml.safe_load(Path(ref).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{ref}: expected a mapping with account:, contacts: and users:")
    if "account" not in data:  # a file of account fields alone
        data = {"account": data}
    unknown = sorted(set(data) - {"account", "contacts", "users"})
    if unknown:
        raise ValueError(f"{ref}: unknown key(s) {', '.join(unknown)}; an account file has account:, contacts: "
                         "and users:")
    for key in ("contacts", "users"):
        if not isinstance(data.get(key) or [], list):
            raise ValueError(f"{ref}: {key}: must be a list")
    return {"account": data["account"], "contacts": data.get("contacts") or [], "users": data.get("users") or []}


async def _from_crm(account_id: str) -> dict[str, Any]:
    """The account, its contacts and the people it names, copied (read only) from the configured CRM."""
    import dataclasses

    from engine.settings import Settings
    from engine.wiring import build_crm

    part = await build_crm(Settings.load())
    crm = part.connector
    try:
        account = await crm.get_account(account_id)
        if account is None:
            raise ValueError(f"no account {account_id!r} in the configured CRM ({part.kind}); give an account file")
        contacts = await crm.list_contacts(account_id)
        refs = [account.owner_id, *(v for k, v in account.fields.items() if k.endswith("_id") and isinstance(v, str))]
        users: dict[str, Any] = {}
        while refs:
            ref = refs.pop()
            if not ref or ref in users:
                continue
            user = await crm.get_user(ref)
            if user is not None:
                users[ref] = user
                refs += [user.manager_id or "", user.backup_id or ""]
    finally:
        await part.close()
    plain = dataclasses.asdict(account)
    return {"account": plain, "contacts": [dataclasses.asdict(c) for c in contacts],
            "users": [dataclasses.asdict(u) for u in users.values()]}
