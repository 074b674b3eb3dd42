"""``csops simulate`` and ``csops test``: a playbook's timeline on a simulated clock, and playbook tests.

Both run the real workflow on Temporal's time-skipping test server with recording connectors
(engine.sim.simulate): nothing is sent, no real system is written to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from connectors.base import Account
    from engine.language.coverage import Coverage
from engine.sim.simcalendar import parse_start

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any) -> None:
    """Register ``simulate`` and ``test`` on ``csops``'s subparsers (each sets ``runs_handler``)."""
    sim = sub.add_parser("simulate", help="run a playbook for one account on a simulated clock and print its timeline",
                         description="Run PLAYBOOK for an account on Temporal's time-skipping test server with "
                                     "recording connectors: nothing is sent and no real system is written to. Prints "
                                     "what the run does day by day. Exit 0 done, 1 the run failed (one line says "
                                     "which step and why), 2 bad input.")
    sim.add_argument("playbook", metavar="PLAYBOOK", help="a playbook file, or a playbook id in --playbooks")
    sim.add_argument("--account", required=True, metavar="ID_OR_FILE",
                     help="an account file (YAML/JSON: account, contacts, users; see docs/simulate.md), or an "
                          "account id read (only read) from the configured CRM")
    sim.add_argument("--events", default="", metavar="FILE",
                     help="timed events: a YAML list or JSON lines, each with at: (45d, or an ISO time)")
    sim.add_argument("--trigger-event", default="", metavar="FILE|JSON",
                     help="the event that starts the run, as JSON ('{\"type\": \"health.updated\", \"data\": "
                          "{\"score\": 42}}') or a YAML/JSON file; the run sees it as trigger.event")
    sim.add_argument("--start", default="", metavar="DATE",
                     help="first simulated day (YYYY-MM-DD, runs from 09:00 UTC) or time (ISO); default now")
    sim.add_argument("--days", type=int, default=120, metavar="N", help="days to simulate (default 120)")
    sim.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    sim.add_argument("--playbooks", default="", metavar="FOLDER",
                     help="where playbook ids and start_playbook targets are looked up (default: playbooks: of "
                          "csops.yaml, else playbooks/)")
    sim.add_argument("--coverage", default="", metavar="FILE",
                     help="coverage model (default: coverage.yaml beside the playbook, if any)")
    sim.add_argument("--calendar", default="", metavar="FILE",
                     help="a calendar (YAML/JSON: timezone, workdays, holidays) laid over csops.yaml's")
    sim.add_argument("--debug", action="store_true", help="show the SDK's log and tracebacks of failed steps")
    sim.set_defaults(runs_handler=cmd_simulate)
    test = sub.add_parser("test", help="run playbook tests (*.test.yaml) and report each case",
                          description="Run the cases of *.test.yaml files (PATH: a file or a folder, default "
                                      "playbooks/). Exit 0 all pass, 1 a case failed, 2 a bad test file.")
    test.add_argument("path", nargs="?", default="playbooks", metavar="PATH", help="a test file or a folder")
    test.add_argument("-k", dest="select", default="", metavar="TEXT", help="only cases whose name contains TEXT")
    test.add_argument("--playbooks", default="", metavar="FOLDER",
                      help="where start_playbook targets are looked up (default: playbooks: of csops.yaml, else "
                           "playbooks/; the tested playbook's own folder first)")
    test.add_argument("--calendar", default="", metavar="FILE",
                      help="a calendar (YAML/JSON: timezone, workdays, holidays) laid over csops.yaml's; a test "
                           "file's calendar: goes over both")
    test.add_argument("--debug", action="store_true", help="show the SDK's log and tracebacks of failed steps")
    test.set_defaults(runs_handler=cmd_test)


def _fail(message: str, status: int = EXIT_USAGE, command: str = "simulate") -> int:
    print(f"csops {command}: {message}", file=sys.stderr)
    return status


def _problems(exc: Exception) -> str:
    """A config or calendar error with its problems, one per line (path:line:col: message (rule))."""
    listed = [f"\n  {p.path}:{p.line}:{p.col}: {p.message} ({p.rule})" + (f"; {p.hint}" if p.hint else "")
              for p in getattr(exc, "problems", [])]
    return str(exc) + "".join(listed)


