"""The composition root: the playbook registry is validated again only when a file under the folder
changes, and the root builds its parts with the configured calendar."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

import engine.root as root_module
from engine.config.config import CalendarConfig, Config
from engine.config.settings import Settings
from engine.language.model import Playbook
from engine.root import Registry, Root, fingerprint
from engine.runtime.starter import load_playbooks
from engine.store.store import Store

ONE = """\
playbook: one
title: One
triggers: [{manual: {}}]
steps:
  - id: log
    note: {text: "one"}
"""


class Counting:
    """engine.runtime.starter.load_playbooks, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, folder: Path) -> dict[str, Playbook]:
        self.calls += 1
        return load_playbooks(folder)


def _touch(path: Path, text: str, bump: int) -> None:
    """Write ``text`` and move the mtime on by ``bump`` seconds (file systems with coarse times)."""
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def test_an_unchanged_folder_is_not_validated_again(tmp_path: Path) -> None:
    _touch(tmp_path / "one.yaml", ONE, 0)
    load = Counting()
    registry = Registry(tmp_path, load)
    books = [registry() for _ in range(50)]
    assert load.calls == 1 and registry.loads == 1
    assert all(b is books[0] for b in books) and set(books[0]) == {"one"}


def test_an_edited_added_or_removed_file_is_seen_at_the_next_look(tmp_path: Path) -> None:
    _touch(tmp_path / "one.yaml", ONE, 0)
    load = Counting()
    registry = Registry(tmp_path, load, check_every=0)
    assert registry()["one"].title == "One"
    _touch(tmp_path / "one.yaml", ONE.replace("title: One", "title: One, edited"), 5)
    assert registry()["one"].title == "One, edited"
    _touch(tmp_path / "two.yaml", ONE.replace("one", "two"), 5)
    assert set(registry()) == {"one", "two"}
    (tmp_path / "one.yaml").unlink()
    assert set(registry()) == {"two"}
    assert registry() is registry()
    assert load.calls == 4


def test_the_folder_is_looked_at_once_per_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path / "one.yaml", ONE, 0)
    looks: list[Path] = []
    def look(folder: Path) -> tuple[tuple[str, int, int], ...]:
        looks.append(folder)
        return fingerprint(folder)

    monkeypatch.setattr(root_module, "fingerprint", look)
    clock = [100.0]
    registry = Registry(tmp_path, Counting(), check_every=1.0, clock=lambda: clock[0])
    for _ in range(500):
        registry()
    assert len(looks) == 1
    _touch(tmp_path / "one.yaml", ONE.replace("title: One", "title: One, edited"), 5)
    clock[0] += 0.5
    assert registry()["one"].title == "One" and len(looks) == 1  # not looked again within the second
    clock[0] += 0.5
    assert registry()["one"].title == "One, edited" and len(looks) == 2 and registry.loads == 2


