"""``csops import accounts|contacts|users FILE.csv``: a CSV file into the built-in CRM (engine/triggers/csvimport.py).

Prints each rejected row's problems by line and column, then a count; with ``--dry-run`` what
would change per record and field instead of writing. Exit 0 all imported, 1 some rows rejected,
2 the file, its header or an option is wrong (nothing written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.health.hooks import after_import
from engine.language.textfmt import money, red
from engine.triggers.csvimport import COLUMNS, ImportFileError, ImportReport, import_csv
from engine.triggers.csvread import SEPARATORS, parse_delimiter

if TYPE_CHECKING:
    from engine.config.settings import Settings

__all__ = ["add_parser", "run_import"]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def add_parser(sub: Any) -> None:
    """Add ``import`` to the ``csops`` subcommands."""
    crm = sub.add_parser("import", help="import accounts, contacts or users from CSV into the built-in CRM",
                         description="Upsert the rows of a CSV file into the built-in CRM; the header names the "
                                     "columns (docs/events.md). Exit 0 all imported, 1 some rows rejected (the "
                                     "others are imported), 2 unreadable file or wrong header.")
    crm.add_argument("kind", choices=tuple(COLUMNS), help="what the file holds")
    crm.add_argument("file", metavar="FILE.csv", help="the CSV file, header first")
    crm.add_argument("--database-url", default="", help="the built-in CRM's database (default: the settings')")
    crm.add_argument("--dry-run", action="store_true",
                     help="write nothing: print what would change, per record and field")
    crm.add_argument("--map", action="append", default=[], metavar="HEADER=FIELD",
                     help="read column HEADER as FIELD (e.g. 'Account Name=name'); HEADER= leaves it out; repeatable")
    crm.add_argument("--delimiter", default="", metavar="SEP",
                     help="the separator: ',' ';' or tab ('\\t'); default: detected from the header line")


def _settings(command: str) -> Settings | None:
    from engine.cli.common import load_settings as load

    return load(command)


def run_import(args: argparse.Namespace) -> int:
    """Run ``csops import``; the exit status."""
    from connectors.sqlcrm import SQLCRM

    url = args.database_url
    if not url:
        settings = _settings("import")
        if settings is None:
            return EXIT_USAGE
        from engine.config.config import BuiltinCRMConfig

        cfg = settings.config.crm
        if not isinstance(cfg, BuiltinCRMConfig):
            print(f"csops import: the configured CRM is {cfg.kind}; csops import writes to the built-in CRM only "
                  "(import into your CRM there, or pass --database-url)", file=sys.stderr)
            return EXIT_USAGE
        url = cfg.database_url or settings.database_url
    try:
        mapping = _mapping(args.map)
        delimiter = parse_delimiter(args.delimiter) if args.delimiter else ""
    except ImportFileError as exc:
        print(f"csops import: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from sqlalchemy.exc import ArgumentError, OperationalError

    try:
        crm = SQLCRM(url)
    except ArgumentError as exc:
        print(f"csops import: {url!r} is not a database URL csops can open ({exc}); write e.g. "
              "sqlite:///.csops/csops.db or postgresql+psycopg://user@host/db", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = asyncio.run(import_csv(crm, args.kind, Path(args.file), dry_run=args.dry_run, mapping=mapping,
                                        delimiter=delimiter))
        health_note = "" if report.dry_run else asyncio.run(after_import(crm, args.kind))
    except ImportFileError as exc:
        print(f"csops import: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OperationalError as exc:
        print(f"csops import: cannot use the database {url}: {exc.orig or exc}; nothing was imported",
              file=sys.stderr)
        return EXIT_USAGE
    finally:
        crm.close()
    if report.detected and report.delimiter != ",":
        print(f"csops import: reading {args.file} as {SEPARATORS[report.delimiter]}-separated (detected from its "
              "header; --delimiter says otherwise)", file=sys.stderr)
    for r in report.rejected:
        print(f"{args.file}:{r.line}: {red(r.column, sys.stdout)}: {r.why}")
    if report.dry_run:
        return _dry_run(report, args.kind)
    print(f"{report.imported} of {report.rows} {args.kind} imported, {report.rejected_rows} rejected")
    if health_note:  # engine/health: the scores the import changed
        print(health_note)
    return EXIT_PROBLEMS if report.rejected else EXIT_OK


def _mapping(pairs: Sequence[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        header, eq, target = pair.partition("=")
        if not eq or not header.strip():
            raise ImportFileError(f"--map takes HEADER=FIELD (e.g. 'Account Name=name'), not {pair!r}")
        mapping[header.strip()] = target.strip()
    return mapping


def _dry_run(report: ImportReport, kind: str) -> int:
    new = sum(1 for c in report.changes if c.new)
    changed = [c for c in report.changes if not c.new and c.fields]
    for change in report.changes:
        if change.new:
            print(f"would add {change.id}")
        elif change.fields:
            print(f"would change {change.id}: " + "; ".join(
                f"{name}: {_shown(name, before)} -> {_shown(name, after)}" for name, before, after in change.fields))
    same = len(report.changes) - new - len(changed)
    print(f"dry run: {report.imported} of {report.rows} {kind} would be imported ({new} new, {len(changed)} changed, "
          f"{same} unchanged), {report.rejected_rows} rejected; nothing was written")
    return EXIT_PROBLEMS if report.rejected else EXIT_OK


def _shown(name: str, value: Any) -> str:
    if value is None or value == "" or value == {} or value == ():
        return "(empty)"
    if name == "arr":
        return money(value)
    if isinstance(value, tuple):
        return ";".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, default=str, sort_keys=True)
    return repr(value) if isinstance(value, str) else str(value)
