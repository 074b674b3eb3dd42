"""Reading an import CSV before any of it is trusted: its separator, its header, and its rows by line.

A row with fewer or more cells than the header is a problem of that row, never padded: a truncated
export (``northwind,Northwind Traders,strategic`` under an 8-column header) must not read as
"the other five cells are empty", which would clear stored values. Header names are matched
without regard to case or surrounding spaces; ``--map HEADER=field`` renames a column of a CRM
export (``--map HEADER=`` leaves it out).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import CsopsError

if TYPE_CHECKING:
    from _csv import Reader

__all__ = ["MAX_CELL", "SEPARATORS", "ImportFileError", "Row", "Table", "parse_delimiter", "read_table"]

SEPARATORS = {",": "','", ";": "';'", "\t": "tab"}
"""The separators csops reads (and detects): comma, semicolon, tab."""
MAX_CELL = 10_000
"""A row with a longer cell is rejected (a runaway quote or a pasted blob, not a CRM value)."""
CUSTOM = re.compile(r"fields\.([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


class ImportFileError(CsopsError):
    """The file cannot be imported at all: unreadable, not CSV, or its header is wrong."""


@dataclass(frozen=True, kw_only=True)
class Row:
    """One data row: its cells by field name, or why it cannot be read as a row."""

    line: int
    """The line the row starts on (the header is line 1)."""
    cells: dict[str, str]
    """Field name to stripped cell text; empty when ``problem`` is set."""
    problem: str = ""
    """Why the row is rejected before its cells are looked at ("" when it is fine)."""
    column: str = "(row)"
    """The column ``problem`` is about ("(row)": the row as a whole)."""


@dataclass(frozen=True, kw_only=True)
class Table:
    """A CSV file read: what separated it, its fields, its rows."""

    delimiter: str
    """The separator used."""
    detected: bool
    """True when the separator was detected rather than given."""
    fields: tuple[str, ...]
    """The field each column feeds ("" for a column left out with ``--map HEADER=``)."""
    rows: tuple[Row, ...]
    """The data rows, blank lines skipped."""


def parse_delimiter(text: str) -> str:
    """The separator ``--delimiter`` names: ``,``, ``;``, or a tab (``\\t``, ``tab`` or a tab character).

    Raises:
        ImportFileError: anything else.
    """
    value = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(text, text)
    if value not in SEPARATORS:
        raise ImportFileError(f"--delimiter takes ',', ';' or tab ('\\t'), not {text!r}")
    return value


def read_table(path: Path, columns: tuple[str, ...], *, custom: bool, delimiter: str = "",
               mapping: Mapping[str, str] | None = None) -> Table:
    """Read ``path``: detect the separator (unless given), map the header onto ``columns``, split the rows.

    Args:
        path: the CSV file (UTF-8, a BOM is fine).
        columns: the field names this kind of record knows.
        custom: whether ``fields.NAME`` columns are allowed.
        delimiter: the separator; "" detects it among comma, semicolon and tab from the header line.
        mapping: header name to field name ("" leaves the column out); wins over the names themselves.

    Raises:
        ImportFileError: the file is unreadable, not UTF-8, not CSV, or its header is empty, has an
            unknown or repeated column, or ``mapping`` names a column the file lacks or a field that
            does not exist.
    """
    text = _text(path)
    first, _, rest = text.partition("\n")
    # Excel's "sep=;" first line names the separator; the header follows it.
    said = re.fullmatch(r"sep=(.)\r?", first)
    detected = not delimiter
    if detected and said and said.group(1) in SEPARATORS:
        delimiter, detected = said.group(1), False
    elif detected:
        try:
            delimiter = csv.Sniffer().sniff(rest.partition("\n")[0] if said else first,
                                            delimiters="".join(SEPARATORS)).delimiter
        except csv.Error:  # a single column: nothing to tell the separator by
            delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        if said:
            next(reader)
        header = next(reader, [])
        fields = _fields(path, [h.strip() for h in header], columns, custom, delimiter, mapping or {})
        rows = _rows(reader, fields)
    except csv.Error as exc:
        raise ImportFileError(f"{path}:{reader.line_num}: not readable as CSV: {exc}") from exc
    return Table(delimiter=delimiter, detected=detected, fields=fields, rows=rows)


def _text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8 "
                              "(in Excel: CSV UTF-8)") from exc


def _fields(path: Path, header: list[str], columns: tuple[str, ...], custom: bool, delimiter: str,
            mapping: Mapping[str, str]) -> tuple[str, ...]:
    if not any(header):
        raise ImportFileError(f"{path} is empty: the first line must name the columns")
    by_lower = {h.lower(): h for h in header}
    for name, target in mapping.items():
        if name not in header and name.lower() not in by_lower:
            raise ImportFileError(f"--map {name}={target}: {path} has no column {name!r}; its columns are "
                                  f"{', '.join(header)}")
        if target and _field(target, columns, custom) is None:
            raise ImportFileError(f"--map {name}={target}: {target!r} is not a column csops knows; they are "
                                  f"{', '.join(columns)}" + (", fields.NAME" if custom else ""))
    lowered = {k.lower(): v for k, v in mapping.items()}
    fields: list[str] = []
    unknown: list[str] = []
    for name in header:
        target = mapping[name] if name in mapping else lowered.get(name.lower(), name)
        found = _field(target, columns, custom) if target else ""  # "": left out (unnamed, or --map HEADER=)
        if found is None:
            unknown.append(name)
        fields.append(found or "")
    if unknown:
        raise ImportFileError(_unknown(path, unknown, columns, custom, delimiter))
    seen: dict[str, int] = {}
    for number, name in enumerate(fields, 1):
        if name and name in seen:
            raise ImportFileError(f"{path}: columns {seen[name]} and {number} both give {name}; keep one "
                                  "(or leave one out with --map HEADER=)")
        seen[name] = number
    return tuple(fields)


def _field(name: str, columns: tuple[str, ...], custom: bool) -> str | None:
    """The field a column name gives (case and spaces aside), or None when it is not one."""
    name = name.strip()
    if name.lower() in columns:
        return name.lower()
    match = CUSTOM.fullmatch(name) if custom else None
    return f"fields.{match.group(1)}" if match else None


def _unknown(path: Path, unknown: list[str], columns: tuple[str, ...], custom: bool, delimiter: str) -> str:
    text = (f"{path}: unknown column(s) {', '.join(unknown)}; the columns are {', '.join(columns)}"
            + (", fields.NAME" if custom else "") + " (rename others with --map HEADER=field, or leave them out "
            "with --map HEADER=)")
    for other, label in SEPARATORS.items():
        if other != delimiter and any(other in name for name in unknown):
            return f"{text}; the header looks {label}-separated: use --delimiter {label}"
    return text


def _rows(reader: Reader, fields: tuple[str, ...]) -> tuple[Row, ...]:
    rows: list[Row] = []
    end = reader.line_num
    for cells in reader:
        line, end = end + 1, reader.line_num
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # a blank line
        if len(cells) != len(fields):
            rows.append(Row(line=line, cells={}, problem=_miscount(cells, fields, line, end)))
            continue
        long = next((f or f"column {i + 1}" for i, (f, c) in enumerate(zip(fields, cells, strict=True))
                     if len(c) > MAX_CELL), None)
        if long is not None:
            rows.append(Row(line=line, cells={}, column=long,
                            problem=f"the cell is longer than {MAX_CELL:,} characters"))
            continue
        if any("\x00" in c for c in cells):
            rows.append(Row(line=line, cells={}, problem="has a NUL character: is this a CSV text file?"))
            continue
        rows.append(Row(line=line, cells={f: c.strip() for f, c in zip(fields, cells, strict=True) if f}))
    return tuple(rows)


def _miscount(cells: list[str], fields: tuple[str, ...], line: int, end: int) -> str:
    fewer = len(cells) < len(fields)
    why = (f"has {len(cells)} cell(s), the header has {len(fields)}: "
           + ("a truncated row; nothing of it was imported, so no stored value was cleared (write an empty cell "
              "to clear one)" if fewer else "a cell too many (an unquoted separator in a value? quote the value)"))
    if end > line:
        why += f"; a quoted cell runs from line {line} to {end}: is a closing quote missing?"
    return why
