"""A million accounts on PostgreSQL: build, daily scan, multi-process ingest, matcher latency.

Needs PostgreSQL (``--server``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``); makes a
database of its own and drops it at the end. Phases, each timed:

1. build: ``--accounts`` accounts (default 1,000,000) with a primary contact each, usage facts and
   renewal dates spread over the next year, through the documented bulk path: ``COPY`` into the
   built-in CRM's tables (created by ``SQLCRM``, so the same schema and indexes as ``csops import``).
2. scan: ``engine.triggers.scan.find_due`` for today with the shipped playbooks, in a child process (its peak
   RSS is the scan's; it pages, so it stays flat as accounts grow), against one hand-written
   indexed SQL query for the same due set: accounts LEFT JOIN contacts in each trigger's date
   window and in the playbook's audience (its segments, which the scan filters in SQL too, and
   ``arr > 0`` for its ``audience.when``, which the built-in CRM filters in SQL too); ``same_due_set``
   checks both find the same accounts (``scan_ratio`` = sql seconds / scan seconds; the scan's
   seconds are all of find_due, reading included). ``scan_cpu_seconds`` is the CPU time of the
   scanning process during find_due (its threads included, PostgreSQL's own work not): steadier than
   the wall clock on a loaded machine. These cold figures are the first scan of a freshly started
   worker: the scan only ever runs as an activity of worker.py (``csops_scan_page``, or the one-shot
   ``csops_daily_scan`` of older histories; ``csops forecast`` runs its own on a sandbox copy), and the
   worker calls ``settle_heap`` once it has started, before it polls for work. So the child does what
   the worker has done by then: its modules imported, the playbooks loaded, the CRM and the store
   built, ``settle_heap()``; nothing of the scan has run: its statements are compiled, its types set
   up and its expressions compiled on first use, inside the timed call. ``warm_scan_seconds`` and
   ``warm_scan_cpu_seconds`` (the median of ``WARM`` scans of the same day in the same process, after
   the cold one and the SQL) and ``warm_scan_ratio`` = sql seconds / warm scan seconds are a later
   scan of the same worker, which has run it before. ``scan_ratio`` is the cold one; the SQL is timed
   once, after the cold scan, in both ratios.
3. ingest: 2 ``csops api`` processes, 2 workers, one ``temporal server start-dev``: ``--events``
   events (one ``nps.submitted`` per account of ``--runs`` accounts, each posted to both APIs, the
   rest usage events), a worker SIGKILLed when half the runs have started, and started again; events/s,
   runs started/s, and ``duplicates`` = events stored twice + runs started twice.
4. matcher: ``engine.triggers.matcher.decide`` for ``--decisions`` events (default 200,000) over the shipped
   playbooks; p50/p99 per event.

``--small``: 20,000 accounts, 600 events, 20 runs, 20,000 decisions (a quick check); ``--scan-only``:
phases 1 and 2 alone (the JSON then has no matcher or ingest figures); ``--database NAME``: build into
(or reuse, when it already holds accounts) a database of that name and keep it, for trying changes to
the scan without building a million accounts each time (drop it by hand). Every phase
stops by itself (deadlines); the last line is JSON with ``scan_seconds``, ``scan_ratio``, ``duplicates``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sqlcrm import SQLCRM  # noqa: E402
from engine.language import model as m  # noqa: E402
from engine.language.context import Calendar  # noqa: E402
from engine.root import settle_heap  # noqa: E402
from engine.runtime.starter import load_playbooks  # noqa: E402
from engine.store.store import Store  # noqa: E402
from engine.triggers.matcher import decide  # noqa: E402
from engine.triggers.scan import date_window, find_due, milestone_playbooks  # noqa: E402
from engine.triggers.signals import EventSignal, Facts  # noqa: E402

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
SEGMENTS = ("strategic", "commercial", "smb")
WARM = 3
"""Warm scans of the same day after the cold one (``warm_scan_seconds`` is their median)."""


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def build(url: str, count: int) -> float:
    """COPY ``count`` accounts, contacts and one user into the CRM's tables; seconds taken."""
    SQLCRM(url).close()  # creates the tables and indexes as every csops process does
    Store(url).close()
    rng = random.Random(17)
    started = time.perf_counter()
    with psycopg.connect(libpq(url)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (id, email, name, title, manager_id, timezone, out_of_office, roles) "
                    "VALUES ('u-csm', 'carl@example.com', 'Carl CSM', '', NULL, 'UTC', false, '[]')")
        step = 100_000
        for first in range(0, count, step):
            accounts, contacts = io.StringIO(), io.StringIO()
            for i in range(first, min(count, first + step)):
                renewal = TODAY + timedelta(days=rng.randint(1, 365))
                usage = json.dumps({"logins_30d": rng.randint(0, 300), "seats_used": rng.randint(1, 500)})
                arr = rng.choice((0, 12000, 50000))
                accounts.write(f"a{i:07d}\tAccount {i}\t{SEGMENTS[i % 3]}\trenew\tu-csm\t{arr}\t{renewal}"
                               f"\t\\N\topen\t{rng.randint(0, 100)}\tgreen\t\\N\t{usage}\t{{}}\n")
                contacts.write(f"c{i:07d}\ta{i:07d}\tpat{i}@example.com\tPat\tLee\t\tchampion\t\ttrue\t\\N\n")
            with cur.copy("COPY accounts (id, name, segment, lifecycle_stage, owner_id, arr, renewal_date, "
                          "contract_start, renewal_status, health_score, health_band, previous_health_score, "
                          "usage, fields) FROM STDIN") as copy:
                copy.write(accounts.getvalue())
            with cur.copy("COPY contacts (id, account_id, email, first_name, last_name, title, role, phone, "
                          "is_primary, timezone) FROM STDIN") as copy:
                copy.write(contacts.getvalue())
        conn.commit()
        cur.execute("ANALYZE accounts")
        cur.execute("ANALYZE contacts")
    return time.perf_counter() - started


