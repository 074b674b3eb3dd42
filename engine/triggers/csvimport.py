"""``csops import accounts|contacts|users FILE.csv``: rows of a CSV file into the built-in CRM.

The header names the fields (docs/events.md has the table); columns may come in any order, in any
case, separated by commas, semicolons or tabs (detected), and ``--map`` renames a CRM export's
headers. On a record that exists already, a column left out keeps its stored value and only an
explicitly empty cell clears an optional field; a row with fewer or more cells than the header is
rejected whole, so a truncated row never clears anything. Every problem of a row is reported with
its line and column, and a row with any problem is left out; the good rows are written in one
transaction, or with ``dry_run`` only compared with what is stored. Owners, managers and backups
are given by user id or email; a manager or backup may be a user of the same file.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.base import Account, Contact, User
from connectors.sqlcrm import SQLCRM
from engine.triggers.csvcells import Bad, a_date, amount, an_id, band, email_address, flag, required, score, zone
from engine.triggers.csvread import CUSTOM, ImportFileError, Row, read_table

__all__ = ["COLUMNS", "Change", "ImportFileError", "ImportReport", "Rejected", "import_csv"]

COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("id", "name", "segment", "lifecycle_stage", "owner", "arr", "renewal_date", "contract_start",
                 "renewal_status", "health_score", "health_band"),
    "contacts": ("id", "account_id", "email", "first_name", "last_name", "title", "role", "phone", "primary",
                 "timezone"),
    "users": ("id", "email", "name", "title", "manager", "timezone", "out_of_office", "backup", "roles"),
}
"""The columns each kind knows; accounts also take ``fields.NAME`` for custom fields."""
REQUIRED = {"accounts": ("id", "name"), "contacts": ("id", "account_id", "email"), "users": ("id", "email")}


@dataclass(frozen=True, kw_only=True)
class Rejected:
    """One problem of one row."""

    line: int
    """The row's line in the file (the header is line 1)."""
    column: str
    """The column at fault ("(row)" for the row as a whole)."""
    why: str
    """What is wrong, in plain words."""


@dataclass(frozen=True, kw_only=True)
class Change:
    """What importing one good row changes (reported by a dry run)."""

    id: str
    """The record's id."""
    new: bool
    """True when no record has this id yet."""
    fields: tuple[tuple[str, Any, Any], ...] = ()
    """(field, stored value, value after the import) for each field that changes on an existing record."""


@dataclass(kw_only=True)
class ImportReport:
    """What an import did (or, in a dry run, would do)."""

    kind: str
    """accounts, contacts or users."""
    imported: int = 0
    """Rows written (inserted or replaced); in a dry run, rows that would be."""
    rows: int = 0
    """Data rows read."""
    rejected: list[Rejected] = field(default_factory=list)
    """The problems of the rows left out."""
    delimiter: str = ","
    """The separator the file was read with."""
    detected: bool = False
    """True when the separator was detected rather than given."""
    dry_run: bool = False
    """True when nothing was written."""
    changes: list[Change] = field(default_factory=list)
    """Per good row, what it changes (filled by a dry run only)."""

    @property
    def rejected_rows(self) -> int:
        """How many rows were left out."""
        return len({r.line for r in self.rejected})


async def import_csv(crm: SQLCRM, kind: str, path: Path, *, dry_run: bool = False,
                     mapping: Mapping[str, str] | None = None, delimiter: str = "") -> ImportReport:
    """Import a CSV file of ``kind`` into ``crm`` (with ``dry_run``, only say what would change).

    Args:
        crm: the built-in CRM.
        kind: accounts, contacts or users.
        path: the file.
        dry_run: write nothing; fill the report's ``changes``.
        mapping: header name to field name (``--map``); "" leaves a column out.
        delimiter: the separator; "" detects comma, semicolon or tab.

    Raises:
        ImportFileError: the file cannot be read, or its header lacks a required column or has an unknown one.
    """
    if kind not in COLUMNS:
        raise ImportFileError(f"csops import takes accounts, contacts or users, not {kind!r}")
    table = read_table(path, COLUMNS[kind], custom=kind == "accounts", delimiter=delimiter, mapping=mapping)
    missing = [c for c in REQUIRED[kind] if c not in table.fields]
    if missing:
        raise ImportFileError(f"{path}: the header lacks {', '.join(missing)}, which {kind} need")
    report = ImportReport(kind=kind, rows=len(table.rows), delimiter=table.delimiter, detected=table.detected,
                          dry_run=dry_run)
    twins = _twins(table.rows)
    in_file = {r.cells["id"]: r.cells for r in table.rows if r.cells and r.line not in twins} if kind == "users" \
        else {}
    records: list[Account | Contact | User] = []
    for row in table.rows:
        if row.problem or row.line in twins:
            report.rejected.append(Rejected(line=row.line, column=row.column if row.problem else "id",
                                            why=row.problem or twins[row.line]))
            continue
        problems: list[Rejected] = []
        record = await _ROW[kind](crm, row.cells, row.line, problems, in_file)
        if problems or record is None:
            report.rejected.extend(problems)
        else:
            records.append(record)
    if dry_run:
        report.changes = [await _change(crm, record) for record in records]
    else:
        crm.upsert(records)
    report.imported = len(records)
    return report


def _twins(rows: Sequence[Row]) -> dict[int, str]:
    """Rows sharing an id with another row, by line, with why: which one is meant cannot be told."""
    lines: dict[str, list[int]] = {}
    for row in rows:
        if row.cells.get("id"):
            lines.setdefault(row.cells["id"], []).append(row.line)
    return {line: f"id {ident!r} is on lines {', '.join(map(str, found))}: one row per id; none of them was imported"
            for ident, found in lines.items() if len(found) > 1 for line in found}