def test_a_folder_with_errors_never_replaces_the_playbooks_in_force(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    _touch(tmp_path / "one.yaml", ONE, 0)
    _touch(tmp_path / "two.yaml", ONE.replace("one", "two"), 0)
    registry = Registry(tmp_path, check_every=0)
    before = registry()
    assert set(before) == {"one", "two"}
    _touch(tmp_path / "one.yaml", ONE.replace("steps:", "stepz:"), 5)
    with caplog.at_level(logging.ERROR, logger="csops.worker"):
        assert registry() is before  # the valid two.yaml alone does not come in either
    assert registry.loads == 2 and registry.refused and "one.yaml" in registry.refused[0]
    assert "the 2 playbooks in force stay as they were" in caplog.text and "one.yaml" in caplog.text
    assert registry() is before and registry.loads == 2  # refused once, not validated again per call
    assert registry.reload() == registry.refused and registry() is before
    _touch(tmp_path / "one.yaml", ONE.replace("title: One", "title: One, fixed"), 9)
    assert registry()["one"].title == "One, fixed" and registry.refused == []
    assert Registry(tmp_path / "nowhere")() == {} and fingerprint(tmp_path / "nowhere") == ()


def test_reload_validates_what_the_folder_look_cannot_see_and_keeps_unchanged_versions(tmp_path: Path) -> None:
    _touch(tmp_path / "one.yaml", ONE, 0)
    _touch(tmp_path / "two.yaml", ONE.replace("one", "two"), 0)
    registry = Registry(tmp_path, check_every=0)
    before = registry()
    # Same size, same mtime: a copy that kept the times, or a file system with coarse ones.
    st = (tmp_path / "one.yaml").stat()
    (tmp_path / "one.yaml").write_text(ONE.replace("playbook: one", "playbook: eno"), encoding="utf-8")
    os.utime(tmp_path / "one.yaml", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert registry() is before
    assert registry.reload() == []
    after = registry()
    assert set(after) == {"eno", "two"} and after["two"] is before["two"]  # compiled once per version


def test_a_first_load_with_errors_takes_the_valid_playbooks(tmp_path: Path) -> None:
    _touch(tmp_path / "one.yaml", ONE, 0)
    _touch(tmp_path / "bad.yaml", ONE.replace("one", "bad").replace("steps:", "stepz:"), 0)
    registry = Registry(tmp_path)
    assert set(registry()) == {"one"} and registry.refused == []


def test_the_root_uses_the_configured_calendar_and_playbooks(tmp_path: Path) -> None:
    _touch(tmp_path / "one.yaml", ONE, 0)
    config = Config(calendar=CalendarConfig(timezone="Europe/Berlin", workdays=("mon", "tue", "wed", "thu"),
                                            holidays=("2026-12-24",)))
    settings = Settings.from_env({"CSOPS_PLAYBOOKS": str(tmp_path), "CSOPS_HOME": str(tmp_path / "home")},
                                 config=config)
    root = Root(settings)
    assert (root.calendar.timezone, sorted(root.calendar.workdays)) == ("Europe/Berlin", [0, 1, 2, 3])
    assert [d.isoformat() for d in root.calendar.holidays] == ["2026-12-24"]
    assert set(root.playbooks()) == {"one"}


COOLING = """\
playbook: cooling
title: Cooling
triggers: [{manual: {}}]
entry:
  cooldown: 2 business days
steps:
  - id: log
    note: {text: "hi"}
"""


def test_csops_explain_judges_the_cooldown_on_the_configured_calendar(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from connectors.base import Account
    from connectors.sqlcrm import SQLCRM
    from engine.cli.main import main
    from engine.language.context import Calendar
    from engine.language.durations import parse_duration

    folder = tmp_path / "playbooks"
    folder.mkdir()
    _touch(folder / "cooling.yaml", COOLING, 0)
    (tmp_path / "csops.yaml").write_text('calendar:\n  timezone: Europe/Berlin\n  workdays: [mon, tue, wed, thu]\n'
                                         '  holidays: ["2026-12-24"]\n', encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    crm, store = SQLCRM(url), Store(url)
    ended = datetime(2026, 12, 23, 10, tzinfo=UTC)  # a Wednesday, before a holiday and a short week
    try:
        crm.add_account(Account(id="acme", name="Acme", segment="strategic"))
        asyncio.run(_one_ended_run(store, ended))
    finally:
        crm.close()
        store.close()
    for name, value in (("CSOPS_CONFIG", str(tmp_path / "csops.yaml")), ("CSOPS_DATABASE_URL", url),
                        ("CSOPS_PLAYBOOKS", str(folder)), ("CSOPS_HOME", str(tmp_path / "home"))):
        monkeypatch.setenv(name, value)
    assert main(["explain", "--account", "acme", "--playbook", "cooling", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    [cooldown] = [c for c in shown["playbooks"][0]["checks"] if c["name"] == "cooldown"]
    configured = Calendar(timezone="Europe/Berlin", workdays=frozenset({0, 1, 2, 3}),
                          holidays=frozenset({date(2026, 12, 24)}))
    two = parse_duration("2 business days")
    assert cooldown["seen"]["cooldown_until"] == configured.add(ended, two).isoformat()
    assert cooldown["seen"]["cooldown_until"] != Calendar().add(ended, two).isoformat()


async def _one_ended_run(store: Store, ended: datetime) -> None:
    await store.add_run(run_id="pb:cooling:acme:once", temporal_run_id="t1", playbook="cooling", version="v",
                        account_id="acme", started_at=ended - timedelta(days=1))
    await store.end_run("pb:cooling:acme:once", status="completed", at=ended)
