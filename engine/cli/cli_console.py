"""``csops console user add EMAIL``: create (or update) a person who may sign in to the web console;
``user remove EMAIL`` deletes one (ending their sessions), ``user list`` lists them.

The password comes from CSOPS_CONSOLE_PASSWORD when set (scripts), else from a prompt (typed
twice, not echoed); ``--no-password`` makes a user for the trusted-header mode only.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from typing import Any

__all__ = ["add_parsers"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any) -> None:
    """Add ``console`` to the ``csops`` subcommands."""
    console = sub.add_parser("console", help="web console users (the console is served by csops api at /console)",
                             description="Manage who may sign in to the web console (docs/console.md).")
    actions = console.add_subparsers(dest="console_action", metavar="ACTION")
    user = actions.add_parser("user", help="console users").add_subparsers(dest="user_action", metavar="ACTION")
    add = user.add_parser("add", help="create a console user, or change one's role, name, CRM link or password",
                          description="Create a console user (or update one). The password is read from "
                                      "CSOPS_CONSOLE_PASSWORD, else asked for twice.")
    add.add_argument("email", metavar="EMAIL", help="what they sign in with")
    add.add_argument("--role", choices=("ops", "csm"), default="csm",
                     help="ops: everything; csm: acts on own tasks and accounts, reads the rest (default csm)")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--crm-user", default="", metavar="ID",
                     help="their user id in the CRM: their tasks are their inbox, their accounts are theirs")
    add.add_argument("--no-password", action="store_true",
                     help="no password: signs in only through a trusted identity proxy header")
    remove = user.add_parser("remove", help="delete a console user and end their sessions at once")
    remove.add_argument("email", metavar="EMAIL")
    user.add_parser("list", help="the console users with their roles")
    console.set_defaults(runs_handler=cmd_console)


def _password(args: argparse.Namespace) -> str | None:
    if args.no_password:
        return ""
    given = os.environ.get("CSOPS_CONSOLE_PASSWORD", "")
    if given:
        return given
    if not sys.stdin.isatty():
        print("csops console: set CSOPS_CONSOLE_PASSWORD, or run this in a terminal to type the password",
              file=sys.stderr)
        return None
    first = getpass.getpass(f"Password for {args.email}: ")
    if getpass.getpass("Again: ") != first:
        print("csops console: the two passwords differ; nothing was changed", file=sys.stderr)
        return None
    return first


def cmd_console(args: argparse.Namespace) -> int:
    """Run ``csops console user add``."""
    action = getattr(args, "user_action", None) if getattr(args, "console_action", None) == "user" else None
    if action not in ("add", "remove", "list"):
        print("usage: csops console user add EMAIL [--role ops|csm] [--name NAME] [--crm-user ID] | "
              "user remove EMAIL | user list", file=sys.stderr)
        return EXIT_USAGE
    from engine.cli.common import load_settings
    from engine.store.console_auth import add_user
    from engine.store.store import Store

    settings = load_settings("console")
    if settings is None:
        return EXIT_USAGE
    if action != "add":
        return _remove_or_list(Store(settings.database_url), action, getattr(args, "email", ""))
    password = _password(args)
    if password is None:
        return EXIT_USAGE
    store = Store(settings.database_url)
    try:
        new = asyncio.run(add_user(store, args.email, role=args.role, password=password, name=args.name,
                                   crm_user=args.crm_user))
    except ValueError as exc:
        print(f"csops console: {exc}; nothing was changed", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()
    print(f"csops console: {'created' if new else 'updated'} {args.email.strip().lower()} ({args.role}"
          f"{', CRM user ' + args.crm_user if args.crm_user else ''}); sign in at /console on the API's address")
    return EXIT_OK


def _remove_or_list(store: Any, action: str, email: str) -> int:
    from engine.store.console_auth import list_users, remove_user

    try:
        if action == "list":
            for p in asyncio.run(list_users(store)):
                print(f"{p.email}\t{p.role}\t{p.name}\t{p.crm_user}")
            return EXIT_OK
        if not asyncio.run(remove_user(store, email)):
            print(f"csops console: there is no console user {email.strip().lower()}; csops console user list "
                  "shows them", file=sys.stderr)
            return EXIT_FAILED
    finally:
        store.close()
    print(f"csops console: removed {email.strip().lower()}; their sessions are ended")
    return EXIT_OK


DEMO_USER = "demo@example.com"
"""The console user ``csops demo`` creates in its own store (ops, linked to the sample CSM Daniel Wu, Acme's owner)."""


async def demo_sign_in() -> str:
    """Create the demo's console user with a fresh random password; the sign-in line the demo prints.

    Reads the demo's settings (CSOPS_CONFIG points at its csops.yaml), so it writes to the demo's store only.
    """
    import secrets

    from engine.config.settings import Settings
    from engine.store.console_auth import add_user
    from engine.store.store import Store

    password = secrets.token_urlsafe(12)
    store = Store(Settings.load().database_url)
    try:
        await add_user(store, DEMO_USER, role="ops", password=password, name="Demo", crm_user="u-daniel")
    finally:
        store.close()
    return f"sign in as {DEMO_USER} with password {password}"