def accounts_in(url: str) -> int:
    """How many accounts a kept database (``--database``) holds; 0 before it was built."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not conn.execute(text("SELECT to_regclass('accounts')")).scalar():
                return 0
            return int(conn.execute(text("SELECT count(*) FROM accounts")).scalar() or 0)
    finally:
        engine.dispose()


def scan_child(url: str) -> dict[str, Any]:
    """In its own process: find_due for today, and the hand-written SQL for the same due set.

    The SQL is what a person would write for the shipped milestone playbook (renewal-reminders):
    accounts LEFT JOIN contacts, the renewal date in each trigger's window, and the playbook's
    audience (its segments, and ``audience.when: account.arr > 0`` as ``arr > 0``), which the scan
    also applies (both in its SQL, and ``when`` again in the matcher). Both run on a warm database, the
    SQL after the scan; ``same_due_set`` says the SQL's accounts are exactly the runs the scan starts.
    """
    books = list(load_playbooks(ROOT / "playbooks").values())
    calendar, since = Calendar(), TODAY - timedelta(days=1)
    crm, store = SQLCRM(url), Store(url)
    # As worker.py once it has started, before its first activity: what it has built lives as long as it.
    settle_heap()
    try:
        t, cpu = time.perf_counter(), time.process_time()
        found, candidates = asyncio.run(find_due(crm, store, books, since=since, today=TODAY, now=NOW,
                                                 calendar=calendar))
        scan_s, scan_cpu = time.perf_counter() - t, time.process_time() - cpu
        parts = []
        for p in milestone_playbooks(books):
            assert p.audience.when in ("", "account.arr > 0") and not p.audience.lifecycle_stages, \
                f"{p.id}: write its audience into the SQL below"
            audience = "".join((f" AND a.segment IN ({', '.join(repr(x) for x in p.audience.segments)})"
                                if p.audience.segments else "", " AND a.arr > 0" if p.audience.when else ""))
            parts += [f"SELECT a.id, c.email FROM accounts a LEFT JOIN contacts c ON c.account_id = a.id "
                      f"WHERE a.renewal_date BETWEEN '{first}' AND '{last}'{audience}"
                      for tr in p.triggers if isinstance(tr, m.ContractMilestone) and tr.field == "renewal_date"
                      for first, last in [date_window(tr, since, TODAY, calendar)]]
        engine = create_engine(url)
        t = time.perf_counter()
        with engine.connect() as conn:
            rows = conn.execute(text(" UNION ALL ".join(parts))).all()
        sql_s = time.perf_counter() - t
        engine.dispose()
        started = {f.decision.account_id for f in found if f.decision.outcome == "start"}
        count = len(found)
        del found  # as a worker's scan activity ends: its decisions are enrolled and gone
        # Warm: a later scan of the same worker, which has run the scan's statements before. The same
        # day again, WARM times; the median is reported. (No settle_heap here: the worker calls it once.)
        warm: list[tuple[float, float]] = []
        for _ in range(WARM):
            t, cpu = time.perf_counter(), time.process_time()
            again, _n = asyncio.run(find_due(crm, store, books, since=since, today=TODAY, now=NOW, calendar=calendar))
            warm.append((time.perf_counter() - t, time.process_time() - cpu))
            assert {f.decision.account_id for f in again if f.decision.outcome == "start"} == started
            del again
    finally:
        crm.close()
        store.close()
    return {"scan_seconds": round(scan_s, 3), "scan_cpu_seconds": round(scan_cpu, 3), "sql_seconds": round(sql_s, 4),
            "warm_scan_seconds": round(statistics.median(w for w, _c in warm), 3),
            "warm_scan_cpu_seconds": round(statistics.median(c for _w, c in warm), 3),
            "candidates": candidates,
            "found": count, "due_started": len(started), "sql_rows": len(rows),
            "same_due_set": started == {r.id for r in rows},
            "scan_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def matcher(n: int) -> dict[str, Any]:
    """decide() per event over the shipped playbooks that listen to events: p50/p99 in microseconds."""
    from engine.language.validate import check_text

    nps = check_text(PLAYBOOK, "scale-nps.yaml").playbook
    assert nps is not None
    books = [p for p in load_playbooks(ROOT / "playbooks").values() if p.enabled] + [nps]
    rng = random.Random(3)
    kinds = ("usage.feature_used", "health.updated", "nps.submitted", "ticket.opened")
    calendar = Calendar()
    per: list[float] = []
    decisions = 0
    for i in range(n):
        account: dict[str, Any] = {
                   "id": f"a{i:07d}", "name": "X", "segment": SEGMENTS[i % 3], "lifecycle_stage": "onboard",
                   "arr": 12000.0, "renewal_date": TODAY + timedelta(days=i % 365), "health_score": rng.randint(0, 100),
                   "health_band": "red", "usage": {"logins_30d": i % 50}, "fields": {}}
        ev = EventSignal(id=f"e{i}", type=kinds[i % 4], account_id=account["id"], occurred_at=NOW,
                         data={"feature": "advanced_analytics", "score": rng.randint(0, 10)})
        facts = Facts(account=account, now=NOW, calendar=calendar)
        t = time.perf_counter()
        for p in books:
            if decide(p, ev, facts) is not None:
                decisions += 1
        per.append(time.perf_counter() - t)
    per.sort()
    return {"matcher_events": n, "matcher_decisions": decisions,
            "matcher_p50_us": round(per[len(per) // 2] * 1e6, 1),
            "matcher_p99_us": round(per[int(len(per) * 0.99)] * 1e6, 1)}


PLAYBOOK = """\
playbook: scale-nps
title: Detractor follow-up
triggers:
  - event: { type: nps.submitted }
