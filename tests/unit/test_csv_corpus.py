"""Hostile and careless CSV files for ``csops import accounts``, each with its exact outcome.

Every case imports over an existing account, ``northwind``, whose stored values must survive
anything but an explicit cell: a truncated row, a row with a cell too many, a broken quote, a
duplicate id, a file that is not UTF-8 — none of them may clear or change what is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from connectors.base import Account, User
from connectors.sqlcrm import SQLCRM
from engine.cli.main import main

H = "id,name,segment,owner,arr,renewal_date,health_score,health_band"
NORTHWIND = Account(id="northwind", name="Northwind Traders", segment="strategic", owner_id="u-csm", arr=180000.0,
                    renewal_date=date(2027, 6, 30), health_score=72, health_band="yellow", fields={"tier": "gold"})
SAME: dict[str, Account | None] = {"northwind": NORTHWIND}
"""The stored accounts when nothing may have changed."""
TRUNCATED = ("(row): has 3 cell(s), the header has 8: a truncated row; nothing of it was imported, so no stored "
             "value was cleared (write an empty cell to clear one)")
LONG_ROW = ("(row): has 9 cell(s), the header has 8: a cell too many (an unquoted separator in a value? quote "
            "the value)")
COLUMNS = ("id, name, segment, lifecycle_stage, owner, arr, renewal_date, contract_start, renewal_status, "
           "health_score, health_band, fields.NAME")


@dataclass(frozen=True)
class Case:
    """One file, the arguments after it, and what must come of it."""

    name: str
    text: str | bytes
    exit: int
    out: list[str]
    """stdout lines; ``{f}`` is the file's path."""
    accounts: Mapping[str, Account | None]
    """Each account's stored state afterwards (None: it must not exist)."""
    args: tuple[str, ...] = ()
    err: str = ""
    """A part of stderr ("" when stderr must be empty)."""


def nw(**changes: object) -> dict[str, Account | None]:
    from dataclasses import replace

    return {"northwind": replace(NORTHWIND, **changes)}  # type: ignore[arg-type]