def configured(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The playbooks folder and the calendar (csops.yaml's, with ``--calendar`` over it).

    Raises:
        ConfigError: csops.yaml has problems. CalendarError, OSError: the calendar file.
    """
    from engine.config.settings import Settings
    from engine.sim.simcalendar import load_calendar_file

    settings = Settings.load()
    calendar = settings.config.calendar.as_dict()
    if args.calendar:
        calendar.update(load_calendar_file(args.calendar))
    return args.playbooks or str(settings.playbooks), calendar


def cmd_simulate(args: argparse.Namespace) -> int:
    from engine.config.config import ConfigError
    from engine.language.coverage import load_coverage
    from engine.language.validate import UsageError
    from engine.sim.simcalendar import CalendarError, layered
    from engine.sim.simplaybooks import PlaybookError, find_playbook, load_playbook
    from engine.sim.simtrigger import TriggerEventError, read_trigger_event
    from engine.sim.simulate import SimulationError, failure_line, format_timeline, simulate

    try:
        folder, calendar = configured(args)
    except (ConfigError, CalendarError) as exc:
        return _fail(_problems(exc))
    except OSError as exc:
        return _fail(f"{args.calendar}: cannot read: {exc.strerror or exc}")
    try:
        path = find_playbook(args.playbook, folder)
        playbook, registry = load_playbook(path, folder)
    except (PlaybookError, UsageError) as exc:
        return _fail(str(exc))
    coverage_file = args.coverage or next((str(p) for p in (Path(path).parent / "coverage.yaml",
                                                            Path(path).parent / "coverage.yml") if p.is_file()), "")
    coverage = None
    if coverage_file:
        coverage, problems = load_coverage(coverage_file)
        if coverage is None:
            return _fail(f"{coverage_file} has problems ({problems[0].message if problems else 'unreadable'}); "
                         f"csops validate {Path(path).parent} shows them")
    try:
        start = parse_start(args.start) if args.start else None
        events = read_events(args.events) if args.events else []
        trigger = read_trigger_event(args.trigger_event) if args.trigger_event else None
        account = read_account(args.account, coverage)
        timeline = asyncio.run(simulate(playbook, account["account"], contacts=account["contacts"],
                                        users=account["users"], events=events, start=start, days=args.days,
                                        coverage=coverage, trigger_event=trigger, calendar=layered(calendar),
                                        playbooks=registry, debug=args.debug))
    except (SimulationError, TriggerEventError, ValueError, OSError) as exc:
        return _fail(str(exc))
    print(format_timeline(timeline, args.format))
    failed = failure_line(timeline, registry)
    if failed:
        return _fail(failed, EXIT_FAILED)
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from engine.config.config import ConfigError
    from engine.sim.playbooktest import run_tests
    from engine.sim.simcalendar import CalendarError

    try:
        folder, calendar = configured(args)
    except (ConfigError, CalendarError) as exc:
        return _fail(_problems(exc), command="test")
    except OSError as exc:
        return _fail(f"{args.calendar}: cannot read: {exc.strerror or exc}", command="test")
    return run_tests(args.path, select=args.select, out=sys.stdout, playbooks=folder, calendar=calendar,
                     debug=args.debug)


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


def read_account(ref: str, coverage: Coverage | None = None) -> dict[str, Any]:
    """An account file's ``account``, ``contacts`` and ``users``; an id is read from the configured CRM
    with the people it and ``coverage`` name."""
    if not os.path.isfile(ref):
        if ref.endswith((".yaml", ".yml", ".json")):
            raise ValueError(f"{ref}: no such account file")
        return asyncio.run(_from_crm(ref, coverage))
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


def coverage_people(coverage: Coverage, account: Account) -> list[str]:
    """Everyone ``coverage`` may resolve a party of ``account`` to (ids or emails): the holders of its
    roles, the team pools, the fallback owners, manager overrides and out-of-office backups."""
    refs = [seg.fallback_owner for seg in coverage.segments.values()]
    refs.append(coverage.default_fallback_owner)
    for role in (coverage.roles or {}).values():
        value = account.fields.get(role.field.removeprefix("fields.")) if role.field != "owner" else account.owner_id
        refs.append(value if isinstance(value, str) else "")
    for team in coverage.teams.values():
        refs += team.members
    for who, boss in coverage.managers.items():
        refs += [who, boss]
    for who, absence in coverage.out_of_office.items():
        refs += [who, absence.backup]
    return [ref for ref in refs if ref]


async def _from_crm(account_id: str, coverage: Coverage | None = None) -> dict[str, Any]:
    """The account, its contacts and the people it and the coverage model name, copied (read only)
    from the configured CRM, so parties resolve in the simulation as they would in a real run."""
    import dataclasses

    from engine.config.settings import Settings
    from engine.wiring import build_crm

    part = await build_crm(Settings.load())
    crm = part.connector
    try:
        account = await crm.get_account(account_id)
        if account is None:
            raise ValueError(f"no account {account_id!r} in the configured CRM ({part.kind}); give an account file")
        contacts = await crm.list_contacts(account_id)
        refs = [account.owner_id, *(v for k, v in account.fields.items() if k.endswith("_id") and isinstance(v, str))]
        if coverage is not None:
            refs += coverage_people(coverage, account)
        users: dict[str, Any] = {}  # by id: a user named by id and by email is copied once
        seen: set[str] = set()
        while refs:
            ref = refs.pop()
            if not ref or ref.casefold() in seen:
                continue
            seen.add(ref.casefold())
            user = await crm.get_user(ref)
            if user is not None:
                users[user.id] = user
                refs += [user.manager_id or "", user.backup_id or ""]
    finally:
        await part.close()
    plain = dataclasses.asdict(account)
    return {"account": plain, "contacts": [dataclasses.asdict(c) for c in contacts],
            "users": [dataclasses.asdict(u) for u in users.values()]}
