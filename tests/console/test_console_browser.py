"""The console in a real headless Chromium (Debian's chromium and chromium-driver, through selenium),
over real workflows in Temporal's time-skipping test server and a store filled through the ingestor.

CSOPS_RECORD_SHOTS=1 writes the screenshots docs/console.md shows into docs/console/.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import httpx
import pytest

from tests.console.browser import CHROMEDRIVER, Browser, Live, health, live_console, until
from tests.console.seed import CSM, OPS, PASSWORD

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


async def started(live: Live) -> tuple[str, str]:
    """Health drops for Acme (Carl's) and Globex (Cora's): two save-plan runs, each with its task in the CRM."""
    await health(live, "acme", 30, "red", "h-acme-1")
    await health(live, "globex", 40, "red", "h-globex-1")
    await until(lambda: len(live.crm.list_tasks()) == 2)
    return "pb:save-plan:acme:once", "pb:save-plan:globex:once"


async def test_a_morning_in_the_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.api.api_reports

    # The inbox refreshes open runs at most every 30 s; here each visit does, to see the next task at once.
    monkeypatch.setattr(engine.api.api_reports, "REFRESH_EVERY", 0.0)
    async with live_console(tmp_path) as live:
        acme_run, globex_run = await started(live)
        b = await asyncio.to_thread(Browser, live.base, 1280, 1000)
        try:
            await _anonymous_and_sign_in(b)
            await _home(b, live)
            await _run_and_cancel(b, live, globex_run)
            await _red_account(b)
            await _invalid_playbook(b)
            await _decisions(b)
            await _cross_site_post(b, live, acme_run)
            await asyncio.to_thread(b.driver.delete_all_cookies)
            await _inbox_complete(b, live, acme_run)
        finally:
            await asyncio.to_thread(b.close)


async def _anonymous_and_sign_in(b: Browser) -> None:
    await asyncio.to_thread(b.open, "/console/runs")
    assert b.path == "/console/login?next=%2Fconsole%2Fruns"
    assert "acme" not in b.driver.page_source.lower()
    await asyncio.to_thread(b.sign_in, OPS, "not the password")
    assert "do not match" in b.text()
    await asyncio.to_thread(b.sign_in, OPS, PASSWORD)
    assert b.path == "/console/runs"  # back where the visitor was going
    rows = b.all("main table tbody tr")
    assert len(rows) == 2 and "save-plan" in rows[0].text
    await asyncio.to_thread(b.shot, "runs")


async def _home(b: Browser, live: Live) -> None:
    await asyncio.to_thread(b.open, "/console")
    running = (await live.store.runs(status="running")).runs
    assert b.text("#n-active") == str(len(running)) == "2"
    assert b.text("#n-failed") == "0"
    assert "save-plan" in b.text("main svg") and "2" in b.text("main svg")  # the bar carries its number
    assert "red" in b.text("main")  # the accounts by band
    await asyncio.to_thread(b.shot, "home")


async def _run_and_cancel(b: Browser, live: Live, run_id: str) -> None:
    await asyncio.to_thread(b.open, f"/console/runs/{run_id}")
    page = b.text()
    assert "started by health.updated" in page  # the decision that started it, on the timeline
    assert "plan" in page and "Save plan for Globex" in page  # its step and the task it created (effects)
    assert re.search(r"Version\s+v{0}[0-9a-f]{12}", page)
    token = b.css("form.cancel input[name=csrf]").get_attribute("value")
    assert token and len(token) >= 40
    await asyncio.to_thread(b.shot, "run")
    b.css("#cancel-reason").send_keys("merged into the renewal play")
    await asyncio.to_thread(b.click, "#cancel-button", True)  # console.js asks first
    assert "Cancel sent" in b.text()
    record = await until(lambda: _ended(live, run_id))
    assert record.status == "cancelled"
    await asyncio.to_thread(b.open, f"/console/runs/{run_id}")
    assert b.text("#run-status") == "cancelled" and not b.all("#cancel-button")


async def _ended(live: Live, run_id: str) -> object:
    from engine.runtime.runrecord import refresh

    record = await refresh(live.store, live.env.client, run_id)
    return record if record is not None and record.ended_at is not None else None


async def _red_account(b: Browser) -> None:
    await asyncio.to_thread(b.open, "/console/accounts?q=acm")
    await asyncio.to_thread(b.shot, "accounts")
    await asyncio.to_thread(b.click, "main table a")
    assert b.path == "/console/accounts/acme"
    assert b.text("#health-score") == "30" and b.text("#health-band") == "red"
    chart = b.css("main svg.chart")
    assert "30" in chart.text  # each score is written on the chart, not told by colour alone
    breakdown = b.text("#breakdown")  # the score's breakdown by the health model beside the playbooks
    assert "Why 24.0 red" in breakdown and "arr commercial 120000.0 60.0 40%" in breakdown
    assert "save-plan" in b.text() and "Explain" in b.text()
    await asyncio.to_thread(b.shot, "account")


async def _invalid_playbook(b: Browser) -> None:
    await asyncio.to_thread(b.open, "/console/playbooks")
    assert "✗ 1 error(s)" in b.text()
    await asyncio.to_thread(b.shot, "playbooks")
    await asyncio.to_thread(b.open, "/console/playbooks/broken-play.yaml")
    problems = b.text("ul.problems")
    assert "line 10:12" in problems and 'unknown unit "dayz"' in problems
    assert "3 dayz" in b.text("#L10")
    await asyncio.to_thread(b.shot, "playbook")


async def _decisions(b: Browser) -> None:
    await asyncio.to_thread(b.open, "/console/decisions?outcome=started")
    rows = b.all("main table tbody tr")
    assert len(rows) == 2 and all("started" in r.text for r in rows)
    await asyncio.to_thread(b.shot, "decisions")


async def _cross_site_post(b: Browser, live: Live, run_id: str) -> None:
    """A page on another site posting to the console with the victim's cookies: 403, nothing cancelled."""
    cookie = b.driver.get_cookie("csops_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    async with httpx.AsyncClient(base_url=live.base, cookies={"csops_session": cookie["value"]}) as client:
        r = await client.post(f"/console/runs/{run_id}/cancel", data={"reason": "forged"},
                              headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        r = await client.post(f"/console/runs/{run_id}/cancel", data={"reason": "no token"})
        assert r.status_code == 403
    assert (await live.store.get_run(run_id)).status == "running"  # type: ignore[union-attr]


async def _inbox_complete(b: Browser, live: Live, run_id: str) -> None:
    await asyncio.to_thread(b.open, "/console/inbox")
    await asyncio.to_thread(b.sign_in, CSM, PASSWORD)
    assert b.path == "/console/inbox"
    task = next(t for t in live.crm.list_tasks() if t.account_id == "acme")
    assert task.title in b.text(f"#task-{task.id}")
    await asyncio.to_thread(b.shot, "inbox")
    # Carl's browser, with his session and a valid token, posting to complete Cora's task: refused.
    theirs = next(t for t in live.crm.list_tasks() if t.account_id == "globex")
    status = await asyncio.to_thread(b.driver.execute_async_script, """
        const done = arguments[arguments.length - 1];
        const csrf = document.querySelector("input[name=csrf]").value;
        fetch("/console/tasks/" + arguments[0] + "/complete", {method: "POST", body: "csrf=" + encodeURIComponent(csrf),
              headers: {"Content-Type": "application/x-www-form-urlencoded"}}).then(r => done(r.status));
    """, theirs.id)
    assert status == 403
    assert await live.store.get_event(f"csops-task-completed:{theirs.id}") is None
    await asyncio.to_thread(b.click, f"#task-{task.id} button.complete")
    assert "Completion sent" in b.text()
    # The run completes the task in the CRM once and moves on to its next step's task.
    # (The CRM update runs beside the main path: either may land first.)
    await until(lambda: [(t.title, t.status) for t in live.crm.list_tasks(account_id="acme")] ==
                [("Save plan for Acme Corp", "completed"), ("Check in with Acme Corp", "open")])
    await asyncio.to_thread(b.open, "/console/inbox")
    assert f"task-{task.id}" not in b.driver.page_source and "Check in with Acme Corp" in b.text()
    await asyncio.to_thread(b.open, f"/console/runs/{run_id}")
    assert "check-in" in b.text()


async def test_every_page_fits_a_phone(tmp_path: Path) -> None:
    async with live_console(tmp_path) as live:
        acme_run, _ = await started(live)
        b = await asyncio.to_thread(Browser, live.base, 390, 844)
        try:
            await asyncio.to_thread(b.open, "/console/login")
            await asyncio.to_thread(b.sign_in, OPS, PASSWORD)
            for path in ("/console", "/console/runs", f"/console/runs/{acme_run}", "/console/accounts",
                         "/console/accounts/acme", "/console/playbooks", "/console/playbooks/broken-play.yaml",
                         "/console/inbox", "/console/decisions"):
                await asyncio.to_thread(b.open, path)
                assert b.path == path
                scroll, inner = await asyncio.to_thread(b.widths)
                assert inner == 390 and scroll <= inner, f"{path} scrolls sideways: {scroll} px in {inner}"
            await asyncio.to_thread(b.open, "/console")
            await asyncio.to_thread(b.shot, "home-phone")
        finally:
            await asyncio.to_thread(b.close)
