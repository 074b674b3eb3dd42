"""``csops import accounts|contacts|users FILE.csv``: rows of a CSV file into the built-in CRM.

The header names the fields (docs/events.md has the table); columns may come in any order and
the ones left out keep their stored values on records that exist already. An empty cell clears an
optional field. Every problem of a row is reported with its line and column, and a row with any
problem is left out; the good rows are written in one transaction. Owners, managers and backups
are given by user id or email; a manager or backup may be a user of the same file.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import Account, Contact, User
from connectors.sqlcrm import SQLCRM

__all__ = ["COLUMNS", "ImportFileError", "ImportReport", "Rejected", "import_csv"]

COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("id", "name", "segment", "lifecycle_stage", "owner", "arr", "renewal_date", "contract_start",
                 "renewal_status", "health_score", "health_band"),
    "contacts": ("id", "account_id", "email", "first_name", "last_name", "title", "role", "phone", "primary",
                 "timezone"),
    "users": ("id", "email", "name", "title", "manager", "timezone", "out_of_office", "backup", "roles"),
}
"""The columns each kind knows; accounts also take ``fields.NAME`` for custom fields."""
REQUIRED = {"accounts": ("id", "name"), "contacts": ("id", "account_id", "email"), "users": ("id", "email")}
CUSTOM = re.compile(r"fields\.[A-Za-z_][A-Za-z0-9_]*")
TRUE, FALSE = ("true", "yes", "1", "y"), ("false", "no", "0", "n", "")


class ImportFileError(Exception):
    """The file cannot be imported at all: unreadable, not CSV, or its header is wrong."""


@dataclass(frozen=True, kw_only=True)
class Rejected:
    """One problem of one row."""

    line: int
    """The row's line in the file (the header is line 1)."""
    column: str
    """The column at fault."""
    why: str
    """What is wrong, in plain words."""


@dataclass(kw_only=True)
class ImportReport:
    """What an import did."""

    kind: str
    """accounts, contacts or users."""
    imported: int = 0
    """Rows written (inserted or replaced)."""
    rows: int = 0
    """Data rows read."""
    rejected: list[Rejected] = field(default_factory=list)
    """The problems of the rows left out."""

    @property
    def rejected_rows(self) -> int:
        """How many rows were left out."""
        return len({r.line for r in self.rejected})


class _Bad(Exception):
    def __init__(self, column: str, why: str) -> None:
        super().__init__(why)
        self.column, self.why = column, why


