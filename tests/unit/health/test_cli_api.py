"""``csops health show|simulate|test`` and ``GET /v1/accounts/{id}/health`` on a real store and the built-in CRM.

The shipped model (playbooks/health.yaml) scores acme, a commercial account in the adopt stage on
Monday 2026-11-23 10:00 UTC, from 30 logins in the last 30 days (and 20 in the 30 before: trend
1.5), 8 of 10 seats active, two of the four key features used, a meeting 10 days ago, an NPS of 8,
ARR +5%, no overdue invoice and one escalation. By hand:

- usage: logins (30-5)/40 = 62.5 pts x 40, seats (0.8-0.2)/0.65 = 92.31 x 40, features 50 x 15,
  trend 100 x 5: (2500 + 3692.4 + 750 + 500) / 100 = 74.42;
- relationship: meeting (120-10)/106 = 103.8 → 100 x 40, champion missing (skipped), NPS
  (8-2)/7 = 85.71 x 30: (4000 + 2571.4) / 70 = 93.88;
- commercial: ARR (5+25)/35 = 85.71 x 30, overdue 100 x 30, escalations 60 x 40: 79.71;
- score (55 x 74.42 + 20 x 93.88 + 25 x 79.71) / 100 = 79.64 → 79.6, green. The history has 90
  recorded 20 days ago and 85 six days ago: trend 7d 79.6 - 90 = -10.4, 30d: nothing that old, none.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine.api.app import create_app
from engine.cli.main import main
from engine.health.hooks import model_at
from engine.health.view import account_health
from engine.store.store import Store
from engine.triggers.signals import EventSignal

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "playbooks" / "health.yaml"
TOKEN = "t" * 40


async def seed(url: str, now: datetime) -> None:
    store, crm = Store(url), SQLCRM(url)
    crm.add_account(Account(id="acme", name="Acme", segment="commercial", lifecycle_stage="adopt",
                            fields={"active_seats": 8, "licensed_seats": "10", "arr_change_pct": 5,
                                    "overdue_invoices": 0}))
    events = [EventSignal(id=f"l{i}", type="usage.login", account_id="acme", occurred_at=now - timedelta(days=i + 0.5),
                          data={}) for i in range(50)]
    events += [EventSignal(id="m", type="meeting.held", account_id="acme", occurred_at=now - timedelta(days=10),
                           data={}),
               EventSignal(id="n", type="survey.nps", account_id="acme", occurred_at=now - timedelta(days=40),
                           data={"score": 8}),
               EventSignal(id="x", type="support.escalated", account_id="acme",
                           occurred_at=now - timedelta(days=80), data={})]
    await store.add_events(events)
    for feature in ("reports", "dashboards", "other"):
        await store.record_use("acme", "feature", feature, now - timedelta(days=100))
    await store.add_health("acme", now - timedelta(days=20), 90.0, "green")
    await store.add_health("acme", now - timedelta(days=6), 85.0, "green")
    store.close()
    crm.close()


EXPECTED_MEASURES = [("logins_30d", 30.0, 62.5), ("seat_utilisation", 0.8, 92.31), ("key_features", 0.5, 50.0),
                     ("usage_trend", 1.5, 100.0), ("days_since_meeting", 10.0, 100.0), ("champion", None, None),
                     ("nps", 8.0, 85.71), ("arr_change", 5.0, 85.71), ("overdue_invoices", 0.0, 100.0),
                     ("escalations_90d", 1.0, 60.0)]


async def test_account_health_breakdown_matches_the_hand_worked_figures(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    await seed(url, NOW)
    store, crm = Store(url), SQLCRM(url)
    model = model_at(str(MODEL))
    assert model is not None
    view = await account_health(store, crm, model, "acme", NOW)
    store.close()
    crm.close()
    assert view is not None
    assert (view["score"], view["band"], view["trend"], view["recorded"]) == (79.6, "green", {"7d": -10.4, "30d": None},
                                                                            None)
    assert [(m["measure"], m["value"], m["points"]) for m in view["measures"]] == EXPECTED_MEASURES
    assert [(b["bucket"], b["score"]) for b in view["buckets"]] == [("usage", 74.4), ("relationship", 93.9),
                                                                    ("commercial", 79.7)]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)  # no csops.yaml here
    monkeypatch.setenv("CSOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'csops.db'}")
    monkeypatch.setenv("CSOPS_PLAYBOOKS", str(ROOT / "playbooks"))
    yield tmp_path


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(argv)
    return status, out.getvalue()


def test_show_prints_why_and_json(env: Path) -> None:
    asyncio.run(seed(f"sqlite:///{env / 'csops.db'}", datetime.now(UTC)))
    status, text = run(["health", "show", "--account", "acme"])
    assert status == 0
    first, *rest = text.splitlines()
    assert first.startswith("acme: health 79.6 (green) by model default-health; trend 7d -10.4, 30d -")
    assert "  logins_30d            usage                30    62.5     22%" in rest
    assert "  champion              relationship          -       -      0%  missing: skipped, the other measures " \
           "weigh more" in rest
    status, text = run(["health", "show", "--account", "acme", "--format", "json"])
    assert status == 0 and json.loads(text)["score"] == 79.6


def test_show_unknown_account_is_exit_2(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "show", "--account", "nobody"]) == 2
    assert "csops health show: no account 'nobody' in the CRM" in capsys.readouterr().err


def test_simulate_scores_given_facts(env: Path) -> None:
    status, text = run(["health", "simulate", "--model", str(MODEL), "--format", "json", "--segment", "smb",
                        "--facts", '{"logins_30d": 25, "seat_utilisation": 0.6, "key_features": 0.5}'])
    assert status == 0 and (json.loads(text)["score"], json.loads(text)["band"]) == (54.9, "yellow")


def test_simulate_refuses_a_fact_that_is_no_measure(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "simulate", "--model", str(MODEL), "--facts", '{"logins": 3}']) == 2
    assert "not measures of" in capsys.readouterr().err


def test_shipped_health_tests_pass_and_a_wrong_expectation_fails(tmp_path: Path) -> None:
    status, text = run(["health", "test", str(ROOT / "playbooks")])
    assert status == 0 and text.splitlines()[-1] == "4 passed, 0 failed"
    (tmp_path / "health.yaml").write_text(MODEL.read_text())
    (tmp_path / "health.test.yaml").write_text(
        "model: health.yaml\ncases:\n  - name: wrong\n    facts: { logins_30d: 45 }\n    score: 90\n    band: red\n"
        "  - name: typo\n    facts: { login_30d: 45 }\n")
    status, text = run(["health", "test", str(tmp_path)])
    assert status == 2
    assert "health.test.yaml:8:14: [error] \"login_30d\" is not a measure" in text
    (tmp_path / "health.test.yaml").write_text(
        "model: health.yaml\ncases:\n  - name: wrong\n    facts: { logins_30d: 45 }\n    score: 90\n    band: red\n")
    status, text = run(["health", "test", str(tmp_path)])
    assert status == 1
    assert "        score: expected 90, got 73.3" in text and "        band: expected red, got green" in text


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    await seed(url, NOW)
    store, crm = Store(url), SQLCRM(url)

    class NoIngest:
        async def ingest(self, events: Any) -> list[Any]:
            return []

        async def process_pending(self) -> None:
            return None

        async def run(self, *, poll: float) -> None:
            return None

    from engine.language.validate import validate_paths

    books = validate_paths([str(ROOT / "playbooks" / "health-drop-risk.yaml")]).playbooks
    app = create_app(store=store, ingestor=NoIngest(), token=TOKEN, crm=crm, playbooks=books, now=lambda: NOW,
                     process=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c
    store.close()
    crm.close()


async def test_api_answers_the_breakdown_and_404s(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/accounts/acme/health")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["score"], body["band"], body["model"]) == (79.6, "green", "default-health")
    assert [(m["measure"], m["value"], m["points"]) for m in body["measures"]] == EXPECTED_MEASURES
    missing = await client.get("/v1/accounts/nobody/health")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    unauthorised = await client.get("/v1/accounts/acme/health", headers={"Authorization": "Bearer wrong"})
    assert unauthorised.status_code == 401


def test_an_accounts_import_recomputes_and_queues_the_changed_scores(env: Path) -> None:
    assert run(["import", "users", str(ROOT / "samples" / "users.csv")])[0] == 0
    status, text = run(["import", "accounts", str(ROOT / "samples" / "accounts.csv")])
    assert status == 0, text
    assert text.splitlines()[-2:] == ["7 of 7 accounts imported, 0 rejected",
                                      "health: 7 account score(s) changed by the import, queued as health.updated"]
    store = Store(f"sqlite:///{env / 'csops.db'}")
    try:
        queued = asyncio.run(store.events_for("acme", types=["health.updated"]))
    finally:
        store.close()
    # Acme has its custom fields and no events: seats 150/200, a champion, ARR +8%, nothing overdue, but no
    # logins, meetings or key features yet.
    assert [(e.data["source"], e.data["cause"].split(":")[0]) for e in queued] == [("model", "import")]
    status, text = run(["import", "accounts", str(ROOT / "samples" / "accounts.csv")])
    assert text.splitlines()[-1] == "7 of 7 accounts imported, 0 rejected"  # nothing changed the second time


async def test_api_says_the_model_has_problems_or_is_missing(tmp_path: Path) -> None:
    import shutil

    from engine.language.validate import validate_paths

    url = f"sqlite:///{tmp_path / 'csops.db'}"
    await seed(url, NOW)
    folder = tmp_path / "playbooks"
    folder.mkdir()
    shutil.copy(ROOT / "playbooks" / "health-drop-risk.yaml", folder)
    books = validate_paths([str(folder)]).playbooks
    store, crm = Store(url), SQLCRM(url)

    class NoIngest:
        async def ingest(self, events: Any) -> list[Any]:
            return []

        async def process_pending(self) -> None:
            return None

        async def run(self, *, poll: float) -> None:
            return None

    app = create_app(store=store, ingestor=NoIngest(), token=TOKEN, crm=crm, playbooks=books, now=lambda: NOW,
                     process=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            missing = await http.get("/v1/accounts/acme/health")
            assert (missing.status_code, missing.json()["error"]["code"]) == (404, "no_health_model")
            (folder / "health.yaml").write_text("buckets: {}\nbands: {red_below: 70, yellow_below: 50}\n")
            broken = await http.get("/v1/accounts/acme/health")
            assert (broken.status_code, broken.json()["error"]["code"]) == (422, "invalid_health_model")
            assert "csops validate says where" in broken.json()["error"]["message"]
    finally:
        store.close()
        crm.close()