CASES = [
    Case("short row over an existing account", f"{H}\nnorthwind,Northwind Traders,strategic\n", 1,
         [f"{{f}}:2: {TRUNCATED}", "0 of 1 accounts imported, 1 rejected"], SAME),
    Case("short row among good rows", f"{H}\nzeta,Zeta,smb,u-csm,10,2027-01-01,50,green\nnorthwind,N\n", 1,
         ["{f}:3: (row): has 2 cell(s), the header has 8: a truncated row; nothing of it was imported, so no stored "
          "value was cleared (write an empty cell to clear one)", "1 of 2 accounts imported, 1 rejected"],
         {**SAME, "zeta": Account(id="zeta", name="Zeta", segment="smb", owner_id="u-csm", arr=10.0,
                                  renewal_date=date(2027, 1, 1), health_score=50, health_band="green")}),
    Case("long row", f"{H}\nnorthwind,Northwind, Inc.,strategic,u-csm,1,2027-01-01,1,red\n", 1,
         [f"{{f}}:2: {LONG_ROW}", "0 of 1 accounts imported, 1 rejected"], SAME),
    Case("trailing separator makes a long row", f"{H}\nnorthwind,N,s,u-csm,1,2027-01-01,1,red,\n", 1,
         [f"{{f}}:2: {LONG_ROW}", "0 of 1 accounts imported, 1 rejected"], SAME),
    Case("explicitly empty cells clear optional fields", f"{H}\nnorthwind,Northwind Traders,,,,,,\n", 0,
         ["1 of 1 accounts imported, 0 rejected"],
         nw(segment="", owner_id=None, arr=0.0, renewal_date=None, health_score=None, health_band="")),
    Case("columns left out keep their values", "id,name\nnorthwind,Northwind Ltd\n", 0,
         ["1 of 1 accounts imported, 0 rejected"], nw(name="Northwind Ltd")),
    Case("byte order mark and CRLF",
         f"\ufeff{H}\r\nnorthwind,Northwind,strategic,u-csm,180000,2027-06-30,72,yellow\r\n", 0,
         ["1 of 1 accounts imported, 0 rejected"], nw(name="Northwind")),
    Case("quoted separator and doubled quotes", 'id,name\nnorthwind,"Northwind, ""The"" Traders"\n', 0,
         ["1 of 1 accounts imported, 0 rejected"], nw(name='Northwind, "The" Traders')),
    Case("a quoted cell over two lines, then a bad row keeps its own line",
         'id,name,health_score\nnorthwind,"North\nwind",72\nzeta,Zeta,101\n', 1,
         ["{f}:4: health_score: '101' is not a whole number 0-100", "1 of 2 accounts imported, 1 rejected"],
         nw(name="North\nwind")),
    Case("a quote never closed swallows the rest: rejected, with a hint",
         'id,name,segment\nnorthwind,"Northwind,strategic\nzeta,Zeta,smb\n', 1,
         ["{f}:2: (row): has 2 cell(s), the header has 3: a truncated row; nothing of it was imported, so no stored "
          "value was cleared (write an empty cell to clear one); a quoted cell runs from line 2 to 3: is a closing "
          "quote missing?", "0 of 1 accounts imported, 1 rejected"], SAME),
    Case("formula in a name is stored as text, never evaluated", "id,name\nnorthwind,=cmd|' /C calc'!A0\n", 0,
         ["1 of 1 accounts imported, 0 rejected"], nw(name="=cmd|' /C calc'!A0")),
    Case("formula in a number is not a number", "id,name,arr\nnorthwind,N,=1+1\n", 1,
         ["{f}:2: arr: '=1+1' is not a number; write an amount like 120000 or 120000.50",
          "0 of 1 accounts imported, 1 rejected"], SAME),
    Case("a cell over 10,000 characters", f"id,name\nnorthwind,{'N' * 10_001}\n", 1,
         ["{f}:2: name: the cell is longer than 10,000 characters", "0 of 1 accounts imported, 1 rejected"], SAME),
    Case("a cell of exactly 10,000 characters", f"id,name\nnorthwind,{'N' * 10_000}\n", 0,
         ["1 of 1 accounts imported, 0 rejected"], nw(name="N" * 10_000)),
    Case("a cell past the CSV reader's limit refuses the file", f"id,name\nzeta,Z\nnorthwind,\"{'N' * 140_000}\"\n", 2,
         [], SAME, err=":3: not readable as CSV: field larger than field limit (131072)"),
    Case("NUL in a cell", "id,name\nnorthwind,North\x00wind\n", 1,
         ["{f}:2: (row): has a NUL character: is this a CSV text file?", "0 of 1 accounts imported, 1 rejected"], SAME),
    Case("not UTF-8", "id,name\nzeta,Z\nnorthwind,Caf\xe9\n".encode("latin-1"), 2, [], SAME,
         err=":3: not UTF-8 (byte 0xe9); save the file as UTF-8 (in Excel: CSV UTF-8)"),
    Case("bad dates", "id,name,renewal_date\nnorthwind,N,2027-02-30\nb,B,03/01/2027\nc,C,20270301\nd,D,2027-6-1\n", 1,
         [f"{{f}}:{n}: renewal_date: {v!r} is not a date; write YYYY-MM-DD"
          for n, v in ((2, "2027-02-30"), (3, "03/01/2027"), (4, "20270301"), (5, "2027-6-1"))]
         + ["0 of 4 accounts imported, 4 rejected"], {**SAME, "b": None}),
    Case("bad amounts", "id,name,arr\nnorthwind,N,\"1.234,56\"\nb,B,-5\nc,C,1e400\nd,D,NaN\ne,E,12abc\nf,F,\"12,34\"\n",
         1, [f"{{f}}:{n}: arr: {v!r} is not " + ("an amount of 0 or more" if v == "-5" else
                                                  "a number; write an amount like 120000 or 120000.50")
             for n, v in ((2, "1.234,56"), (3, "-5"), (4, "1e400"), (5, "NaN"), (6, "12abc"), (7, "12,34"))]
         + ["0 of 6 accounts imported, 6 rejected"], {**SAME, "b": None}),
    Case("amounts as CRM exports write them", 'id,name,arr\nnorthwind,N,"$120,000.50"\nb,B,"250,000"\n', 0,
         ["2 of 2 accounts imported, 0 rejected"],
         {**nw(name="N", arr=120000.5), "b": Account(id="b", name="B", arr=250000.0)}),
    Case("bad scores and bands", "id,name,health_score,health_band\nnorthwind,N,50.5,red\nb,B,-1,\nc,C,x,purple\n", 1,
         ["{f}:2: health_score: '50.5' is not a whole number 0-100", "{f}:3: health_score: '-1' is not a whole number "
          "0-100", "{f}:4: health_score: 'x' is not a number",
          "{f}:4: health_band: 'purple' is not a health band; write green, yellow or red",
          "0 of 3 accounts imported, 3 rejected"], SAME),
    Case("control characters in ids, beside a non-ASCII one",
         'id,name\n"nl\nid",NL\nnul\x00id,NUL\ntab\tid,Tab\nesc\x1b[2Jid,Esc\nzeta \u00fc\u2713,Zeta\n', 1,
         ["{f}:2: id: 'nl\\nid' holds control characters (NUL, tab, newline...); an id must be printable text",
          "{f}:4: (row): has a NUL character: is this a CSV text file?",
          "{f}:5: id: 'tab\\tid' holds control characters (NUL, tab, newline...); an id must be printable text",
          "{f}:6: id: 'esc\\x1b[2Jid' holds control characters (NUL, tab, newline...); an id must be printable text",
          "1 of 5 accounts imported, 4 rejected"],
         {**SAME, "zeta \u00fc\u2713": Account(id="zeta \u00fc\u2713", name="Zeta"), "nl\nid": None,
          "nul\x00id": None, "tab\tid": None}),
    Case("an id over 255 characters", f"id,name\n{'x' * 256},Long\n", 1,
         ["{f}:2: id: has 256 characters; an id has at most 255", "0 of 1 accounts imported, 1 rejected"],
         {**SAME, "x" * 256: None}),
    Case("duplicate ids: none of them", "id,name\nnorthwind,First\nzeta,Zeta\nnorthwind,Second\n", 1,
         ["{f}:2: id: id 'northwind' is on lines 2, 4: one row per id; none of them was imported",
          "{f}:4: id: id 'northwind' is on lines 2, 4: one row per id; none of them was imported",
          "1 of 3 accounts imported, 2 rejected"], {**SAME, "zeta": Account(id="zeta", name="Zeta")}),
    Case("header in another case and with spaces", "ID , Name,SEGMENT,Fields.Tier\nnorthwind,N,smb,silver\n", 0,
         ["1 of 1 accounts imported, 0 rejected"], nw(name="N", segment="smb", fields={"tier": "gold",
                                                                                      "Tier": "silver"})),
    Case("a column named twice", "id,name,Name\nnorthwind,A,B\n", 2, [], SAME,
         err="columns 2 and 3 both give name; keep one"),
    Case("blank and whitespace lines are skipped, lines still count", "id,name\n\nnorthwind,N\n   \nzeta,\n", 1,
         ["{f}:5: name: is empty; it is required", "1 of 2 accounts imported, 1 rejected"], nw(name="N")),
    Case("an empty id", "id,name\n,Nameless\n", 1, ["{f}:2: id: is empty; it is required",
                                                     "0 of 1 accounts imported, 1 rejected"], SAME),
    Case("semicolons are detected", "id;name;arr\nnorthwind;Northwind;\"1,000\"\n", 0,
         ["1 of 1 accounts imported, 0 rejected"], nw(name="Northwind", arr=1000.0),
         err="reading {f} as ';'-separated (detected from its header; --delimiter says otherwise)"),
    Case("tabs are detected", "id\tname\tsegment\nnorthwind\tNorthwind\tmid\n", 0,
         ["1 of 1 accounts imported, 0 rejected"], nw(name="Northwind", segment="mid"),
         err="reading {f} as tab-separated"),
    Case("Excel's sep= line names the separator", "sep=;\nid;name\nnorthwind;N\nshort\n", 1,
         ["{f}:4: (row): has 1 cell(s), the header has 2: a truncated row; nothing of it was imported, so no stored "
          "value was cleared (write an empty cell to clear one)", "1 of 2 accounts imported, 1 rejected"],
         nw(name="N")),  # the file says its separator: nothing to tell
    Case("a wrong --delimiter is explained", "id;name\nnorthwind;N\n", 2, [], SAME, args=("--delimiter", ","),
         err="unknown column(s) id;name; the columns are " + COLUMNS + " (rename others with --map HEADER=field, or "
             "leave them out with --map HEADER=); the header looks ';'-separated: use --delimiter ';'"),
    Case("--delimiter tab", "id\tname\nnorthwind\tN\n", 0, ["1 of 1 accounts imported, 0 rejected"], nw(name="N"),
         args=("--delimiter", "\\t")),
    Case("--delimiter that is not one", "id,name\n", 2, [], SAME, args=("--delimiter", "|"),
         err="--delimiter takes ',', ';' or tab ('\\t'), not '|'"),
    Case("--map renames a CRM export's headers and leaves others out",
         "Account ID,Account Name,Annual Revenue,Last Activity\nnorthwind,Northwind Co,\"200,000\",2025-01-01\n", 0,
         ["1 of 1 accounts imported, 0 rejected"], nw(name="Northwind Co", arr=200000.0),
         args=("--map", "Account ID=id", "--map", "account name=name", "--map", "Annual Revenue=arr",
               "--map", "Last Activity=")),
    Case("--map to a field that does not exist", "Account ID,name\nnorthwind,N\n", 2, [], SAME,
         args=("--map", "Account ID=acount_id"), err="--map Account ID=acount_id: 'acount_id' is not a column"),
    Case("--map of a column the file lacks", "id,name\nnorthwind,N\n", 2, [], SAME,
         args=("--map", "Owner Email=owner"), err="has no column 'Owner Email'; its columns are id, name"),
    Case("--map without =", "id,name\n", 2, [], SAME, args=("--map", "owner"),
         err="--map takes HEADER=FIELD (e.g. 'Account Name=name'), not 'owner'"),
    Case("only a header", "id,name\n", 0, ["0 of 0 accounts imported, 0 rejected"], SAME),
    Case("an unknown owner", "id,name,owner\nnorthwind,N,ghost@example.com\n", 1,
         ["{f}:2: owner: 'ghost@example.com' is not a user (by id or email); import users first",
          "0 of 1 accounts imported, 1 rejected"], SAME),
]


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[tuple[SQLCRM, str]]:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crm = SQLCRM(url)
    crm.add_user(User(id="u-csm", email="carl@example.com", name="Carl"))
    crm.add_account(NORTHWIND)
    yield crm, url
    crm.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_csv(case: Case, tmp_path: Path, crm: tuple[SQLCRM, str],
                     capsys: pytest.CaptureFixture[str]) -> None:
    sql, url = crm
    path = tmp_path / "accounts.csv"
    path.write_bytes(case.text if isinstance(case.text, bytes) else case.text.encode("utf-8"))
    assert main(["import", "accounts", str(path), "--database-url", url, *case.args]) == case.exit
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [line.replace("{f}", str(path)) for line in case.out]
    if case.err:
        assert case.err.replace("{f}", str(path)) in captured.err
    else:
        assert captured.err == ""
    for account_id, expected in case.accounts.items():
        assert asyncio.run(sql.get_account(account_id)) == expected


