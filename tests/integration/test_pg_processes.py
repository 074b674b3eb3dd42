"""Two API processes and two workers on one PostgreSQL database and one Temporal dev server.

Every trigger event is posted to both APIs at once (the same id), and usage events to one or the
other; one worker is SIGKILLed while the runs wait and started again. Then every event is stored
once and processed, every run started once, and each run's two tasks exist once each.

Runs on the test PostgreSQL (tests/conftest.py ``pg_database``: ``CSOPS_TEST_PG_URL``, else the local
server) in a database of its own, dropped at the end; without a server it is skipped, and fails under CI.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from temporalio.client import WorkflowExecutionStatus

from connectors.sqlcrm import SQLCRM
from tests.integration.procs import (
    Procs,
    clean_env,
    free_port,
    idle,
    port_open,
    start_dev_server,
    start_worker,
    unique_queue,
    wait_for_frontend,
    wait_ready,
    wait_until,
)
from tests.integration.test_durability import seed_crm

pytestmark = pytest.mark.asyncio
ACCOUNTS = tuple(f"pg{i:02d}" for i in range(8))
TOKEN = "pg-test-token"

PLAYBOOK = """\
playbook: pg-nps
title: Detractor follow-up
triggers:
  - event: { type: nps.submitted }
steps:
  - id: first
    task: { title: "First look at {{ account.name }}" }
  - id: hold
    wait: { until: now + days(0.00015) }
  - id: second
    task: { title: "Follow-up for {{ account.name }}" }
"""


def event(event_id: str, kind: str, account_id: str) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "account_id": account_id,
            "occurred_at": datetime.now(UTC).isoformat(), "data": {"score": 3, "feature": "reports"}}


async def test_two_apis_and_two_workers_store_and_start_everything_once(tmp_path: Path, procs: Procs,
                                                                        pg_database: str) -> None:
    seed_crm(pg_database, ACCOUNTS)
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "pg-nps.yaml").write_text(PLAYBOOK, encoding="utf-8")
    port = free_port()
    env = clean_env(CSOPS_TEMPORAL_ADDRESS=f"127.0.0.1:{port}", CSOPS_HOME=str(tmp_path / "home"),
                    CSOPS_DATABASE_URL=pg_database, CSOPS_TASK_QUEUE=unique_queue("pg"), CSOPS_PLAYBOOKS=str(books),
                    CSOPS_FALLBACK_OWNER="ops@example.com", CSOPS_API_TOKEN=TOKEN, CSOPS_LOG_LEVEL="INFO")
    try:
        server = await start_dev_server(procs, tmp_path / "temporal.db", port, free_port())
        client = await wait_for_frontend(f"127.0.0.1:{port}", 60, server)
        workers = [start_worker(procs, env) for _ in range(2)]
        for w in workers:
            await wait_ready(w)
        apis = []
        for _ in range(2):
            api_port = free_port()
            procs.start("api", [sys.executable, "-m", "engine.cli", "api", "--port", str(api_port)], env=env)
            apis.append(f"http://127.0.0.1:{api_port}")
            await wait_until(lambda p=api_port: port_open(p), 60, "the API to listen")  # type: ignore[misc]

        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
            async def post(api: str, events: list[dict[str, Any]]) -> dict[str, Any]:
                answer = await http.post(f"{api}/v1/events", json={"events": events})
                assert answer.status_code == 202, answer.text
                body: dict[str, Any] = answer.json()
                return body

            posts = []
            for i, account in enumerate(ACCOUNTS):
                nps = event(f"nps-{account}", "nps.submitted", account)
                posts += [post(apis[0], [nps]), post(apis[1], [nps])]  # the same event to both, at once
                posts.append(post(apis[i % 2], [event(f"use-{account}-{n}", "usage.feature_used", account)
                                                 for n in range(5)]))
            answers = await asyncio.gather(*posts)
        accepted = sum(a["accepted"] for a in answers)
        duplicates = sum(a["duplicates"] for a in answers)
        assert (accepted, duplicates) == (len(ACCOUNTS) * 6, len(ACCOUNTS))

        run_ids = [f"pb:pg-nps:{a}:" for a in ACCOUNTS]

        async def all_started() -> bool:
            found = [w async for w in client.list_workflows("WorkflowType = 'PlaybookRun'")]
            return len(found) >= len(ACCOUNTS)
        await wait_until(all_started, 90, "every run to start")

        async def all_holding() -> bool:  # nothing in flight: a killed activity would wait out its 2 min timeout
            found = [w async for w in client.list_workflows("WorkflowType = 'PlaybookRun'")]
            return all([await idle(client.get_workflow_handle(w.id)) for w in found])
        await wait_until(all_holding, 60, "every run to wait at its timer")
        await workers[0].kill9()  # mid-run: every run waits at `hold`, its first task done
        workers[0] = start_worker(procs, env)
        await wait_ready(workers[0])

        async def all_done() -> bool:
            found = [w async for w in client.list_workflows("WorkflowType = 'PlaybookRun'")]
            return all(w.status == WorkflowExecutionStatus.COMPLETED for w in found)
        await wait_until(all_done, 120, "every run to complete")
        found = [w async for w in client.list_workflows("WorkflowType = 'PlaybookRun'")]
        assert sorted(w.id.rsplit(":", 1)[0] + ":" for w in found) == run_ids

        engine = create_engine(pg_database)
        try:
            with engine.connect() as conn:
                events = conn.execute(text("SELECT count(*), count(DISTINCT id), count(processed_at) "
                                           "FROM events")).one()
                runs = conn.execute(text("SELECT account_id, count(*) FROM runs GROUP BY account_id "
                                         "ORDER BY account_id")).all()
        finally:
            engine.dispose()
        assert tuple(events) == (len(ACCOUNTS) * 6,) * 3
        assert [tuple(r) for r in runs] == [(a, 1) for a in ACCOUNTS]
        crm = SQLCRM(pg_database)
        try:
            titles = sorted(t.title for t in crm.list_tasks())
        finally:
            crm.close()
        assert titles == sorted([f"First look at {a.title()} Inc" for a in ACCOUNTS]
                                + [f"Follow-up for {a.title()} Inc" for a in ACCOUNTS])
    except BaseException:
        print(procs.logs())
        raise
    finally:
        for w in procs.procs:
            w.signal(signal.SIGTERM)