steps:
  - id: first
    task: { title: "First look at {{ account.name }}" }
  - id: hold
    wait: { until: now + days(0.0001) }
  - id: second
    task: { title: "Follow-up for {{ account.name }}" }
"""


async def ingest(url: str, events: int, runs: int, tmp: Path) -> dict[str, Any]:
    """2 APIs + 2 workers + 1 dev server on ``url``; a worker SIGKILLed while runs start and run."""
    import httpx

    from tests.integration.procs import (
        Procs,
        clean_env,
        free_port,
        port_open,
        start_dev_server,
        start_worker,
        unique_queue,
        wait_for_frontend,
        wait_ready,
        wait_until,
    )

    books = tmp / "playbooks"
    books.mkdir()
    (books / "scale-nps.yaml").write_text(PLAYBOOK, encoding="utf-8")
    procs, port = Procs(tmp), free_port()
    env = clean_env(CSOPS_TEMPORAL_ADDRESS=f"127.0.0.1:{port}", CSOPS_HOME=str(tmp / "home"), CSOPS_DATABASE_URL=url,
                    CSOPS_TASK_QUEUE=unique_queue("scale"), CSOPS_PLAYBOOKS=str(books), CSOPS_API_TOKEN="bench",
                    CSOPS_FALLBACK_OWNER="ops@example.com", CSOPS_LOG_LEVEL="WARNING")
    try:
        server = await start_dev_server(procs, tmp / "temporal.db", port, free_port())
        client = await wait_for_frontend(f"127.0.0.1:{port}", 60, server)
        workers = [start_worker(procs, env) for _ in range(2)]
        for w in workers:
            await wait_ready(w, 120)
        apis = []
        for _ in range(2):
            api_port = free_port()
            procs.start("api", [sys.executable, "-m", "engine.cli", "api", "--port", str(api_port)], env=env)
            apis.append(f"http://127.0.0.1:{api_port}")
            await wait_until(lambda p=api_port: port_open(p), 60, "the API")  # type: ignore[misc]
        batches: list[tuple[str, list[dict[str, Any]]]] = []
        for i in range(runs):
            nps = {"id": f"nps-{i}", "type": "nps.submitted", "account_id": f"a{i:07d}",
                   "occurred_at": NOW.isoformat(), "data": {"score": 2}}
            batches += [(apis[0], [nps]), (apis[1], [nps])]
        rest = [{"id": f"use-{i}", "type": "usage.feature_used", "account_id": f"a{i % 1000:07d}",
                 "occurred_at": NOW.isoformat(), "data": {"feature": "reports"}} for i in range(events - runs)]
        batches += [(apis[n % 2], rest[k:k + 100]) for n, k in enumerate(range(0, len(rest), 100))]
        async with httpx.AsyncClient(headers={"Authorization": "Bearer bench"}, timeout=60) as http:
            gate = asyncio.Semaphore(8)

            async def post(api: str, body: list[dict[str, Any]]) -> None:
                async with gate:
                    answer = await http.post(f"{api}/v1/events", json={"events": body})
                    assert answer.status_code == 202, answer.text
            t0 = time.perf_counter()
            await asyncio.gather(*(post(a, b) for a, b in batches))
            posted = time.perf_counter() - t0
        engine = create_engine(url)

        def scalar(q: str) -> int:
            with engine.connect() as conn:
                return int(conn.execute(text(q)).scalar() or 0)

        await wait_until(lambda: scalar("SELECT count(*) FROM events WHERE processed_at IS NULL") == 0, 600,
                         "every event processed", interval=0.5)
        processed = time.perf_counter() - t0

        async def listed() -> list[Any]:
            return [w async for w in client.list_workflows("WorkflowType = 'PlaybookRun'")]
        # SIGKILL a worker while runs are being started and run: its activities in flight are retried
        # elsewhere after their start-to-close timeout (2 min), so this phase takes at least that long.
        await wait_until(lambda: _enough(listed, runs // 2), 600, "half the runs started", interval=0.2)
        await workers[0].kill9()
        workers[0] = start_worker(procs, env)
        await wait_until(lambda: _enough(listed, runs), 600, "every run started", interval=0.5)
        started = time.perf_counter() - t0
        await wait_ready(workers[0], 120)

        async def done() -> bool:
            from temporalio.client import WorkflowExecutionStatus
            return all(w.status == WorkflowExecutionStatus.COMPLETED for w in await listed())
        await wait_until(done, 600, "every run to complete", interval=1.0)
        stored_twice = scalar("SELECT count(*) FROM (SELECT id FROM events GROUP BY id HAVING count(*) > 1) d")
        runs_twice = scalar("SELECT count(*) FROM (SELECT account_id FROM runs GROUP BY account_id "
                            "HAVING count(*) > 1) d") + max(0, len(await listed()) - runs)
        tasks_twice = scalar("SELECT count(*) FROM (SELECT account_id, title FROM tasks GROUP BY account_id, title "
                             "HAVING count(*) > 1) d")
        stored = scalar("SELECT count(*) FROM events")
        engine.dispose()
        return {"events": stored, "posted_seconds": round(posted, 2), "events_per_s": round(stored / processed, 1),
                "runs": runs, "runs_started_per_s": round(runs / started, 1), "worker_killed": 1,
                "events_stored_twice": stored_twice, "runs_started_twice": runs_twice, "tasks_twice": tasks_twice}
    except BaseException:
        print(procs.logs()[-4000:], file=sys.stderr)
        raise
    finally:
        for p in procs.procs:
            p.signal(signal.SIGTERM)
        time.sleep(1)
        procs.cleanup()


async def _enough(listed: Any, runs: int) -> bool:
    return len(await listed()) >= runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=SERVER, help="PostgreSQL URL (a database of its own is made there)")
    ap.add_argument("--small", action="store_true", help="20,000 accounts, 600 events, 20 runs, 20,000 decisions")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--decisions", type=int, default=200_000)
    ap.add_argument("--scan-only", action="store_true", help="build and scan only (no matcher, no ingest)")
    ap.add_argument("--database", default="",
                    help="use (and keep) this database, building it only when it has no accounts yet: for trying "
                         "changes to the scan without building a million accounts each time; drop it by hand")
    ap.add_argument("--scan-child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scan_child:
        print(json.dumps(scan_child(args.scan_child)))
        return
    if args.small:
        args.accounts, args.events, args.runs, args.decisions = 20_000, 600, 20, 20_000
    name = args.database or f"csops_scale_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.server).set(database=name).render_as_string(hide_password=False)
    out: dict[str, Any] = {"accounts": args.accounts}
    try:
        have = accounts_in(url) if exists else 0
        if have:
            out["accounts"], out["build_seconds"] = have, 0.0
            print(f"reusing {name} with {have} accounts", flush=True)
        else:
            out["build_seconds"] = round(build(url, args.accounts), 1)
            print(f"built {args.accounts} accounts in {out['build_seconds']} s", flush=True)
        child = subprocess.run([sys.executable, __file__, "--scan-child", url], capture_output=True, text=True,
                               timeout=600, check=True)
        out.update(json.loads(child.stdout.strip().splitlines()[-1]))
        out["scan_ratio"] = round(out["sql_seconds"] / out["scan_seconds"], 4)
        out["warm_scan_ratio"] = round(out["sql_seconds"] / out["warm_scan_seconds"], 4)
        print(f"scan: {out['scan_seconds']} s cold, {out['warm_scan_seconds']} s warm, sql {out['sql_seconds']} s, "
              f"{out['found']} found, "
              f"peak RSS {out['scan_peak_rss_mb']} MB", flush=True)
        if not args.scan_only:
            out.update(matcher(args.decisions))
            print(f"matcher: p50 {out['matcher_p50_us']} us, p99 {out['matcher_p99_us']} us", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                out.update(asyncio.run(ingest(url, args.events, args.runs, Path(tmp))))
            out["duplicates"] = out["events_stored_twice"] + out["runs_started_twice"]
    finally:
        if not args.database:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    finally:  # a Temporal client was used: end without waiting for its threads
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0 if sys.exc_info()[0] is None else 1)
