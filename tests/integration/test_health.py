"""A health drop computed by the model starts the shipped health-drop playbook, end to end on real parts.

A real ``temporal server start-dev``, a real worker (``python -m worker``) and a real API process
(``csops api``), the built-in SQL CRM and the chat outbox. The playbook folder holds the shipped
``health-drop-risk.yaml`` and a two-measure model: logins in 30 days (0 to 20 → 0 to 100 points) and
a champion (100 or 0). Acme (strategic, renew) logs in 10 times and has a champion: 75, green. Its
champion leaves (an ``account.updated`` event): the model computes 25, red; the computed
``health.updated`` goes through the pipeline and the health-drop play starts: the #cs-risk alert
says "dropped to 25 (was 75, band red)" and the save-plan task is in the CRM.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.sqlcrm import SQLCRM
from engine.store.store import Store
from tests.integration.procs import (
    ROOT,
    Procs,
    clean_env,
    free_port,
    start_dev_server,
    start_worker,
    unique_queue,
    wait_ready,
    wait_until,
)
from tests.workflows.harness import seed

pytestmark = pytest.mark.asyncio

MODEL = """\
model: integration
buckets:
  usage:
    measures:
      logins_30d:
        source: { count: usage.login, within: 30d }
        range: { from: 0, to: 20 }
  relationship:
    measures:
      champion:
        source: { field: fields.champion_present }
        thresholds: [ { at_least: 1, points: 100 }, { points: 0 } ]
bands: { red_below: 40, yellow_below: 70 }
"""


def event(ident: str, kind: str, at: datetime, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": ident, "type": kind, "account_id": "acme", "occurred_at": at.isoformat(), "data": data or {}}


async def test_a_computed_drop_starts_the_health_drop_play(tmp_path: Path, procs: Procs) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    shutil.copy(ROOT / "playbooks" / "health-drop-risk.yaml", books)
    (books / "health.yaml").write_text(MODEL, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    crm = SQLCRM(url)
    seed(crm, health=80, renewal=date.today() + timedelta(days=200))  # the alert shows the renewal date
    crm.close()
    port, api_port = free_port(), free_port()
    home = tmp_path / "home"
    env = clean_env(CSOPS_TEMPORAL_ADDRESS=f"127.0.0.1:{port}", CSOPS_HOME=str(home), CSOPS_DATABASE_URL=url,
                    CSOPS_TASK_QUEUE=unique_queue(tmp_path.name), CSOPS_PLAYBOOKS=str(books),
                    CSOPS_FALLBACK_OWNER="ops@example.com")
    await start_dev_server(procs, tmp_path / "temporal.db", port, free_port())
    await wait_ready(start_worker(procs, env))
    procs.start("api", [sys.executable, "-m", "engine.cli", "api", "--host", "127.0.0.1", "--port", str(api_port),
                        "--insecure-dev"], env=env)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as http:
        async def up() -> bool:
            try:
                return (await http.get("/v1/health")).status_code == 200
            except httpx.HTTPError:
                return False
        await wait_until(up, 60, "the API")
        now = datetime.now(UTC)
        logins = [event(f"login-{i}", "usage.login", now - timedelta(days=i + 1)) for i in range(10)]
        baseline = [event("champion-named", "account.updated", now, {"fields": {"fields.champion_present": True}}),
                    *logins]
        assert (await http.post("/v1/events", json={"events": baseline})).status_code == 202

        async def recorded() -> Any:
            body = (await http.get("/v1/accounts/acme/health")).json()
            return body if body.get("recorded") == {"score": 75.0, "band": "green"} else None
        await wait_until(recorded, 60, "the computed baseline 75 green")

        drop = event("champion-left", "account.updated", now + timedelta(seconds=1),
                     {"fields": {"fields.champion_present": False}})
        assert (await http.post("/v1/events", json=drop)).status_code == 202

        async def started() -> Any:
            runs = (await http.get("/v1/runs", params={"playbook": "health-drop-risk"})).json()["runs"]
            return runs or None
        runs = await wait_until(started, 60, "a health-drop-risk run")
        assert [(r["account_id"], r["status"]) for r in runs] == [("acme", "running")]
        chat = home / "outbox" / "chat.jsonl"

        def alerted() -> list[dict[str, Any]] | None:
            lines = chat.read_text().splitlines() if chat.exists() else []
            found = [json.loads(line) for line in lines if "cs-risk" in line]
            return found or None
        alert = (await wait_until(alerted, 60, "the #cs-risk alert"))[0]
        assert "Acme Corp health dropped to 25 (was 75, band red)" in alert["text"]
        body = (await http.get("/v1/accounts/acme/health")).json()
        assert (body["score"], body["band"], body["recorded"]) == (25.0, "red", {"score": 25.0, "band": "red"})
        decisions = (await http.get("/v1/decisions", params={"account_id": "acme"})).json()["decisions"]
        assert sum(1 for d in decisions if d["outcome"] == "started") == 1
    store, crm = Store(url), SQLCRM(url)
    try:
        sent = await store.events_for("acme", types=["health.updated"])
        assert [(e.data["score"], e.data["band"], e.data["source"]) for e in sent] == [(75.0, "green", "model"),
                                                                                      (25.0, "red", "model")]
        assert sent[-1].data["cause"] == "event:champion-left"
        assert [t.title for t in crm.list_tasks() if t.account_id == "acme"] == [
            "Health drop: save plan for Acme Corp"]
    finally:
        store.close()
        crm.close()
