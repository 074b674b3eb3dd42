"""The console over HTTP (ASGI): anonymous visitors, sign-in and sessions, cookie flags, CSRF, roles, audit, pages."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from engine.store.console_models import AuditActionRow, SessionRow
from tests.console.conftest import BASE, Console
from tests.console.seed import CSM, OPS, OTHER, PASSWORD

PAGES = ["/console", "/console/runs", "/console/runs/pb:save-plan:acme:once", "/console/accounts",
         "/console/accounts/acme", "/console/playbooks", "/console/playbooks/save-plan", "/console/inbox",
         "/console/decisions"]
OPEN_REDIRECTS = ["https://evil.example/", "//evil.example/console", "/\\evil.example", "javascript:alert(1)",
                  "/v1/runs", "http://console.test.evil.example/console"]
"""Hostile ``next`` values: after sign-in each must land on the console's home, never elsewhere."""


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD, next: str = "/console",
                  **headers: str) -> httpx.Response:
    page = await client.get("/console/login")
    return await client.post("/console/login", headers=headers,
                             data={"csrf": csrf_of(page.text), "email": email, "password": password, "next": next})


def cookie_header(response: httpx.Response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(name + "="))


@pytest.mark.parametrize("path", PAGES)
async def test_anonymous_visitors_are_sent_to_sign_in_and_see_no_data(console: Console, path: str) -> None:
    r = await console.client.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login?next=%2Fconsole")
    assert "acme" not in r.text.lower()


async def test_a_wrong_password_or_unknown_user_is_refused_alike(console: Console) -> None:
    for email, password in ((OPS, "wrong password!!"), ("nobody@example.com", PASSWORD)):
        r = await sign_in(console.client, email, password)
        assert r.status_code == 401
        assert "do not match a console user" in r.text
        assert "csops_session" not in r.headers.get("set-cookie", "")


async def test_sign_in_sets_an_httponly_samesite_session_kept_only_as_a_hash(console: Console) -> None:
    r = await sign_in(console.client, OPS)
    assert (r.status_code, r.headers["location"]) == (303, "/console")
    cookie = cookie_header(r, "csops_session")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would never come back
    token = cookie.split(";")[0].split("=", 1)[1]
    rows = await console.store.db.read(lambda s: s.scalars(select(SessionRow)).all())
    assert len(rows) == 1 and rows[0].token_hash != token and token not in rows[0].token_hash
    home = await console.client.get("/console")
    assert home.status_code == 200 and "Olivia Ops" in home.text


async def test_the_cookie_is_secure_behind_an_https_proxy(console: Console) -> None:
    r = await sign_in(console.client, OPS, **{"X-Forwarded-Proto": "https"})
    assert "Secure" in cookie_header(r, "csops_session")


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
async def test_sign_in_never_redirects_off_the_console(console: Console, target: str) -> None:
    r = await sign_in(console.client, OPS, next=target)
    assert (r.status_code, r.headers["location"]) == (303, "/console")


async def test_the_sign_in_form_needs_its_csrf_token(console: Console) -> None:
    await console.client.get("/console/login")
    r = await console.client.post("/console/login", data={"email": OPS, "password": PASSWORD})
    assert r.status_code == 403
    assert "csops_session" not in r.headers.get("set-cookie", "")


async def test_a_post_without_the_csrf_token_or_from_another_site_is_403(console: Console) -> None:
    await sign_in(console.client, OPS)
    run = console.runs["acme"]
    page = await console.client.get(f"/console/runs/{run}")
    token = csrf_of(page.text)
    cases: list[tuple[dict[str, str], dict[str, str]]] = [
        ({"reason": "no token"}, {}),
        ({"reason": "wrong token", "csrf": "x" * 43}, {}),
        ({"reason": "cross-site", "csrf": token}, {"Origin": "https://evil.example"}),
        ({"reason": "sandboxed", "csrf": token}, {"Origin": "null"}),
    ]
    for data, headers in cases:
        r = await console.client.post(f"/console/runs/{run}/cancel", data=data, headers=headers)
        assert r.status_code == 403, data
    assert console.workflows.cancelled == []
    r = await console.client.post(f"/console/runs/{run}/cancel", data={"reason": "customer asked", "csrf": token},
                                  headers={"Origin": BASE})
    assert r.status_code == 303
    assert console.workflows.cancelled == [(run, f"customer asked (by {OPS})")]


