"""``csops console user add``: users created in the store, with the password from the environment."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.store.console_auth import find_user, new_session
from engine.store.store import Store
from tests.console.seed import NOW

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CSOPS_CONFIG", "CSOPS_DATABASE_URL", "CSOPS_CONSOLE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CSOPS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _store(home: Path) -> Store:
    return Store(f"sqlite:///{home / 'csops.db'}")


def test_user_add_creates_a_user_who_can_sign_in(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CSOPS_CONSOLE_PASSWORD", "a long enough password")
    assert main(["console", "user", "add", "Ann@Example.com", "--role", "ops", "--name", "Ann",
                 "--crm-user", "u-ann"]) == 0
    assert "created ann@example.com (ops, CRM user u-ann)" in capsys.readouterr().out
    store = _store(home)
    try:
        person = asyncio.run(find_user(store, "ann@example.com"))
        assert person is not None and (person.role, person.name, person.crm_user) == ("ops", "Ann", "u-ann")
        assert asyncio.run(new_session(store, "ann@example.com", "a long enough password", now=NOW)) is not None
        assert asyncio.run(new_session(store, "ann@example.com", "another password!", now=NOW)) is None
    finally:
        store.close()
    monkeypatch.setenv("CSOPS_CONSOLE_PASSWORD", "the new password, longer")
    assert main(["console", "user", "add", "ann@example.com", "--role", "csm"]) == 0
    assert "updated ann@example.com (csm)" in capsys.readouterr().out


def test_user_add_refuses_bad_input_and_changes_nothing(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CSOPS_CONSOLE_PASSWORD", "short")
    assert main(["console", "user", "add", "ann@example.com"]) == 2
    assert "use at least 12; nothing was changed" in capsys.readouterr().err
    assert main(["console", "user", "add", "ann@example.com", "--role", "admin"]) == 2
    assert main(["console"]) == 2
    store = _store(home)
    try:
        assert asyncio.run(find_user(store, "ann@example.com")) is None
    finally:
        store.close()


def test_without_a_terminal_the_password_must_come_from_the_environment(home: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "console", "user", "add", "ann@example.com"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/bin:/bin", "CSOPS_HOME": str(home)})
    assert proc.returncode == 2
    assert "set CSOPS_CONSOLE_PASSWORD" in proc.stderr and "Traceback" not in proc.stderr


def test_user_remove_ends_their_sessions_and_list_shows_who_is_left(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from engine.store.console_auth import session_person

    monkeypatch.setenv("CSOPS_CONSOLE_PASSWORD", "a long enough password")
    assert main(["console", "user", "add", "ann@example.com", "--role", "ops"]) == 0
    assert main(["console", "user", "add", "bob@example.com", "--crm-user", "u-bob"]) == 0
    store = _store(home)
    try:
        opened = asyncio.run(new_session(store, "ann@example.com", "a long enough password", now=NOW))
        assert opened is not None
        capsys.readouterr()
        assert main(["console", "user", "remove", "ANN@example.com"]) == 0
        assert "removed ann@example.com; their sessions are ended" in capsys.readouterr().out
        assert asyncio.run(session_person(store, opened[0], now=NOW)) is None
        assert main(["console", "user", "remove", "ann@example.com"]) == 1
        assert "there is no console user ann@example.com" in capsys.readouterr().err
        assert main(["console", "user", "list"]) == 0
        assert capsys.readouterr().out == "bob@example.com\tcsm\t\tu-bob\n"
    finally:
        store.close()
