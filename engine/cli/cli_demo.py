"""``csops demo``: the one-command tour (engine/cli/demo.py). It ends through ``engine.cli.main.run``'s ``os._exit``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    """Add ``demo`` to the ``csops`` subcommands."""
    demo = sub.add_parser("demo", help="the one-command tour: sample accounts, events, live effects, a simulation",
                          description="Validate the playbooks, start a private stack (Temporal dev server, worker, "
                                      "API) on free ports in a fresh demo folder, import the sample accounts, send a "
                                      "health drop, a first use of a premium feature and a renewal date 90 days out, "
                                      "show the tasks, Slack alerts and emails as they arrive, simulate 120 days of "
                                      "renewal-reminders, then stop it all. Needs no input. Exit 0 every expected "
                                      "effect arrived, 1 a playbook error or a missing effect, 2 a setup problem.")
    demo.add_argument("--home", default=".csops/demo", help="the demo's own state folder, wiped at the start "
                                                            "(default .csops/demo)")
    demo.add_argument("--playbooks", default="playbooks", help="the playbooks folder (default playbooks)")
    demo.add_argument("--samples", default="samples", help="the folder of users.csv, accounts.csv and contacts.csv "
                                                           "(default samples)")
    demo.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                      help="how long to wait for the effects of the events (default 60)")
    demo.set_defaults(runs_handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``csops demo``."""
    from engine.cli.demo import DemoOptions, demo

    return demo(DemoOptions(home=Path(args.home), playbooks=Path(args.playbooks), samples=Path(args.samples),
                            wait=args.wait))
