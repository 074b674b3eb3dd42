"""Event processing outside the API: ``csops api --no-processing`` stores, ``csops process`` processes.

Real processes over one SQLite store and a Temporal dev server (no worker: a started run waits in
Temporal, which is all this needs). While no processor runs, what the API stored stays queued and
``csops event queued`` says so; a ``csops process`` started then processes it (runs started,
decisions recorded, events marked processed), stops on SIGTERM, and a later one takes up what was
stored meanwhile.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration.procs import (
    ROOT,
    Procs,
    clean_env,
    free_port,
    port_open,
    start_dev_server,
    wait_for_frontend,
    wait_until,
)
from tests.integration.test_durability import seed_crm
from tests.integration.test_pg_processes import event

pytestmark = pytest.mark.asyncio
ACCOUNTS = ("sp1", "sp2", "sp3")
TOKEN = "split-test-token"
QUIET = 3.0
"""Seconds the API without processing is left with its events: three times the processing loop's
poll (engine/api/app.py PROCESS_IDLE), so an API that processed after all would have done it."""

PLAYBOOK = """\
playbook: split-nps
title: Detractor follow-up
triggers:
  - event: { type: nps.submitted }
steps:
  - id: first
    task: { title: "First look at {{ account.name }}" }
"""


def processed(url: str) -> dict[str, bool]:
    """Per event id: processed yet."""
    return {r[0]: r[1] is not None for r in rows(url, "SELECT id, processed_at FROM events")}


def run_accounts(url: str) -> tuple[str, ...]:
    """The accounts with a run in the store."""
    return tuple(sorted(r[0] for r in rows(url, "SELECT account_id FROM runs")))


def rows(url: str, query: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query)))
    finally:
        engine.dispose()


def queued_line(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "engine.cli", "event", "queued"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_the_api_stores_and_a_separate_process_processes(tmp_path: Path, procs: Procs) -> None:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    seed_crm(url, ACCOUNTS)
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "split-nps.yaml").write_text(PLAYBOOK, encoding="utf-8")
    port = free_port()
    env = clean_env(CSOPS_TEMPORAL_ADDRESS=f"127.0.0.1:{port}", CSOPS_HOME=str(tmp_path / "home"),
                    CSOPS_DATABASE_URL=url, CSOPS_TASK_QUEUE=f"split-{port}", CSOPS_PLAYBOOKS=str(books),
                    CSOPS_FALLBACK_OWNER="ops@example.com", CSOPS_API_TOKEN=TOKEN, CSOPS_LOG_LEVEL="INFO")
    try:
        server = await start_dev_server(procs, tmp_path / "temporal.db", port, free_port())
        client = await wait_for_frontend(f"127.0.0.1:{port}", 60, server)
        api_port = free_port()
        procs.start("api", [sys.executable, "-m", "engine.cli", "api", "--no-processing", "--port", str(api_port)],
                    env=env)
        await wait_until(lambda: port_open(api_port), 60, "the API to listen")
        api = f"http://127.0.0.1:{api_port}"
        async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
            async def post(events: list[dict[str, Any]]) -> None:
                answer = await http.post("/v1/events", json={"events": events})
                assert answer.status_code == 202 and answer.json()["accepted"] == len(events), answer.text

            first = [event(f"nps-{a}", "nps.submitted", a) for a in ACCOUNTS[:2]]
            first += [event(f"use-{a}-{n}", "usage.feature_used", a) for a in ACCOUNTS[:2] for n in range(3)]
            await post(first)
            await asyncio.sleep(QUIET)  # nothing to wait on: what is checked is that nothing happens
            assert processed(url) == {e["id"]: False for e in first}
            assert run_accounts(url) == ()
            assert queued_line(env).startswith(f"{len(first)} event(s) queued")
            assert (await http.get("/v1/decisions")).json()["decisions"] == []

            processor = procs.start("process", [sys.executable, "-m", "engine.cli", "process", "--poll", "0.2"],
                                    env=env)
            await wait_until(lambda: all(processed(url).values()), 60, "the processor to process the queue")
            assert run_accounts(url) == ACCOUNTS[:2]
            decisions = (await http.get("/v1/decisions")).json()["decisions"]
            assert sorted((d["account_id"], d["outcome"]) for d in decisions) == [(a, "started") for a in ACCOUNTS[:2]]
            found = sorted([w.id async for w in client.list_workflows("WorkflowType = 'PlaybookRun'")])
            assert [w.rsplit(":", 1)[0] for w in found] == [f"pb:split-nps:{a}" for a in ACCOUNTS[:2]]
            assert queued_line(env).startswith("no events queued")

            processor.signal(signal.SIGTERM)
            assert await processor.wait_exit(15) == 0
            assert "csops process: stopped" in processor.log_text()

            late = event(f"nps-{ACCOUNTS[2]}", "nps.submitted", ACCOUNTS[2])
            await post([late])  # stored while no processor runs: it waits for the next one
            assert queued_line(env).startswith("1 event(s) queued")
            procs.start("process", [sys.executable, "-m", "engine.cli", "process", "--poll", "0.2"], env=env)
            await wait_until(lambda: processed(url).get(late["id"]), 60, "the next processor to take it up")
            assert run_accounts(url) == ACCOUNTS
    except BaseException:
        print(procs.logs())
        raise
    finally:
        for p in procs.procs:
            p.signal(signal.SIGTERM)