def test_the_corpus_covers_each_family() -> None:
    assert len(CASES) >= 30


def test_dry_run_says_what_would_change_per_field_and_writes_nothing(
        tmp_path: Path, crm: tuple[SQLCRM, str], capsys: pytest.CaptureFixture[str]) -> None:
    sql, url = crm
    path = tmp_path / "accounts.csv"
    path.write_text(f"{H}\nnorthwind,Northwind Traders,strategic,,200000,2027-06-30,72,red\n"
                    "zeta,Zeta,smb,carl@example.com,5000,,,\nshort,Short\n"
                    "northwind2,N2,,,,,,\n", encoding="utf-8")
    sql.add_account(Account(id="northwind2", name="N2"))
    assert main(["import", "accounts", str(path), "--database-url", url, "--dry-run"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:4: (row): has 2 cell(s), the header has 8: a truncated row; nothing of it was imported, so no stored "
        "value was cleared (write an empty cell to clear one)",
        "would change northwind: owner_id: 'u-csm' -> (empty); arr: $180,000 -> $200,000; health_band: 'yellow' -> "
        "'red'",
        "would add zeta",
        "dry run: 3 of 4 accounts would be imported (1 new, 1 changed, 1 unchanged), 1 rejected; nothing was written"]
    assert asyncio.run(sql.get_account("northwind")) == NORTHWIND
    assert asyncio.run(sql.get_account("zeta")) is None


def test_contacts_and_users_keep_what_their_columns_leave_out(
        tmp_path: Path, crm: tuple[SQLCRM, str], capsys: pytest.CaptureFixture[str]) -> None:
    sql, url = crm
    sql.add_user(User(id="u-ann", email="ann@example.com", name="Ann", title="CSM", timezone="Europe/Berlin",
                      roles=("csm",)))
    users = tmp_path / "users.csv"
    users.write_text("id,email\nu-ann,ann@corp.example\n", encoding="utf-8")
    assert main(["import", "users", str(users), "--database-url", url]) == 0
    assert asyncio.run(sql.get_user("u-ann")) == User(id="u-ann", email="ann@corp.example", name="Ann", title="CSM",
                                                      timezone="Europe/Berlin", roles=("csm",))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("id,account_id,email,phone,primary\nc-1,northwind,pat@nw.example,+1 555,yes\n",
                        encoding="utf-8")
    assert main(["import", "contacts", str(contacts), "--database-url", url]) == 0
    contacts.write_text("id,account_id,email,title\nc-1,northwind,pat@nw.example,VP\n", encoding="utf-8")
    assert main(["import", "contacts", str(contacts), "--database-url", url]) == 0
    [pat] = asyncio.run(sql.list_contacts("northwind"))
    assert (pat.phone, pat.primary, pat.title) == ("+1 555", True, "VP")
    capsys.readouterr()