async def _change(crm: SQLCRM, record: Account | Contact | User) -> Change:
    old: Account | Contact | User | None
    if isinstance(record, Account):
        old = await crm.get_account(record.id)
    elif isinstance(record, User):
        old = await crm.get_user(record.id)
        old = old if old is not None and old.id == record.id else None
    else:
        old = next((c for c in await crm.list_contacts(record.account_id) if c.id == record.id), None)
    if old is None:
        return Change(id=record.id, new=True)
    return Change(id=record.id, new=False, fields=tuple(
        (f.name, getattr(old, f.name), getattr(record, f.name)) for f in dataclasses.fields(record)
        if getattr(old, f.name) != getattr(record, f.name)))


def _cell(cells: dict[str, str], name: str, problems: list[Rejected], line: int,
          convert: Callable[[str], Any]) -> Any:
    try:
        return convert(cells[name])
    except Bad as bad:
        problems.append(Rejected(line=line, column=name, why=bad.why))
        return None


async def _user_ref(crm: SQLCRM, value: str, what: str, in_file: dict[str, dict[str, str]]) -> str | None:
    if not value:
        return None
    if value in in_file:
        return value
    for uid, row in in_file.items():
        if (row.get("email") or "").strip().lower() == value.lower():
            return uid
    user = await crm.get_user(value)
    if user is None:
        raise Bad("", f"{value!r} is not a user (by id or email); import users first")
    return user.id


async def _account(crm: SQLCRM, cells: dict[str, str], line: int, problems: list[Rejected],
                   in_file: dict[str, dict[str, str]]) -> Account | None:
    account_id = _cell(cells, "id", problems, line, an_id)
    if account_id is None:
        return None
    old = await crm.get_account(account_id)
    changes: dict[str, Any] = {}
    converters: dict[str, Callable[[str], Any]] = {
        "name": required, "segment": str, "lifecycle_stage": str, "renewal_status": str, "arr": amount,
        "renewal_date": a_date, "contract_start": a_date, "health_score": score, "health_band": band}
    for name, convert in converters.items():
        if name in cells:
            before = len(problems)
            value = _cell(cells, name, problems, line, convert)
            if len(problems) == before:
                changes[name] = value
    if "owner" in cells:
        try:
            changes["owner_id"] = await _user_ref(crm, cells["owner"], "owner", {})
        except Bad as bad:
            problems.append(Rejected(line=line, column="owner", why=bad.why))
    custom = dict(old.fields) if old else {}
    for name, value in cells.items():
        if CUSTOM.fullmatch(name):
            key = name.partition(".")[2]
            if value:
                custom[key] = value
            else:
                custom.pop(key, None)
    if problems:
        return None
    base = old or Account(id=account_id, name=changes.get("name") or account_id)
    return dataclasses.replace(base, fields=custom, **changes)


async def _contact(crm: SQLCRM, cells: dict[str, str], line: int, problems: list[Rejected],
                   in_file: dict[str, dict[str, str]]) -> Contact | None:
    contact_id = _cell(cells, "id", problems, line, an_id)
    account_id = _cell(cells, "account_id", problems, line, an_id)
    email = _cell(cells, "email", problems, line, email_address)
    changes: dict[str, Any] = {k: cells[k] for k in ("first_name", "last_name", "title", "role", "phone")
                               if k in cells}
    if "primary" in cells:
        changes["primary"] = bool(_cell(cells, "primary", problems, line, flag))
    if account_id and await crm.get_account(account_id) is None:
        problems.append(Rejected(line=line, column="account_id", why=f"account {account_id!r} does not exist; "
                                 "import accounts first"))
    if "timezone" in cells:  # an explicitly empty cell clears it; a missing column keeps it
        changes["timezone"] = _cell(cells, "timezone", problems, line, zone) if cells["timezone"].strip() else ""
    if problems:
        return None
    # Columns left out keep the stored values (of the contact as its account lists it).
    old = next((c for c in await crm.list_contacts(account_id) if c.id == contact_id), None)
    base = old or Contact(id=contact_id, account_id=account_id, email=email)
    return dataclasses.replace(base, email=email, **changes)


async def _user(crm: SQLCRM, cells: dict[str, str], line: int, problems: list[Rejected],
                in_file: dict[str, dict[str, str]]) -> User | None:
    user_id = _cell(cells, "id", problems, line, an_id)
    email = _cell(cells, "email", problems, line, email_address)
    changes: dict[str, Any] = {k: cells[k] for k in ("name", "title") if k in cells}
    if "timezone" in cells:
        changes["timezone"] = _cell(cells, "timezone", problems, line, zone)
    if "out_of_office" in cells:
        changes["out_of_office"] = bool(_cell(cells, "out_of_office", problems, line, flag))
    for column in ("manager", "backup"):
        if column in cells:
            try:
                changes[f"{column}_id"] = await _user_ref(crm, cells[column], column, in_file)
            except Bad as bad:
                problems.append(Rejected(line=line, column=column, why=bad.why))
    if "roles" in cells:
        changes["roles"] = tuple(r for r in re.split(r"[;,\s]+", cells["roles"]) if r)
    if problems:
        return None
    old = await crm.get_user(user_id)
    base = old if old is not None and old.id == user_id else User(id=user_id, email=email)
    return dataclasses.replace(base, email=email, **changes)


_ROW = {"accounts": _account, "contacts": _contact, "users": _user}
