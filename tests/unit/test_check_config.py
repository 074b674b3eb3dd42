"""``csops check-config`` as a user runs it: the file checked, then every connection tested for real."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli.main import main
from tests.conftest import ROOT

DEFAULT_LINES = [
    "crm (builtin): OK",
    "email (outbox): OK",
    "chat (outbox): OK",
    "webhooks (no hosts allowed): OK",
    "store (sqlite): OK",
]


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working folder and no CSOPS_* variables: what a fresh checkout sees."""
    for name in list(os.environ):
        if name.startswith("CSOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    status = main(["check-config", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def write(folder: Path, text: str, name: str = "csops.yaml") -> str:
    (folder / name).write_text(text, encoding="utf-8")
    return name


def test_embedded_defaults_through_the_console_script(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSOPS_")} | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "check-config"], capture_output=True, text=True,
                          cwd=workdir, env=env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "no csops.yaml found (and CSOPS_CONFIG is not set): checking the embedded defaults",
        *DEFAULT_LINES, "all 5 connections work"]
    assert (workdir / ".csops" / "csops.db").is_file() and (workdir / ".csops" / "outbox" / "mail").is_dir()


def test_a_file_is_found_in_the_working_folder(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(workdir, "email:\n  folder: mail-out\nchat:\n  path: chat/out.jsonl\n")
    status, lines, _ = run(capsys)
    assert status == 0
    assert lines == ["csops.yaml: checking 5 connections", *DEFAULT_LINES, "all 5 connections work"]
    assert (workdir / "mail-out").is_dir() and (workdir / "chat" / "out.jsonl").is_file()


def test_unreachable_smtp_server_exits_1_in_plain_words(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    path = write(workdir, f"email:\n  kind: smtp\n  host: 127.0.0.1\n  port: {port}\n  security: none\n  timeout: 5\n",
                 "mail.yaml")
    status, lines, _ = run(capsys, "--config", path)
    assert status == 1
    assert lines[2] == (f"email (smtp): cannot connect to the SMTP server at 127.0.0.1:{port} (Connection refused): "
                        "check email.host and email.port, and that the server is up and reachable from here")
    assert [line for line in lines if line.endswith(": OK")] == [DEFAULT_LINES[i] for i in (0, 2, 3, 4)]
    assert lines[-1] == "1 of 5 connections has problems"
    assert "Traceback" not in "\n".join(lines)


def test_unreachable_database_fails_crm_email_and_store_and_hides_the_password(
        workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("PGPASSWORD", "pg-S3KR1T")
    write(workdir, f"store:\n  database_url: postgresql+psycopg://csops:${{PGPASSWORD}}@127.0.0.1:{port}/csops\n")
    status, lines, err = run(capsys)
    assert status == 1
    shown = f"postgresql+psycopg://csops:***@127.0.0.1:{port}/csops"
    refused = f'cannot use the database at {shown}: connection failed: connection to server at "127.0.0.1", ' \
              f"port {port} failed: Connection refused"
    assert lines[1] == f"crm (builtin): {refused}"
    assert lines[2:5] == ["email (outbox): the suppression list: " + refused, "chat (outbox): OK",
                          "webhooks (no hosts allowed): OK"]
    assert lines[5] == f"store (postgresql): {refused}"
    assert lines[-1] == "3 of 5 connections have problems"
    assert "pg-S3KR1T" not in "\n".join(lines) + err


def test_fallback_owner_must_be_a_user_of_the_crm(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.base import User
    from connectors.sqlcrm import SQLCRM

    monkeypatch.setenv("CSOPS_FALLBACK_OWNER", "ops@example.com")
    status, lines, _ = run(capsys)
    assert status == 1
    assert lines[1] == ("crm (builtin): the fallback owner ops@example.com is not a user in this CRM: work that has "
                        "nobody else to go to would fail; set fallback_owner (or CSOPS_FALLBACK_OWNER) to someone "
                        "the CRM has")
    crm = SQLCRM(f"sqlite:///{workdir / '.csops' / 'csops.db'}")
    try:
        crm.add_user(User(id="u-ops", email="ops@example.com", name="Ops"))
    finally:
        crm.close()
    status, lines, _ = run(capsys)
    assert (status, lines[1]) == (0, "crm (builtin): OK")


def test_database_url_without_a_driver(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(workdir, "store:\n  database_url: mongodb://db.example.com/csops\n")
    status, lines, _ = run(capsys)
    assert status == 1
    assert lines[5] == ("store (mongodb): no database driver for 'mongodb': use sqlite:/// or "
                        "postgresql+psycopg://")


def test_invalid_config_exits_2_with_every_position_and_no_secret(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBSPOT_TOKEN", raising=False)
    write(workdir, "crm:\n  kind: hubspot\n  token: ${HUBSPOT_TOKEN}\nchat:\n  kind: slack\n"
                   "  token: xoxb-S3KR1T\nemial: {}\n")
    status, lines, err = run(capsys)
    assert status == 2
    assert lines == [
        "csops.yaml:3:10: [error] environment variable HUBSPOT_TOKEN is not set (used for the HubSpot token at "
        "crm.token) (env-var)",
        "  hint: set HUBSPOT_TOKEN where csops runs (the worker and csops check-config)",
        "csops.yaml:6:10: [error] the Slack token is written out in the file; secrets must come from environment "
        "variables (secret-in-file)",
        "  hint: put the Slack token in an environment variable and write ${SLACK_BOT_TOKEN}",
        'csops.yaml:7:1: [error] unknown key "emial" in the configuration (unknown-key)',
        '  hint: did you mean "email"?',
    ]
    assert err == "csops.yaml: 3 problem(s): fix the file and run csops check-config again; nothing was connected\n"
    assert "S3KR1T" not in "\n".join(lines) + err
    status = main(["check-config", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 2 and report["ok"] is False and report["connections"] == []
    assert [(p["line"], p["column"], p["rule"]) for p in report["problems"]] == [
        (3, 10, "env-var"), (6, 10, "secret-in-file"), (7, 1, "unknown-key")]


def test_a_config_file_that_cannot_be_read_exits_2(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    status, lines, err = run(capsys, "--config", "nope.yaml")
    assert (status, lines, err) == (2, [], "csops check-config: nope.yaml: cannot read: No such file or directory\n")
    monkeypatch.setenv("CSOPS_CONFIG", "missing.yaml")
    status, lines, err = run(capsys)
    assert (status, err) == (2, "csops check-config: CSOPS_CONFIG names missing.yaml, which is not a file\n")


def test_json_format(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check-config", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report == {"config": None, "ok": True, "problems": [], "connections": [
        {"name": name, "kind": kind, "ok": True, "problems": []} for name, kind in [
            ("crm", "builtin"), ("email", "outbox"), ("chat", "outbox"), ("webhooks", "no hosts allowed"),
            ("store", "sqlite")]]}


def test_unreachable_temporal_when_asked(workdir: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("CSOPS_TEMPORAL_ADDRESS", f"127.0.0.1:{port}")
    status, lines, _ = run(capsys, "--temporal", "--timeout", "10")
    assert status == 1
    assert lines[6] == (f"temporal (127.0.0.1:{port}): cannot connect: Connection refused (is csops up running, and "
                        "is the address right?)")


async def test_smtp_server_that_answers_is_ok(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fakes.smtp import MailServer

    async with MailServer(mode="plain") as server:
        write(workdir, f"email:\n  kind: smtp\n  host: 127.0.0.1\n  port: {server.port}\n  security: none\n")
        # main() runs its own event loop; on a thread, so this loop keeps serving SMTP meanwhile
        status = await asyncio.to_thread(main, ["check-config"])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0, lines
    assert lines[2] == "email (smtp): OK"


async def test_slack_against_the_fake_bad_token_missing_scope_and_good(
        workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.slack import ALL_SCOPES, FakeSlack

    async def check(token: str) -> tuple[int, list[str]]:
        monkeypatch.setenv("SLACK_BOT_TOKEN", token)
        status = await asyncio.to_thread(main, ["check-config"])  # on a thread: this loop serves the fake
        return status, capsys.readouterr().out.splitlines()

    async with FakeSlack(token="xoxb-good-S3KR1T") as fake:
        write(workdir, f"chat:\n  kind: slack\n  token: ${{SLACK_BOT_TOKEN}}\n  base_url: {fake.base_url}\n")
        bad, bad_lines = await check("xoxb-revoked-S3KR1T")
        good, good_lines = await check("xoxb-good-S3KR1T")
        fake.scopes = tuple(s for s in ALL_SCOPES if s != "im:write")
        scoped, scoped_lines = await check("xoxb-good-S3KR1T")
        accepted = len(fake.called("auth.test"))
    assert bad == 1
    assert bad_lines[3].startswith("chat (slack): the token is not valid (SLACK_BOT_TOKEN): Slack said invalid_auth")
    assert (good, good_lines[3]) == (0, "chat (slack): OK")
    assert scoped == 1
    assert scoped_lines[3] == ("chat (slack): the bot token lacks im:write, which csops needs to open direct "
                               "messages; add it under OAuth & Permissions and reinstall the app")
    assert accepted == 2  # the fake answered the good token's auth.test twice: the check really asked Slack
    assert "S3KR1T" not in "\n".join(bad_lines + good_lines + scoped_lines)


async def test_secrets_echoed_by_servers_are_redacted_in_check_config(
        workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        cert: tuple[str, str]) -> None:
    """Slack quotes the token in its error, the SMTP server quotes the password (plain and in the
    AUTH PLAIN base64) in its 535: check-config still says what is wrong, with [redacted] there."""
    import base64

    from tests.fakes.slack import FakeSlack
    from tests.fakes.smtp import MailServer

    token, password = "xoxb-echoed-token-Q7w3", "echoed-Passw0rd-Z9k"
    monkeypatch.setenv("SLACK_BOT_TOKEN", token)
    monkeypatch.setenv("SMTP_PASSWORD", password)
    monkeypatch.setenv("SSL_CERT_FILE", cert[0])
    async with (FakeSlack(token="xoxb-the-valid-one", echo_token=True) as fake,
                MailServer(mode="starttls", cert=cert, users={"csops": "other"}, echo_login=True) as smtp):
        write(workdir, f"chat:\n  kind: slack\n  token: ${{SLACK_BOT_TOKEN}}\n  base_url: {fake.base_url}\n"
                       f"email:\n  kind: smtp\n  host: 127.0.0.1\n  port: {smtp.port}\n  security: starttls\n"
                       "  username: csops\n  password: ${SMTP_PASSWORD}\n")
        status = await asyncio.to_thread(main, ["check-config"])  # on a thread: this loop serves the fakes
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    assert lines[3] == ("chat (slack): Slack said invalid_auth (request authorized as Bearer [redacted]): see "
                        "https://api.slack.com/methods/auth.test#errors")
    assert lines[2].startswith(f"email (smtp): the SMTP server at 127.0.0.1:{smtp.port} rejected the login (535 5.7.8 "
                               "login csops with password [redacted] (")
    sent = base64.b64encode(f"\0csops\0{password}".encode()).decode()
    for secret in (token, password, sent[8:24], base64.b64encode(password.encode()).decode()[:12]):
        assert secret not in out + err
