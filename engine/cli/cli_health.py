"""``csops health show|simulate|test|backtest``: the health model from the command line (docs/health.md).

``register(sub)`` adds the command to ``csops``; the handler is found through ``runs_handler``
like the commands of engine/cli/cli_runs.py. Exit 0 done, 1 problems (a failed test case, an invalid
model), 2 usage or unreadable input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.health.backtest import BacktestError, backtest, read_history, read_outcomes
from engine.health.score import score
from engine.health.testfile import run_health_tests
from engine.health.view import account_health, as_text, score_view
from engine.language import report
from engine.language.health_loader import health_beside, load_health
from engine.language.health_model import HealthModel

__all__ = ["register"]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    """Add ``health`` to the ``csops`` subcommands."""
    health = sub.add_parser("health", help="the health model: show an account's score, simulate, test, backtest",
                            description="Compute, explain, test and backtest the health model (health.yaml beside "
                                        "the playbooks). See docs/health.md.")
    actions = health.add_subparsers(dest="health_command", metavar="ACTION")
    show = actions.add_parser("show", help="an account's score, band, trend and each measure's value and points",
                              description="Compute the account's health now and show why: each measure's value, "
                                          "points and share. Exit 0, 2 unknown account or no model.")
    show.add_argument("--account", required=True, help="account id")
    _model_arg(show)
    show.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    sim = actions.add_parser("simulate", help="score given measure values, or run the model over timed events",
                             description="With --facts: score measure values given on the command line. With "
                                         "--account and --events: feed timed events through the event pipeline on a "
                                         "simulated clock, print each computed score, and with --playbook simulate "
                                         "the run a computed drop starts. Exit 0, 2 bad input.")
    _model_arg(sim)
    sim.add_argument("--facts", default="{}", help='measure values as a JSON object, e.g. \'{"logins_30d": 3}\'')
    sim.add_argument("--account", default="", metavar="FILE", help="an account file (as csops simulate reads it)")
    sim.add_argument("--events", default="", metavar="FILE", help="timed events (as csops simulate reads them)")
    sim.add_argument("--playbook", default="", metavar="FILE", help="a playbook a computed score may start")
    sim.add_argument("--days", type=int, default=30, help="days to simulate with --events (default 30)")
    sim.add_argument("--segment", default="", help="the account's segment (for the weight overrides)")
    sim.add_argument("--lifecycle-stage", default="", help="the account's lifecycle stage")
    sim.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    test = actions.add_parser("test", help="run health model tests (health.test.yaml)",
                              description="Run the cases of health.test.yaml files (PATH: a file or a folder, "
                                          "default playbooks/). Exit 0 all pass, 1 a case failed, 2 a bad file.")
    test.add_argument("path", nargs="?", default="playbooks", help="a file or folder (default playbooks/)")
    back = actions.add_parser("backtest", help="replay a history of inputs against churn outcomes",
                              description="Score every snapshot of HISTORY with the model and compare the bands with "
                                          "OUTCOMES: AUC, red share, precision and recall of red for churn within N "
                                          "days, lead time. JSON on the last line. Exit 0, 2 unreadable input.")
    back.add_argument("--model", required=True, help="the health model file")
    back.add_argument("--history", required=True, help="snapshots: CSV or JSON lines (docs/health.md)")
    back.add_argument("--outcomes", required=True, help="churned/renewed per account: CSV or JSON lines")
    back.add_argument("--within", type=int, default=90, help="churn horizon in days (default 90)")
    health.set_defaults(runs_handler=main)


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="", help="the health model file (default: health.yaml beside the "
                                                    "playbooks, CSOPS_PLAYBOOKS or playbooks/)")


def _model(path: str, folder: Path | None) -> HealthModel | None:
    """The model, or None after printing why."""
    found = path or (health_beside(folder) if folder is not None else None)
    if not found:
        print(f"csops health: no health.yaml in {folder}; pass --model FILE", file=sys.stderr)
        return None
    model, problems = load_health(found)
    if problems:
        print(report.as_text(problems, lambda p: Path(p).read_text(encoding="utf-8", errors="replace").splitlines()
                             if Path(p).is_file() else []), file=sys.stderr)
        print(f"csops health: {found} has {len(problems)} problem(s)", file=sys.stderr)
    return model


def main(args: argparse.Namespace) -> int:
    """Run ``health ...``; the exit status."""
    command = getattr(args, "health_command", None)
    if command == "test":
        return run_health_tests(args.path, sys.stdout)
    if command == "backtest":
        return _backtest(args)
    if command == "simulate":
        return _simulate(args)
    if command == "show":
        return _show(args)
    print("csops health: say show, simulate, test or backtest (csops health --help)", file=sys.stderr)
    return EXIT_USAGE


def _simulate(args: argparse.Namespace) -> int:
    model = _model(args.model, Path(os.environ.get("CSOPS_PLAYBOOKS") or "playbooks"))
    if model is None:
        return EXIT_USAGE
    if args.account or args.events:
        return _simulate_events(args, model)
    try:
        facts = json.loads(args.facts)
    except json.JSONDecodeError as exc:
        print(f"csops health simulate: --facts is not JSON: {exc.msg}", file=sys.stderr)
        return EXIT_USAGE
    unknown = sorted(set(facts) - {m.name for m in model.measures}) if isinstance(facts, dict) else ["(not an object)"]
    if unknown:
        print(f"csops health simulate: --facts must map measures to values; not measures of {model.source}: "
              f"{', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    view = score_view(model, score(model, facts, segment=args.segment, lifecycle_stage=args.lifecycle_stage))
    print(json.dumps(view) if args.format == "json" else as_text({**view, "account_id": "(simulated)"}))
    return EXIT_OK


def _simulate_events(args: argparse.Namespace, model: HealthModel) -> int:
    from engine.cli.cli_sim import read_account, read_events
    from engine.language.validate import UsageError, validate_paths
    from engine.sim.simhealth import simulate_health
    from engine.sim.simulate import SimulationError

    try:
        account: dict[str, Any] = (read_account(args.account) if args.account
                                   else {"account": {"id": "sim"}, "contacts": [], "users": []})
        events = read_events(args.events) if args.events else []
        playbook = None
        if args.playbook:
            found = validate_paths([args.playbook]).playbooks
            if not found:
                raise ValueError(f"{args.playbook} is not a valid playbook (csops validate {args.playbook} says why)")
            playbook = next(iter(found.values()))
        timeline = asyncio.run(simulate_health(model, account["account"], contacts=account["contacts"],
                                               users=account["users"], events=events, playbook=playbook,
                                               days=args.days))
    except (ValueError, SimulationError, UsageError) as exc:
        print(f"csops health simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"health of {account['account'].get('id')} by model {model.name} from {timeline.begin.isoformat()}, "
          f"{args.days} days")
    for line in timeline.lines or ["  (no score: no measure had an input)"]:
        print("  " + line)
    if playbook is not None:
        print(timeline.play or f"{playbook.id}: no computed score started it")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from engine.cli.common import load_settings

    settings = load_settings("health show")
    if settings is None:
        return EXIT_USAGE
    model = _model(args.model, settings.playbooks)
    if model is None:
        return EXIT_USAGE
    view = asyncio.run(_read(settings, model, args.account))
    if isinstance(view, str):
        print(f"csops health show: {view}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(view) if args.format == "json" else as_text(view))
    return EXIT_OK


async def _read(settings: Any, model: HealthModel, account_id: str) -> dict[str, Any] | str:
    from engine.store.store import Store
    from engine.wiring import BuildError, build_crm

    try:
        crm = await build_crm(settings)
    except BuildError as exc:
        return str(exc)
    store = Store(settings.database_url)
    try:
        view = await account_health(store, crm.connector, model, account_id, datetime.now(UTC))
    finally:
        store.close()
        await crm.close()
    return view if view is not None else f"no account {account_id!r} in the CRM"


def _backtest(args: argparse.Namespace) -> int:
    model = _model(args.model, None)
    if model is None:
        return EXIT_USAGE
    try:
        result = backtest(model, read_history(args.history, model), read_outcomes(args.outcomes), args.within)
    except BacktestError as exc:
        print(f"csops health backtest: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.1f}%"

    print(f"model {model.name} ({model.source}) on {result.snapshots} snapshots of {result.accounts} accounts, "
          f"{result.churned} churned; churn within {result.within} days")
    print(f"  AUC          {'-' if result.auc is None else f'{result.auc:.3f}'}   (0.5 is chance, 1 perfect)")
    print(f"  red share    {pct(result.red_share)}   (snapshots flagged red)")
    print(f"  precision    {pct(result.precision)}   (red snapshots followed by churn within {result.within} days)")
    print(f"  recall       {pct(result.recall)}   (snapshots followed by churn that were red)")
    print(f"  caught       {pct(result.caught)}   (churned accounts red within {result.within} days before)")
    print(f"  lead time    {'-' if result.lead_days is None else f'{result.lead_days:g} days'}   "
          "(median, first red to churn)")
    if result.unscored:
        print(f"  {result.unscored} snapshot(s) had no input at all and were left out")
    print(json.dumps(result.as_dict()))
    return EXIT_OK