async def import_csv(crm: SQLCRM, kind: str, path: Path) -> ImportReport:
    """Import a CSV file of ``kind`` into ``crm``.

    Raises:
        ImportFileError: the file cannot be read, or its header lacks a required column or has an unknown one.
    """
    if kind not in COLUMNS:
        raise ImportFileError(f"csops import takes accounts, contacts or users, not {kind!r}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            _check_header(kind, header, path)
            reader.fieldnames = header
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ImportFileError(f"cannot read {path}: {exc}") from exc
    report = ImportReport(kind=kind, rows=len(rows))
    in_file = {(row.get("id") or "").strip(): row for _, row in rows} if kind == "users" else {}
    records: list[Account | Contact | User] = []
    for line, row in rows:
        cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if None in row:
            report.rejected.append(Rejected(line=line, column="(row)", why="has more cells than the header"))
            continue
        problems: list[Rejected] = []
        record = await _ROW[kind](crm, cells, line, problems, in_file)
        if problems or record is None:
            report.rejected.extend(problems)
        else:
            records.append(record)
    crm.upsert(records)
    report.imported = len(records)
    return report


def _check_header(kind: str, header: list[str], path: Path) -> None:
    if not header:
        raise ImportFileError(f"{path} is empty: the first line must name the columns")
    unknown = [h for h in header if h not in COLUMNS[kind] and not (kind == "accounts" and CUSTOM.fullmatch(h))]
    if unknown:
        extra = ", fields.NAME" if kind == "accounts" else ""
        raise ImportFileError(f"{path}: unknown column(s) {', '.join(unknown)}; {kind} columns are "
                              f"{', '.join(COLUMNS[kind])}{extra}")
    missing = [c for c in REQUIRED[kind] if c not in header]
    if missing:
        raise ImportFileError(f"{path}: the header lacks {', '.join(missing)}, which {kind} need")


def _cell(cells: dict[str, str], name: str, problems: list[Rejected], line: int,
          convert: Callable[[str], Any]) -> Any:
    try:
        return convert(cells[name])
    except _Bad as bad:
        problems.append(Rejected(line=line, column=name, why=bad.why))
        return None


def _required(value: str) -> str:
    if not value:
        raise _Bad("", "is empty; it is required")
    return value


def _email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise _Bad("", f"{value!r} is not an email address" if value else "is empty; it is required")
    return value


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise _Bad("", f"{value!r} is not a date; write YYYY-MM-DD") from None


def _arr(value: str) -> float:
    try:
        number = float(value.replace(",", "")) if value else 0.0
    except ValueError:
        raise _Bad("", f"{value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise _Bad("", f"{value!r} is not an amount of 0 or more")
    return number


def _score(value: str) -> int | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise _Bad("", f"{value!r} is not a number") from None
    if not number.is_integer() or not 0 <= number <= 100:
        raise _Bad("", f"{value!r} is not a whole number 0-100")
    return int(number)


def _band(value: str) -> str:
    if value.lower() not in ("", "green", "yellow", "red"):
        raise _Bad("", f"{value!r} is not a health band; write green, yellow or red")
    return value.lower()


def _flag(value: str) -> bool:
    if value.lower() not in TRUE + FALSE:
        raise _Bad("", f"{value!r} is not true or false")
    return value.lower() in TRUE


def _zone(value: str) -> str:
    try:
        ZoneInfo(value or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise _Bad("", f"{value!r} is not a time zone; write an IANA name like Europe/Berlin") from None
    return value or "UTC"


async def _user_ref(crm: SQLCRM, value: str, what: str, in_file: dict[str, dict[str, str | None]]) -> str | None:
    if not value:
        return None
    if value in in_file:
        return value
    for uid, row in in_file.items():
        if (row.get("email") or "").strip().lower() == value.lower():
            return uid
    user = await crm.get_user(value)
    if user is None:
        raise _Bad("", f"{value!r} is not a user (by id or email); import users first")
    return user.id


async def _account(crm: SQLCRM, cells: dict[str, str], line: int, problems: list[Rejected],
                   in_file: dict[str, dict[str, str | None]]) -> Account | None:
    account_id = _cell(cells, "id", problems, line, _required)
    if account_id is None:
        return None
    old = await crm.get_account(account_id)
    changes: dict[str, Any] = {}
    converters: dict[str, Callable[[str], Any]] = {
        "name": _required, "segment": str, "lifecycle_stage": str, "renewal_status": str, "arr": _arr,
        "renewal_date": _date, "contract_start": _date, "health_score": _score, "health_band": _band}
    for name, convert in converters.items():
        if name in cells:
            before = len(problems)
            value = _cell(cells, name, problems, line, convert)
            if len(problems) == before:
                changes[name] = value
    if "owner" in cells:
        try:
            changes["owner_id"] = await _user_ref(crm, cells["owner"], "owner", {})
        except _Bad as bad:
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
                   in_file: dict[str, dict[str, str | None]]) -> Contact | None:
    contact_id = _cell(cells, "id", problems, line, _required)
    account_id = _cell(cells, "account_id", problems, line, _required)
    email = _cell(cells, "email", problems, line, _email)
    primary = _cell(cells, "primary", problems, line, _flag) if "primary" in cells else False
    if account_id and await crm.get_account(account_id) is None:
        problems.append(Rejected(line=line, column="account_id", why=f"account {account_id!r} does not exist; "
                                 "import accounts first"))
    zone = _cell(cells, "timezone", problems, line, _zone) if cells.get("timezone", "").strip() else ""
    if problems:
        return None
    text = {k: cells.get(k, "") for k in ("first_name", "last_name", "title", "role", "phone")}
    return Contact(id=contact_id, account_id=account_id, email=email, primary=bool(primary), timezone=zone or "",
                   **text)


async def _user(crm: SQLCRM, cells: dict[str, str], line: int, problems: list[Rejected],
                in_file: dict[str, dict[str, str | None]]) -> User | None:
    user_id = _cell(cells, "id", problems, line, _required)
    email = _cell(cells, "email", problems, line, _email)
    timezone = _cell(cells, "timezone", problems, line, _zone) if "timezone" in cells else "UTC"
    away = _cell(cells, "out_of_office", problems, line, _flag) if "out_of_office" in cells else False
    refs: dict[str, str | None] = {}
    for column in ("manager", "backup"):
        try:
            refs[column] = await _user_ref(crm, cells.get(column, ""), column, in_file)
        except _Bad as bad:
            problems.append(Rejected(line=line, column=column, why=bad.why))
    if problems:
        return None
    roles = tuple(r for r in re.split(r"[;,\s]+", cells.get("roles", "")) if r)
    return User(id=user_id, email=email, name=cells.get("name", ""), title=cells.get("title", ""),
                manager_id=refs["manager"], timezone=timezone, out_of_office=bool(away), backup_id=refs["backup"],
                roles=roles)


_ROW = {"accounts": _account, "contacts": _contact, "users": _user}
