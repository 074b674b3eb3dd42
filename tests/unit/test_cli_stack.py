"""The command line around a running stack: invalid playbooks, the stack file, which Temporal, --version, colour."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine.cli.main import main
from engine.cli.up import UpOptions, check_playbooks, up
from engine.config.settings import Settings
from engine.config.stackfile import Stack, read_stack, remove_stack, write_stack
from engine.language.textfmt import colour_verdicts, count, green, money, red
from tests.conftest import ROOT

GOOD = """\
playbook: ok
title: OK
triggers:
  - manual: {}
steps:
  - id: hello
    note: { text: "Hello {{ account.name }}" }
"""
BROKEN = GOOD.replace("playbook: ok", "playbook: broken").replace("note:", "nope:")


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A working folder with a playbooks folder (one good, one broken), a home and a store; no csops.yaml."""
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "ok.yaml").write_text(GOOD, encoding="utf-8")
    (folder / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for name in ("CSOPS_CONFIG", "CSOPS_TEMPORAL_ADDRESS", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CSOPS_PLAYBOOKS", str(folder))
    monkeypatch.setenv("CSOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CSOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'csops.db'}")
    return {"folder": folder, "broken": folder / "broken.yaml", "home": tmp_path / "home", "tmp": tmp_path}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- csops up and explain with a playbook that does not validate ----------------------------------------


def test_up_refuses_to_start_when_a_playbook_does_not_validate(here: dict[str, Path],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--port", "1", "--ui-port", "1", "--api-port", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{here['broken']}:7:5: [error] unknown key \"nope\" in item 1 of steps (unknown-key)" in err
    assert err.endswith(f"csops up: 1 playbook file in {here['folder']} does not validate; nothing was started. Fix "
                        f"it (csops validate {here['folder']}), or pass --skip-invalid to run without them\n")
    assert not here["home"].exists()  # nothing started, nothing written


@pytest.mark.parametrize(("flag", "port"), [("--port", "99999"), ("--ui-port", "0"), ("--api-port", "-1")])
def test_up_refuses_a_port_that_is_not_one(here: dict[str, Path], capsys: pytest.CaptureFixture[str], flag: str,
                                           port: str) -> None:
    assert main(["up", flag, port]) == 2
    assert capsys.readouterr().err == f"csops up: {flag} {port} is not a port; give a number from 1 to 65535\n"
    assert not here["home"].exists()


def test_api_refuses_a_port_that_is_not_one(here: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "--insecure-dev", "--port", "99999"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "csops api: --port 99999 is not a port; give a number from 1 " \
                                                       "to 65535"


def test_skip_invalid_warns_once_per_file(here: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert check_playbooks(here["folder"], skip_invalid=True) is True
    broken = here["broken"]
    assert capsys.readouterr().err == (f"csops up: warning: skipping {broken}: 1 error; it does not run until it "
                                       f"validates (csops validate {broken})\n")
    (here["broken"]).unlink()
    assert check_playbooks(here["folder"], skip_invalid=False) is True
    assert capsys.readouterr().err == ""


def test_explain_lists_playbooks_that_do_not_validate(here: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    crm = SQLCRM(os.environ["CSOPS_DATABASE_URL"])
    crm.add_account(Account(id="acme", name="Acme"))
    crm.close()
    broken = here["broken"]
    assert main(["explain", "--account", "acme"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ok for acme:"
    assert out[-1] == (f"playbook broken ({broken}) does not validate (1 error): it starts no runs until fixed; "
                       f"csops validate {broken} says why")
    assert main(["explain", "--account", "acme", "--playbook", "broken"]) == 1
    assert capsys.readouterr().err == (f"csops explain: playbook broken ({broken}) does not validate (1 error): it "
                                       f"starts no runs until fixed; csops validate {broken} says why\n")
    assert main(["explain", "--account", "acme", "--format", "json"]) == 0
    assert '"invalid": [\n    {\n      "path": "' + str(broken) + '",\n      "playbook": "broken",\n      ' \
           '"errors": 1\n    }\n  ]' in capsys.readouterr().out


# --- the stack file ---------------------------------------------------------------------------------------


def test_settings_take_temporal_from_the_running_csops_up_unless_the_environment_says(here: dict[str, Path]) -> None:
    home = here["home"]
    env = {"CSOPS_HOME": str(home)}
    assert Settings.load(env=env).temporal_address == "localhost:7233"
    write_stack(home, Stack(pid=os.getpid(), temporal_address="127.0.0.1:7300", api_url="http://127.0.0.1:8100"))
    found = Settings.load(env=env)
    assert (found.temporal_address, found.temporal_from) == (
        "127.0.0.1:7300", f"the csops up running here, pid {os.getpid()} ({home / 'stack.json'})")
    assert Settings.load(env={**env, "CSOPS_TEMPORAL_ADDRESS": "other:7233"}).temporal_address == "other:7233"
    write_stack(home, Stack(pid=dead_pid(), temporal_address="127.0.0.1:7300"))
    stale = Settings.load(env=env)
    assert (stale.temporal_address, stale.temporal_from) == ("localhost:7233", "")


def test_commands_that_talk_to_temporal_say_which_one(here: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs"]) == 0
    assert capsys.readouterr().err == ""  # the default: nothing said
    write_stack(here["home"], Stack(pid=os.getpid(), temporal_address="127.0.0.1:7300",
                                    api_url="http://127.0.0.1:8100"))
    assert main(["runs"]) == 0
    assert capsys.readouterr().err == (
        f"csops runs: using Temporal at 127.0.0.1:7300, API http://127.0.0.1:8100 (from the csops up running here, "
        f"pid {os.getpid()} ({here['home'] / 'stack.json'}))\n")
    assert main(["validate", str(here["folder"] / "ok.yaml")]) == 0
    assert capsys.readouterr().err == ""  # validate talks to no Temporal


def test_stack_file_is_removed_only_by_its_owner(here: dict[str, Path]) -> None:
    home = here["home"]
    write_stack(home, Stack(pid=os.getpid(), temporal_address="a:1"))
    remove_stack(home, os.getpid() + 1)
    assert read_stack(home) == Stack(pid=os.getpid(), temporal_address="a:1")
    remove_stack(home, os.getpid())
    assert read_stack(home) is None and not (home / "stack.json").exists()


def test_a_second_csops_up_on_the_same_home_refuses_and_a_stale_record_is_replaced(
        here: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    home = here["home"]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_stack(home, Stack(pid=other.pid, temporal_address="127.0.0.1:7300"))
        assert up(UpOptions(home=home, port=1, ui_port=1, api_port=1)) == 2
        assert (f"csops up: another csops up (pid {other.pid}) runs with the state folder {home}, Temporal at "
                "127.0.0.1:7300: use it, stop it, or set CSOPS_HOME to another folder") in capsys.readouterr().err
        assert read_stack(home) is not None  # the other one's record stays
    finally:
        other.kill()
        other.wait()
    write_stack(home, Stack(pid=other.pid, temporal_address="127.0.0.1:7300"))
    with socket_in_use() as port:  # fails right after the claim: the stale record is gone all the same
        assert up(UpOptions(home=home, port=port, ui_port=port, api_port=port)) == 2
    out = capsys.readouterr()
    assert f"{home / 'stack.json'} was left by a csops up that is gone (pid {other.pid}); replacing it" in out.out
    assert f"port {port} is in use" in out.err
    assert not (home / "stack.json").exists()


class socket_in_use:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


# --- --version, colour, money, counts -------------------------------------------------------------------


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "csops 0.1.0\n", "")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert red("bad", Tty()) == "\033[1;31mbad\033[0m"
    assert green("OK", Tty()) == "\033[32mOK\033[0m"
    assert colour_verdicts("a.yaml:1:1: [error] x", Tty()) == "a.yaml:1:1: \033[1;31m[error]\033[0m x"
    assert red("bad", io.StringIO()) == "bad"
    monkeypatch.setenv("NO_COLOR", "")
    assert red("bad", Tty()) == "bad"


def test_validate_colours_problems_on_a_terminal_only(tmp_path: Path) -> None:
    import pty

    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    piped = subprocess.run([sys.executable, "-m", "engine.cli", "validate", str(path)], capture_output=True,
                           text=True, cwd=ROOT, timeout=60, env=env)
    assert piped.returncode == 1 and "\033[" not in piped.stdout + piped.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "validate", str(path)], stdout=follower,
                            stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(follower)
    assert proc.wait(60) == 1
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert b"\033[1;31m[error]\033[0m unknown key" in seen


@pytest.mark.parametrize(("amount", "text"), [(180000.0, "$180,000"), (1234.5, "$1,234.50"), (0, "$0"),
                                              (999, "$999"), (1e9, "$1,000,000,000"), (None, "(none)")])
def test_money(amount: float | None, text: str) -> None:
    assert money(amount) == text


def test_counts_say_1_day_not_1_days() -> None:
    assert [count(n, "day") for n in (0, 1, 2)] == ["0 days", "1 day", "2 days"]
    assert count(1, "entry", "entries") == "1 entry" and count(3, "entry", "entries") == "3 entries"


def test_the_money_filter_renders_arr_as_money() -> None:
    from engine.language.expressions import ENV

    assert ENV.from_string("ARR {{ arr | money }}").render(arr=180000.0) == "ARR $180,000"
    assert ENV.from_string("{{ arr | money('€') }}").render(arr=1234.5) == "€1,234.50"
    with pytest.raises(ValueError, match="money filter needs a number"):
        ENV.from_string("{{ arr | money }}").render(arr="lots")


@pytest.mark.parametrize(("away", "said"), [(1, "1 day from today"), (2, "2 days from today"),
                                             (-1, "1 day ago (an earlier scan covered it)")])
def test_explain_says_1_day_not_1_days(away: int, said: str) -> None:
    from datetime import timedelta

    from engine.triggers.explain import explain
    from tests.unit.test_matcher import TODAY, account, facts, playbook

    pb = playbook("contract_milestone: {field: renewal_date, days_after: 0}")
    f = facts(account=account(renewal_date=(TODAY + timedelta(days=away)).isoformat()))
    trigger = next(c for c in explain(pb, f, TODAY) if c.name == "trigger 1")
    assert trigger.text.endswith(said)


# --- csops event send for an account the CRM does not have -----------------------------------------------


@pytest.fixture
def temporal(tmp_path: Path) -> Iterator[str]:
    """Temporal's test server (time-skipping, no persistence) on a free port: its address."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = os.path.join(os.path.dirname(sys.executable), "temporal-test-server")
    with (tmp_path / "test-server.log").open("wb") as log:
        proc = subprocess.Popen([server, str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_event_send_warns_and_exits_1_for_an_account_the_crm_does_not_have(
        here: dict[str, Path], temporal: str, monkeypatch: pytest.MonkeyPatch) -> None:
    crm = SQLCRM(os.environ["CSOPS_DATABASE_URL"])
    crm.add_account(Account(id="acme", name="Acme"))
    crm.close()
    (here["broken"]).unlink()
    env = {**os.environ, "CSOPS_TEMPORAL_ADDRESS": temporal, "NO_COLOR": "1"}

    def send(account: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine.cli", "event", "send", "--type", "billing.paid",
                               "--account", account, "--id", f"e-{account}"], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=120)

    known = send("acme")
    assert (known.returncode, known.stdout) == (0, "accepted e-acme: no trigger fired\n"), known.stderr
    assert "warning" not in known.stderr
    ghost = send("ghost")
    assert ghost.returncode == 1, ghost.stdout + ghost.stderr
    assert ghost.stderr.splitlines()[-1] == (
        "warning: e-ghost: the CRM has no account 'ghost', so no playbook starts for it; check the id (csops import "
        "accounts adds accounts to the built-in CRM)")
    events = here["tmp"] / "events.jsonl"
    events.write_text("".join(f'{{"id": "i-{a}", "type": "billing.paid", "account_id": "{a}", '
                              f'"occurred_at": "2026-11-23T10:00:00Z"}}\n' for a in ("acme", "nobody")),
                      encoding="utf-8")
    batch = subprocess.run([sys.executable, "-m", "engine.cli", "event", "import", str(events)],
                           capture_output=True,
                           text=True, env=env, cwd=ROOT, timeout=120)
    assert batch.returncode == 1, batch.stdout + batch.stderr
    assert batch.stdout.splitlines() == [f"{events}:1: accepted i-acme: no trigger fired",
                                         f"{events}:2: accepted i-nobody: unknown account, stored (it starts "
                                         "nothing until the account exists)"]
    assert batch.stderr.splitlines()[-1] == (
        f"{events}:2: warning: i-nobody: the CRM has no account 'nobody', so no playbook starts for it; check the id "
        "(csops import accounts adds accounts to the built-in CRM)")


def test_event_send_to_a_temporal_that_refuses_says_so_in_one_line(here: dict[str, Path],
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with socket_in_use() as port:
        pass  # closed again: nothing listens there now
    monkeypatch.setenv("CSOPS_TEMPORAL_ADDRESS", f"127.0.0.1:{port}")
    assert main(["event", "send", "--type", "billing.paid", "--account", "acme"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"csops event send: cannot reach Temporal at 127.0.0.1:{port}: Connection refused (is csops up running?)")


def test_scan_status_says_a_refusing_temporal_in_one_line(here: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The OS's words, as event send says them, not the Rust client's whole error.
    with socket_in_use() as port:
        pass
    monkeypatch.setenv("CSOPS_TEMPORAL_ADDRESS", f"127.0.0.1:{port}")
    assert main(["scan", "status"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"csops scan: cannot reach Temporal at 127.0.0.1:{port}: Connection refused (is csops up running?)")
