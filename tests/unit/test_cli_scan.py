"""``csops scan status``: the line it prints, and its usage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.cli_scan import status_line
from engine.cli.main import main


def test_the_status_line_shows_the_scans_figures() -> None:
    progress = {"since": "2026-03-01", "today": "2026-03-02", "pages": 12, "accounts": 11500, "found": 40,
                "started": 38, "suppressed": 2, "playbooks_left": 1}
    assert status_line("csops-daily-scan-run-2026-03-02T06:00:00Z", "RUNNING", progress, "2026-03-01") == (
        "daily scan csops-daily-scan-run-2026-03-02T06:00:00Z: running, window (2026-03-01, 2026-03-02], 12 pages, "
        "11500 accounts read, 40 due, 38 started, 1 playbooks with pages left; last day scanned: 2026-03-01")
    assert status_line("x", "RUNNING", {}, "") == "daily scan x: running, no pages yet; last day scanned: none"


def test_scan_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan"]) == 2
    assert "csops scan: say status" in capsys.readouterr().err


def test_scan_status_says_where_csops_yaml_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # As every command that reads csops.yaml: each problem with its line and column, not only a count.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "csops.yaml").write_text("calendar:\n  timezone: Mars/Olympus\n", encoding="utf-8")
    assert main(["scan", "status"]) == 2
    err = capsys.readouterr().err
    assert "csops.yaml:2:13: calendar.timezone 'Mars/Olympus'" in err
    assert "csops scan status: csops.yaml: 1 problem(s)" in err
