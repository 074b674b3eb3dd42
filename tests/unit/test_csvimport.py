"""``csops import accounts|contacts|users`` into the built-in CRM: the column mapping, rejected rows, exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from connectors.base import Account, User
from connectors.sqlcrm import SQLCRM
from engine.cli.main import main


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[tuple[SQLCRM, str]]:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crm = SQLCRM(url)
    crm.add_user(User(id="u-csm", email="carl@example.com", name="Carl"))
    crm.add_account(Account(id="acme", name="Acme", usage={"sso": "2025-01-01"}, fields={"tier": "gold", "old": 1},
                            health_score=70))
    yield crm, url
    crm.close()


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_accounts_are_upserted_and_bad_rows_reported_by_line_and_column(
        tmp_path: Path, crm: tuple[SQLCRM, str], capsys: pytest.CaptureFixture[str]) -> None:
    sql, url = crm
    path = write(tmp_path, "accounts.csv", (
        "\ufeffid,name,segment,owner,arr,renewal_date,health_band,fields.tier,fields.old\n"
        "acme,Acme Corp,strategic,carl@example.com,\"120,000\",2027-03-01,green,platinum,\n"
        "beta,Beta,smb,u-csm,5000,,red,,\n"
        "bad,,smb,nobody@example.com,lots,03/01/2027,blue,,\n"
        "gamma,Gamma,smb,,,2027-01-01,,\"multi\nline\",\n"))
    assert main(["import", "accounts", path, "--database-url", url]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{path}:4: name: is empty; it is required",
                   f"{path}:4: arr: 'lots' is not a number; write an amount like 120000 or 120000.50",
                   f"{path}:4: renewal_date: '03/01/2027' is not a date; write YYYY-MM-DD",
                   f"{path}:4: health_band: 'blue' is not a health band; write green, yellow or red",
                   f"{path}:4: owner: 'nobody@example.com' is not a user (by id or email); import users first",
                   "3 of 4 accounts imported, 1 rejected"]
    acme = asyncio.run(sql.get_account("acme"))
    assert acme is not None
    assert (acme.name, acme.segment, acme.owner_id, acme.arr, acme.renewal_date, acme.health_band) == (
        "Acme Corp", "strategic", "u-csm", 120000.0, date(2027, 3, 1), "green")
    # Columns left out keep their values; an empty custom cell removes the field.
    assert (acme.usage, acme.health_score, acme.fields) == ({"sso": "2025-01-01"}, 70, {"tier": "platinum"})
    beta = asyncio.run(sql.get_account("beta"))
    assert beta is not None and (beta.owner_id, beta.renewal_date, beta.fields) == ("u-csm", None, {})
    gamma = asyncio.run(sql.get_account("gamma"))
    assert gamma is not None and gamma.fields == {"tier": "multi\nline"} and gamma.arr == 0.0
    assert asyncio.run(sql.get_account("bad")) is None


def test_users_may_name_a_manager_from_the_same_file(
        tmp_path: Path, crm: tuple[SQLCRM, str], capsys: pytest.CaptureFixture[str]) -> None:
    sql, url = crm
    path = write(tmp_path, "users.csv", (
        "id,email,name,manager,timezone,out_of_office,backup,roles\n"
        "u-ann,ann@example.com,Ann,boss@example.com,Europe/Berlin,yes,carl@example.com,csm;ae\n"
        "u-boss,boss@example.com,Boss,,,,,\n"
        "u-x,not-an-email,X,,Mars/Olympus,maybe,,\n"))
    assert main(["import", "users", path, "--database-url", url]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:4: email: 'not-an-email' is not an email address",
        f"{path}:4: timezone: 'Mars/Olympus' is not a time zone; write an IANA name like Europe/Berlin",
        f"{path}:4: out_of_office: 'maybe' is not true or false",
        "2 of 3 users imported, 1 rejected"]
    ann = asyncio.run(sql.get_user("ann@example.com"))
    assert ann == User(id="u-ann", email="ann@example.com", name="Ann", manager_id="u-boss",
                       timezone="Europe/Berlin", out_of_office=True, backup_id="u-csm", roles=("csm", "ae"))


def test_contacts_need_an_existing_account(
        tmp_path: Path, crm: tuple[SQLCRM, str], capsys: pytest.CaptureFixture[str]) -> None:
    sql, url = crm
    path = write(tmp_path, "contacts.csv", (
        "id,account_id,email,first_name,last_name,role,primary\n"
        "c-1,acme,pat@acme.example,Pat,Lee,champion,true\n"
        "c-2,ghost,g@ghost.example,G,,,\n"))
    assert main(["import", "contacts", path, "--database-url", url]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:3: account_id: account 'ghost' does not exist; import accounts first",
        "1 of 2 contacts imported, 1 rejected"]
    [pat] = asyncio.run(sql.list_contacts("acme"))
    assert (pat.email, pat.first_name, pat.role, pat.primary) == ("pat@acme.example", "Pat", "champion", True)


def test_a_contacts_time_zone_is_imported_and_checked(
        tmp_path: Path, crm: tuple[SQLCRM, str], capsys: pytest.CaptureFixture[str]) -> None:
    sql, url = crm
    path = write(tmp_path, "contacts.csv", (
        "id,account_id,email,timezone\n"
        "c-1,acme,pat@acme.example,America/Chicago\n"
        "c-2,acme,lee@acme.example,\n"
        "c-3,acme,bad@acme.example,Central\n"))
    assert main(["import", "contacts", path, "--database-url", url]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:4: timezone: 'Central' is not a time zone; write an IANA name like Europe/Berlin",
        "2 of 3 contacts imported, 1 rejected"]
    zones = {c.id: c.timezone for c in asyncio.run(sql.list_contacts("acme"))}
    assert zones == {"c-1": "America/Chicago", "c-2": ""}


def test_an_all_good_file_exits_0(tmp_path: Path, crm: tuple[SQLCRM, str],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "a.csv", "id,name\nzeta,Zeta\n")
    assert main(["import", "accounts", path, "--database-url", crm[1]]) == 0
    assert capsys.readouterr().out == "1 of 1 accounts imported, 0 rejected\n"


@pytest.mark.parametrize(("text", "message"), [
    ("id,nmae\nx,y\n", "unknown column(s) nmae; the columns are id, name, segment, lifecycle_stage, owner, arr, "
                       "renewal_date, contract_start, renewal_status, health_score, health_band, fields.NAME"),
    ("id,segment\nx,y\n", "the header lacks name, which accounts need"),
    ("", "is empty: the first line must name the columns"),
])
def test_a_wrong_header_exits_2_and_imports_nothing(tmp_path: Path, crm: tuple[SQLCRM, str], text: str,
                                                     message: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "a.csv", text)
    assert main(["import", "accounts", path, "--database-url", crm[1]]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_exits_2(tmp_path: Path, crm: tuple[SQLCRM, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "users", str(tmp_path / "nope.csv"), "--database-url", crm[1]]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_event_send_rejects_an_invalid_event_without_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["event", "send", "--type", "health.updated", "--account", "acme", "--id", "e1",
                 "--data", '{"score": 101}']) == 1
    assert capsys.readouterr().out == "rejected e1: data.score: must be a number 0-100, not 101\n"
    assert main(["event", "send", "--type", "a.b", "--account", "acme", "--data", "{"]) == 2


def test_event_import_reports_lines_that_are_not_json_or_invalid(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "e.jsonl", '{"id": "e1"\n\n{"id": "e2", "type": "x", "account_id": "a"}\n')
    assert main(["event", "import", path]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:1: rejected: not JSON (Expecting ',' delimiter at column 12)",
        f"{path}:3: rejected e2: type: must be a dotted lower-case name like health.updated or "
        "billing.invoice_overdue, not 'x'; occurred_at: is required"]


def test_a_database_url_that_is_not_one_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "a.csv", "id,name\nzeta,Zeta\n")
    assert main(["import", "accounts", path, "--database-url", "nonsense://x"]) == 2
    assert capsys.readouterr().err == (
        "csops import: 'nonsense://x' is not a database URL csops can open (Can't load plugin: "
        "sqlalchemy.dialects:nonsense); write e.g. sqlite:///.csops/csops.db or postgresql+psycopg://user@host/db\n")