async def test_cancel_needs_a_reason_and_is_audited(console: Console) -> None:
    await sign_in(console.client, OPS)
    run = console.runs["globex"]
    token = csrf_of((await console.client.get(f"/console/runs/{run}")).text)
    r = await console.client.post(f"/console/runs/{run}/cancel", data={"reason": "  ", "csrf": token})
    assert r.status_code == 422 and console.workflows.cancelled == []
    await console.client.post(f"/console/runs/{run}/cancel", data={"reason": "duplicate play", "csrf": token})
    rows = await console.store.db.read(lambda s: s.scalars(select(AuditActionRow).where(
        AuditActionRow.action == "cancel_run")).all())
    assert [(a.actor, a.target, a.detail) for a in rows] == [(OPS, run, "duplicate play")]


async def test_a_csm_cancels_runs_of_own_accounts_only(console: Console) -> None:
    await sign_in(console.client, CSM)
    other = console.runs["globex"]  # Cora's account
    page = await console.client.get(f"/console/runs/{other}")
    assert page.status_code == 200 and "Cancel run" not in page.text  # read, yes; act, no
    r = await console.client.post(f"/console/runs/{other}/cancel", data={"reason": "mine?", "csrf": csrf_of(page.text)})
    assert r.status_code == 403 and console.workflows.cancelled == []
    mine = console.runs["acme"]
    page = await console.client.get(f"/console/runs/{mine}")
    assert "Cancel run" in page.text
    r = await console.client.post(f"/console/runs/{mine}/cancel", data={"reason": "saved", "csrf": csrf_of(page.text)})
    assert r.status_code == 303 and [c[0] for c in console.workflows.cancelled] == [mine]


async def _task_of(console: Console, assignee: str) -> Any:
    return next(t for t in console.crm.list_tasks() if t.assignee_id == assignee)


async def test_completing_a_task_sends_one_task_completed_event_and_is_audited(console: Console) -> None:
    await sign_in(console.client, CSM)
    inbox = await console.client.get("/console/inbox")
    task = await _task_of(console, "u-carl")
    assert task.title in inbox.text and "Overdue" in inbox.text
    for _ in range(2):  # a double click stores one event
        r = await console.client.post(f"/console/tasks/{task.id}/complete", data={"csrf": csrf_of(inbox.text)})
        assert (r.status_code, r.headers["location"]) == (303, "/console/inbox?note=completed")
    event = await console.store.get_event(f"csops-task-completed:{task.id}")
    assert event is not None and (event.type, event.account_id) == ("task.completed", "acme")
    assert event.data["task_id"] == task.id
    assert console.store.counts()["events"] == 1
    rows = await console.store.db.read(lambda s: s.scalars(select(AuditActionRow).where(
        AuditActionRow.action == "complete_task")).all())
    assert [(a.actor, a.target) for a in rows] == [(CSM, task.id)]  # the second click did nothing
    assert f'id="task-{task.id}"' not in (await console.client.get("/console/inbox")).text


async def test_a_csm_acting_on_another_csms_task_is_refused(console: Console) -> None:
    await sign_in(console.client, CSM)
    token = csrf_of((await console.client.get("/console/inbox")).text)
    theirs = await _task_of(console, "u-cora")
    for action, data in (("complete", {}), ("snooze", {"until": "2099-01-01"})):
        r = await console.client.post(f"/console/tasks/{theirs.id}/{action}", data={"csrf": token, **data})
        assert r.status_code == 403
    assert await console.store.get_event(f"csops-task-completed:{theirs.id}") is None


async def test_snooze_hides_a_task_until_the_day_chosen(console: Console) -> None:
    await sign_in(console.client, OTHER)
    inbox = await console.client.get("/console/inbox")
    task = await _task_of(console, "u-cora")
    assert f'id="task-{task.id}"' in inbox.text
    token = csrf_of(inbox.text)
    bad = await console.client.post(f"/console/tasks/{task.id}/snooze", data={"csrf": token, "until": "2000-01-01"})
    assert bad.status_code == 422
    import datetime as dt
    day = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)).isoformat()
    r = await console.client.post(f"/console/tasks/{task.id}/snooze", data={"csrf": token, "until": day})
    assert r.status_code == 303
    after = await console.client.get("/console/inbox")
    assert f'id="task-{task.id}"' not in after.text and f"until {day}" in after.text


