"""``csops suppression list|add|remove|log``: the suppression list from the command line, audited.

The list is the one the mailer reads (the settings' database, ``CSOPS_DATABASE_URL`` or
``store.database_url``). Adding and removing need ``--reason``; who did it is ``--by`` (default: the
login name). Every change is kept in the log (``csops suppression log``). Exit 0 done, 1 nothing to
do (remove of an address not on the list; add of an address already on it), 2 usage error or an
unreadable configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

__all__ = ["add_parsers", "cmd_suppression"]

EXIT_OK, EXIT_NOTHING, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any) -> None:
    """Add ``suppression`` to the ``csops`` subcommands (its handler is ``runs_handler``)."""
    top = sub.add_parser("suppression", help="list, add or remove addresses that must never be mailed",
                         description="The suppression list the mailer checks before every email. Adding and removing "
                                     "are logged with who, when and why. Exit 0 done, 1 nothing to do, 2 usage error.")
    acts = top.add_subparsers(dest="suppression_action", metavar="ACTION")
    acts.add_parser("list", help="every suppressed address, why, who and when")
    add = acts.add_parser("add", help="suppress an address")
    rem = acts.add_parser("remove", help="take an address off the list")
    for p in (add, rem):
        p.add_argument("email", help="the address")
        p.add_argument("--reason", required=True, help="why (kept in the log)")
        p.add_argument("--by", default="", help="who, for the record (default: your login name)")
    log = acts.add_parser("log", help="every addition and removal, newest first")
    log.add_argument("--email", default=None, help="only this address")
    log.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    top.set_defaults(runs_handler=cmd_suppression, suppression_action=None)


def _who(given: str) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a container: say so rather than guess
        return "unknown"


def cmd_suppression(args: argparse.Namespace) -> int:
    """Run one ``csops suppression`` action."""
    from connectors.suppression import SuppressionList
    from engine.cli.common import load_settings

    if args.suppression_action is None:
        print("csops suppression: say list, add, remove or log (csops suppression --help)", file=sys.stderr)
        return EXIT_USAGE
    settings = load_settings("suppression", pointers=False)
    if settings is None:
        return EXIT_USAGE
    suppressions = SuppressionList(settings.database_url)
    try:
        return asyncio.run(_act(args, suppressions))
    finally:
        suppressions.close()


async def _act(args: argparse.Namespace, lst: Any) -> int:
    action = args.suppression_action
    if action == "list":
        entries = await lst.list()
        for e in entries:
            print(f"{e.email}\t{e.reason}\t{e.created_at:%Y-%m-%d %H:%M:%S}Z\t{e.by or '-'}")
        print(f"{len(entries)} suppressed address(es)", file=sys.stderr)
        return EXIT_OK
    if action == "log":
        for r in await lst.log(args.email, args.limit):
            print(f"{r.at:%Y-%m-%d %H:%M:%S}Z\t{r.action}\t{r.email}\t{r.reason}\t{r.by or '-'}")
        return EXIT_OK
    if not args.reason.strip():
        print(f"csops suppression {action}: --reason must say why", file=sys.stderr)
        return EXIT_USAGE
    if action == "add":
        try:
            new = await lst.add(args.email, args.reason.strip(), by=_who(args.by))
        except ValueError:
            print(f"csops suppression add: {args.email!r} is not an email address", file=sys.stderr)
            return EXIT_USAGE
        print(f"{args.email.strip().lower()}: " + ("suppressed" if new else "already suppressed (the first reason "
                                                                            "stands)"))
        return EXIT_OK if new else EXIT_NOTHING
    removed = await lst.remove(args.email, by=_who(args.by), reason=args.reason.strip())
    print(f"{args.email.strip().lower()}: " + ("removed from the suppression list" if removed
                                               else "not on the suppression list"))
    return EXIT_OK if removed else EXIT_NOTHING
