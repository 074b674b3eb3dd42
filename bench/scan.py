"""Find the due runs of the daily scan among 100,000 accounts on SQLite.

Generation (not timed): a temporary SQLite database shared by the built-in CRM and the store (the
default layout), 100,000 accounts with random segments, stages, ARR and renewal dates within two
years, three health scores each, and earlier renewal runs for a tenth of them. The shipped
playbooks (playbooks/) are loaded as the worker loads them.

Timed: ``engine.triggers.scan.find_due`` for today (the finding phase of the daily scan: SQL date window,
account views and runs read a page at a time, the matcher on every candidate). Starting the runs is
Temporal's cost and is not measured. Also timed: a catch-up of 3 missed days.

Baselines, in the same run: ``naive_seconds``, the matcher over every account without the SQL
window, one account at a time as the event path does it (``SQLCRM.account_view`` +
``engine.triggers.enrol.facts_for`` + ``decide``), measured on a sample and extrapolated; ``ratio`` =
naive_seconds / seconds; and ``table_read_seconds``, a plain ``SELECT`` of every account row.

Prints figures, and as the JSON object on its last line: ``accounts``, ``seconds`` (target: under
10), ``accounts_per_s``, ``due``, ``found``, ``candidates``, ``catchup_seconds``, ``naive_seconds``,
``ratio``, ``table_read_seconds``. BENCH_ACCOUNTS changes the count.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sqlcrm import SQLCRM  # noqa: E402
from connectors.sqlcrm_models import AccountRow  # noqa: E402
from engine.language.context import Calendar  # noqa: E402
from engine.language.model import Playbook  # noqa: E402
from engine.payloads.runcontext import view_data  # noqa: E402
from engine.runtime.starter import load_playbooks  # noqa: E402
from engine.store.store import Store  # noqa: E402
from engine.store.store_models import HealthRow, RunRow  # noqa: E402
from engine.triggers.enrol import facts_for  # noqa: E402
from engine.triggers.matcher import decide  # noqa: E402
from engine.triggers.scan import find_due, milestone_playbooks  # noqa: E402
from engine.triggers.signals import Scan  # noqa: E402

COUNT = int(os.environ.get("BENCH_ACCOUNTS", "100000"))
SAMPLE = min(COUNT, 2000)
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()


def generate(crm: SQLCRM, store: Store, rng: random.Random) -> None:
    accounts: list[dict[str, Any]] = []
    health: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for i in range(COUNT):
        renewal = TODAY + timedelta(days=rng.randint(-30, 730))
        accounts.append({
            "id": f"acct-{i:06d}", "name": f"Account {i}", "segment": rng.choice(["strategic", "commercial", "smb"]),
            "lifecycle_stage": rng.choice(["onboard", "adopt", "expand", "renew"]), "owner_id": None,
            "arr": rng.choice([0.0, 12000.0, 50000.0, 250000.0]), "renewal_date": renewal, "contract_start": None,
            "renewal_status": "open", "health_score": rng.randint(0, 100), "health_band": "green",
            "previous_health_score": None, "usage": {}, "fields": {}})
        for k in range(3):
            health.append({"account_id": f"acct-{i:06d}", "at": NOW - timedelta(days=30 * k),
                           "score": float(rng.randint(0, 100)), "band": ""})
        if i % 10 == 0:  # last year's renewal run, ended
            old = renewal - timedelta(days=365)
            runs.append({"run_id": f"pb:renewal-reminders:acct-{i:06d}:{old}", "temporal_run_id": f"t{i}",
                         "playbook": "renewal-reminders", "version": "v", "account_id": f"acct-{i:06d}",
                         "occurrence": old.isoformat(), "status": "completed", "reason": "", "trigger": "{}",
                         "started_at": NOW - timedelta(days=300), "ended_at": NOW - timedelta(days=200)})

    def write(s: Session) -> None:
        tables: tuple[tuple[type[Any], list[dict[str, Any]]], ...] = (
            (AccountRow, accounts), (HealthRow, health), (RunRow, runs))
        for table, rows in tables:
            for n in range(0, len(rows), 10000):
                s.execute(insert(table), rows[n:n + 10000])
        s.commit()
    crm.db.call(write)


async def naive(crm: SQLCRM, store: Store, playbooks: list[Playbook], calendar: Calendar) -> float:
    """Seconds for the matcher over every account, one at a time, extrapolated from SAMPLE accounts."""
    ids = [f"acct-{i:06d}" for i in range(0, COUNT, max(1, COUNT // SAMPLE))][:SAMPLE]
    started = time.perf_counter()
    for account_id in ids:
        view = await crm.account_view(account_id)
        assert view is not None
        data = view_data(view)
        for playbook in playbooks:
            facts = await facts_for(store, playbook, data["account"], now=NOW, calendar=calendar,
                                    contacts=tuple(data["contacts"]))
            decide(playbook, Scan(account_id=account_id, since=TODAY - timedelta(days=1), today=TODAY),
                   facts)
    return (time.perf_counter() - started) * COUNT / len(ids)


async def main() -> dict[str, float | int]:
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/csops.db"
        crm, store = SQLCRM(url), Store(url)
        try:
            t = time.perf_counter()
            generate(crm, store, rng)
            print(f"generated {COUNT} accounts in {time.perf_counter() - t:.1f} s", flush=True)
            playbooks = list(load_playbooks(ROOT / "playbooks").values())
            scanned = milestone_playbooks(playbooks)
            print(f"playbooks: {len(playbooks)} loaded, scanned: {', '.join(p.id for p in scanned)}")
            calendar = Calendar()

            t = time.perf_counter()
            found, candidates = await find_due(crm, store, playbooks, since=TODAY - timedelta(days=1), today=TODAY,
                                               now=NOW, calendar=calendar)
            seconds = time.perf_counter() - t
            due = sum(1 for f in found if f.decision.outcome == "start")
            print(f"today: {candidates} candidates, {len(found)} decisions, {due} due, in {seconds:.3f} s")

            t = time.perf_counter()
            caught, _ = await find_due(crm, store, playbooks, since=TODAY - timedelta(days=4), today=TODAY, now=NOW,
                                       calendar=calendar)
            catchup = time.perf_counter() - t
            print(f"3 missed days + today: {len(caught)} decisions in {catchup:.3f} s")

            t = time.perf_counter()
            rows = crm.db.call(lambda s: s.execute(select(*AccountRow.__table__.columns)).all(),
                               engine=crm.db.read_engine)
            table_read = time.perf_counter() - t
            assert len(rows) == COUNT

            naive_seconds = await naive(crm, store, scanned, calendar)
            print(f"naive (every account, one at a time, from {SAMPLE}): {naive_seconds:.1f} s; "
                  f"plain table read: {table_read:.3f} s")
        finally:
            crm.close()
            store.close()
    return {"accounts": COUNT, "seconds": round(seconds, 3), "accounts_per_s": round(COUNT / seconds),
            "due": due, "found": len(found), "candidates": candidates, "catchup_seconds": round(catchup, 3),
            "naive_seconds": round(naive_seconds, 2), "ratio": round(naive_seconds / seconds, 1),
            "table_read_seconds": round(table_read, 3)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