async def test_sign_out_ends_the_session(console: Console) -> None:
    await sign_in(console.client, OPS)
    token = csrf_of((await console.client.get("/console")).text)
    assert (await console.client.post("/console/logout", data={})).status_code == 403
    r = await console.client.post("/console/logout", data={"csrf": token})
    assert (r.status_code, r.headers["location"]) == (303, "/console/login")
    assert (await console.client.get("/console")).status_code == 303
    assert await console.store.db.read(lambda s: s.scalars(select(SessionRow)).all()) == []


async def test_home_counts_match_the_store(console: Console) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    monday = (now - dt.timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    await console.store.add_health("acme", monday, 80.0, "green")
    await console.store.add_health("acme", now, 35.0, "red")
    await sign_in(console.client, OPS)
    home = (await console.client.get("/console")).text
    assert re.search(r'id="n-active">2<', home)  # the two recorded runs, both running
    assert re.search(r'id="n-due">1<', home) and re.search(r'id="n-overdue">1<', home)
    assert re.search(r'id="n-failed">0<', home)
    assert re.search(r'/console/accounts/acme">acme</a>\s*80 → 35 <strong>↓ -45</strong>', home)


async def test_an_invalid_playbook_shows_its_problem_with_line_and_column(console: Console) -> None:
    await sign_in(console.client, OPS)
    listing = (await console.client.get("/console/playbooks")).text
    assert "✗ 1 error(s)" in listing and "✓ valid" in listing
    page = (await console.client.get("/console/playbooks/broken-play.yaml")).text
    assert "line 10:12" in page and "unknown unit" in page
    assert 'id="L10" class="line marked"' in page


async def test_ops_see_who_did_what_on_the_home_page(console: Console) -> None:
    await sign_in(console.client, CSM)
    inbox = await console.client.get("/console/inbox")
    task = await _task_of(console, "u-carl")
    await console.client.post(f"/console/tasks/{task.id}/complete", data={"csrf": csrf_of(inbox.text)})
    assert "Recent console actions" not in (await console.client.get("/console")).text  # csm: not theirs to see
    console.client.cookies.clear()
    await sign_in(console.client, OPS)
    home = (await console.client.get("/console")).text
    assert f"<strong>{CSM}</strong> complete task <code>{task.id}</code>" in home


async def test_a_csm_narrows_accounts_and_runs_to_their_own(console: Console) -> None:
    await sign_in(console.client, CSM)
    everyone = (await console.client.get("/console/accounts")).text
    assert all(f"/console/accounts/{a}" in everyone for a in ("acme", "globex", "initech"))
    mine = (await console.client.get("/console/accounts?mine=1")).text
    assert "/console/accounts/acme" in mine and "/console/accounts/globex" not in mine
    runs = (await console.client.get("/console/runs?owner=u-carl")).text
    assert console.runs["acme"] in runs and console.runs["globex"] not in runs


async def test_a_playbook_page_shows_its_performance_from_the_report(console: Console) -> None:
    await sign_in(console.client, OPS)
    page = (await console.client.get("/console/playbooks/save-plan")).text
    assert 'id="performance"' in page
    assert re.search(r"In force now: <code>[0-9a-f]{12}</code>, its file saved \d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    assert re.search(r"2 started · 2 running · 0 completed · 0 exited · 0 cancelled · 0 failed", page)
    assert "Tasks: 2 created, 0 completed (0 on time), 2 open, 1 overdue" in page


async def test_an_account_page_shows_the_health_models_breakdown(console: Console) -> None:
    await sign_in(console.client, CSM)
    page = (await console.client.get("/console/accounts/acme")).text
    section = page[page.index('id="breakdown"'):]
    # ARR 120,000 of 200,000: 60 points, 40 % of the score; no logins in 30 days: 0 points, 60 %.
    assert "Why 24.0" in section and "band-red" in section and "console-test" in section
    assert re.search(r"<td>arr</td><td>commercial</td><td class=\"num\">120000\.0</td><td class=\"num\">60\.0</td>",
                     section)
    assert re.search(r"<td>logins_30d</td><td>usage</td><td class=\"num\">0\.0</td><td class=\"num\">0\.0</td>",
                     section)
    assert "logins_30d 0; arr 60" in section  # the chart's description names each bar with its points


async def test_a_health_model_with_problems_is_said_so_and_no_score_shown(console: Console, tmp_path: Any) -> None:
    (tmp_path / "playbooks" / "health.yaml").write_text("model: broken\nbuckets: 3\n", encoding="utf-8")
    await sign_in(console.client, OPS)
    page = (await console.client.get("/console/accounts/acme")).text
    assert 'id="breakdown"' not in page and "health.yaml has problems" in page
