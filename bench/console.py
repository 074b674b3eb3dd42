"""Server time of the console's pages on a store of real size: every page's p95 against the same queries run bare.

The script fills a temporary SQLite database (the store and the built-in CRM, as ``csops up`` keeps
them) with ACCOUNTS accounts, RUNS runs whose step audit holds STEPS rows in all, a task per run,
a health history and trigger decisions, written with bulk inserts of the tables' own models. It
then builds the API app (engine/api/app.py with the console mounted), signs in, and requests each page
REPEAT times through ASGI (no network: server time only), and runs each page's store and CRM
queries alone as often ("bare"). The issue's budget is 300 ms per page at 100,000 accounts and
1,000,000 steps.

The last line is a JSON object: slowest_page, slowest_p95_ms, its bare_p95_ms, and every page's figures.

    .venv/bin/python -m bench.console [--accounts 100000] [--runs 100000] [--steps 1000000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from connectors.sqlcrm import SQLCRM
from connectors.sqlcrm_models import AccountRow, TaskRow, UserRow
from engine.api.app import create_app
from engine.api.console import queries
from engine.language.context import Calendar
from engine.reports.inbox import list_tasks
from engine.store.console_auth import add_user
from engine.store.store import Store
from engine.store.store_models import DecisionRow, HealthRow, RunRow, RunTaskRow, StepAuditRow

PASSWORD = "bench password, long enough"
CHUNK = 20_000


def _bulk(db: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    def work(s: Any) -> None:
        for i in range(0, len(rows), CHUNK):
            s.execute(insert(model), rows[i:i + CHUNK])
        s.commit()
    db.call(work)


def fill(store: Store, crm: SQLCRM, accounts: int, runs: int, steps: int) -> None:
    now = datetime.now(UTC)
    _bulk(crm.db, UserRow, [{"id": f"u-{i}", "email": f"csm{i}@example.com", "name": f"CSM {i}", "roles": ["csm"]}
                            for i in range(50)])
    _bulk(crm.db, AccountRow, [{"id": f"a{i:06d}", "name": f"Account {i:06d}", "segment": "smb",
                                "owner_id": f"u-{i % 50}", "arr": 1000.0 + i, "health_score": i % 100,
                                "usage": {}, "fields": {},
                                "health_band": ("red", "yellow", "green")[i % 3]} for i in range(accounts)])
    books = [f"play-{k}" for k in range(8)]
    run_rows, task_rows = [], []
    for i in range(runs):
        run_id, account = f"pb:{books[i % 8]}:a{i % accounts:06d}:{i}", f"a{i % accounts:06d}"
        ended = None if i % 4 else now - timedelta(minutes=i % 5000)
        run_rows.append({"run_id": run_id, "temporal_run_id": f"t{i}", "playbook": books[i % 8], "version": "v1",
                         "account_id": account, "occurrence": str(i), "status": "running" if ended is None else
                         "completed", "reason": "", "trigger": "{}", "started_at": now - timedelta(minutes=i % 40000),
                         "ended_at": ended})
        task_rows.append({"id": f"t{i}", "idempotency_key": f"{run_id}/plan", "account_id": account,
                          "assignee_id": f"u-{i % 50}", "title": f"Task {i}",
                          "due": (now + timedelta(days=i % 20 - 10)).date(),
                          "priority": "normal", "status": "open" if i % 3 else "completed", "created_at": now})
    _bulk(store.db, RunRow, run_rows)
    _bulk(crm.db, TaskRow, task_rows)
    _bulk(store.db, RunTaskRow, [{"task_id": t["id"], "run_id": str(t["idempotency_key"]).split("/")[0], "step": "plan",
                                  "playbook": books[i % 8], "version": "v1", "account_id": t["account_id"],
                                  "assignee": f"csm{i % 50}@example.com", "title": t["title"], "due": t["due"],
                                  "created_at": now, "status": t["status"], "escalations": 0}
                                 for i, t in enumerate(task_rows)])
    per = max(1, steps // max(runs, 1))
    _bulk(store.db, StepAuditRow, [{"run_id": run_rows[i // per % runs]["run_id"], "step": f"s{i % per}" if i % 50 else
                                    f"s/escalate/{i}", "status": "done", "at": now - timedelta(seconds=i),
                                    "detail": "{}"} for i in range(steps)])
    _bulk(store.db, HealthRow, [{"account_id": f"a{i % accounts:06d}", "at": now - timedelta(hours=i),
                                 "score": float(i % 100), "band": "green"} for i in range(min(accounts * 3, 300_000))])
    _bulk(store.db, DecisionRow, [{"at": now, "playbook": books[i % 8], "account_id": f"a{i % accounts:06d}",
                                   "signal": "{}", "outcome": "started", "reason": "started", "message": "",
                                   "occurrence": "", "run_id": "", "seen": "{}"} for i in range(min(runs, 100_000))])


def p95(samples: list[float]) -> float:
    return round(statistics.quantiles(samples, n=20)[18] * 1000, 1) if len(samples) > 1 else round(samples[0] * 1000, 1)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="csops-bench-console-"))
    url = f"sqlite:///{folder / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    t0 = time.monotonic()
    fill(store, crm, args.accounts, args.runs, args.steps)
    filled = time.monotonic() - t0
    await add_user(store, "csm1@example.com", role="ops", password=PASSWORD, crm_user="u-1")
    app = create_app(store=store, ingestor=object(), token="bench-token-0123456789", crm=crm, calendar=Calendar(),  # type: ignore[arg-type]
                     process=False)
    db = crm.db
    now = datetime.now(UTC)
    bare: dict[str, Callable[[], Awaitable[Any]]] = {
        "/console": lambda: asyncio.gather(queries.active_by_playbook(store), queries.task_counts(store, now.date()),
                                           queries.bands(db), queries.escalations_since(store, now - timedelta(days=7)),
                                           queries.failed_runs(store, 10)),
        "/console/runs": lambda: store.runs(limit=50),
        "/console/runs?owner=u-7": lambda: _owner_runs(store, db),
        "/console/accounts?q=00012": lambda: queries.account_search(db, "00012"),
        "/console/accounts/a000123": lambda: asyncio.gather(
            crm.get_account("a000123"), store.runs(account_id="a000123"),
            store.events_for("a000123", limit=30, newest_first=True)),
        "/console/inbox": lambda: list_tasks(store, today=now.date(), owner="csm1@example.com", crm=crm),
        "/console/decisions": lambda: store.decisions(limit=200),
        "/console/playbooks/play-3": lambda: asyncio.gather(queries.versions(store, "play-3"),
                                                            queries.runs_by_day(store, "play-3", now.date())),
    }
    pages: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        page = await client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        r = await client.post("/console/login", data={"csrf": csrf.group(1), "email": "csm1@example.com",
                                                      "password": PASSWORD})
        assert r.status_code == 303, r.text
        for path, query in bare.items():
            served, alone = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                r = await client.get(path)
                served.append(time.perf_counter() - t)
                assert r.status_code in (200, 404), (path, r.status_code)
                t = time.perf_counter()
                await query()
                alone.append(time.perf_counter() - t)
            pages[path] = {"p95_ms": p95(served), "bare_p95_ms": p95(alone)}
    store.close()
    crm.close()
    slowest = max(pages, key=lambda k: pages[k]["p95_ms"])
    return {"slowest_page": slowest, "slowest_p95_ms": pages[slowest]["p95_ms"],
            "bare_p95_ms": pages[slowest]["bare_p95_ms"], "accounts": args.accounts, "runs": args.runs,
            "steps": args.steps, "fill_s": round(filled, 1), "pages": pages}


async def _owner_runs(store: Store, db: Any) -> Any:
    return await queries.runs_of_accounts(store, await queries.owned_accounts(db, "u-7"), playbook=None, status=None,
                                          limit=50)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    result = asyncio.run(main(parser.parse_args()))
    for path, figures in result["pages"].items():
        print(f"{path:34} p95 {figures['p95_ms']:8.1f} ms   bare {figures['bare_p95_ms']:8.1f} ms")
    print(json.dumps(result))
