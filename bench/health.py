"""Full recompute of every account's health (100,000 on SQLite) vs one hand-written SQL query, and one account.

Generation (not timed): a temporary SQLite database shared by the built-in CRM and the store, with
BENCH_ACCOUNTS accounts (default 100,000; segment, stage and the custom fields the shipped model
reads), about 7 events each over 90 days (logins, meetings, NPS answers, escalations) and about 2
first uses of key features each.

Timed, in the same run:

- ``seconds``: the engine's full recompute with the shipped model (playbooks/health.yaml), as the
  daily scan does it: every account from the CRM a page at a time, the store read once for all
  sources (engine.health.inputs), the last score of each account, and every account scored;
- ``baseline_seconds``: the same ten measure values as one hand-written SQL query (CTEs over
  events and first uses joined to the accounts), every row fetched; ``ratio`` = baseline /
  engine (target at least 0.5);
- ``incremental_seconds``: the mean of recomputing one account as after an event (200 accounts);
  ``incremental_share`` = incremental / full (target at most 0.01).

The engine's measure values are checked against the baseline's on every account (``agree``).
BENCH_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) runs it on PostgreSQL
instead, in a schema of its own that is dropped afterwards.
Prints figures, and as the JSON object on its last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sqlcrm import SQLCRM  # noqa: E402
from connectors.sqlcrm_models import AccountRow  # noqa: E402
from engine.health.recompute import list_all, recompute_account, recompute_all, recompute_crm  # noqa: E402
from engine.health.sqlscore import scores  # noqa: E402
from engine.language.health_loader import load_health  # noqa: E402
from engine.language.health_model import HealthModel  # noqa: E402
from engine.store.store import Store  # noqa: E402
from engine.store.store_models import EventRow, FirstUseRow  # noqa: E402
from engine.triggers.ingest_facts import parse_event  # noqa: E402

COUNT = int(os.environ.get("BENCH_ACCOUNTS", "100000"))
NOW = datetime.now(UTC).replace(microsecond=0)
FEATURES = ("reports", "dashboards", "integrations", "automations")


def generate(crm: SQLCRM, store: Store, rng: random.Random) -> int:
    accounts, events, uses = [], [], []
    for i in range(COUNT):
        ident = f"acct-{i:06d}"
        licensed = rng.choice([5, 10, 50, 200])
        fields: dict[str, Any] = {"active_seats": rng.randint(0, licensed), "licensed_seats": licensed,
                                  "arr_change_pct": rng.randint(-30, 20),
                                  "overdue_invoices": rng.choice([0, 0, 0, 1, 2])}
        if rng.random() < 0.8:
            fields["champion_present"] = rng.random() < 0.7
        accounts.append({"id": ident, "name": f"Account {i}", "segment": rng.choice(["strategic", "commercial", "smb"]),
                         "lifecycle_stage": rng.choice(["onboard", "adopt", "expand", "renew"]), "owner_id": None,
                         "arr": 12000.0, "renewal_date": None, "contract_start": None, "renewal_status": "open",
                         "health_score": None, "health_band": "", "previous_health_score": None, "usage": {},
                         "fields": fields})
        kinds = ["usage.login"] * rng.randint(0, 10) + ["meeting.held"] * rng.choice([0, 0, 1]) + \
            ["survey.nps"] * rng.choice([0, 0, 1]) + ["support.escalated"] * rng.choice([0, 0, 0, 1, 2])
        for k, kind in enumerate(kinds):
            at = NOW - timedelta(minutes=rng.randint(1, 90 * 24 * 60))
            data = json.dumps({"score": rng.randint(0, 10)}) if kind == "survey.nps" else "{}"
            events.append({"id": f"{ident}-{k}", "type": kind, "account_id": ident, "occurred_at": at,
                           "received_at": at, "data": data, "processed_at": at, "attempts": 0, "last_error": ""})
        for feature in rng.sample(FEATURES, rng.randint(0, 4)):
            uses.append({"account_id": ident, "kind": "feature", "name": feature,
                         "first_at": NOW - timedelta(days=rng.randint(1, 400)), "event_id": ""})
    with crm.db.engine.begin() as conn:
        conn.execute(insert(AccountRow), accounts)
    with store.db.engine.begin() as conn:
        for start in range(0, len(events), 50000):
            conn.execute(insert(EventRow), events[start:start + 50000])
        conn.execute(insert(FirstUseRow), uses)
    return len(events)


BASELINE = """
WITH ev AS (
  SELECT account_id,
    SUM(CASE WHEN type = 'usage.login' AND occurred_at > :t30 AND occurred_at <= :now THEN 1 ELSE 0 END) AS logins,
    SUM(CASE WHEN type = 'usage.login' AND occurred_at > :t60 AND occurred_at <= :t30 THEN 1 ELSE 0 END) AS before,
    MAX(CASE WHEN type = 'meeting.held' AND occurred_at <= :now THEN occurred_at END) AS met,
    SUM(CASE WHEN type = 'support.escalated' AND occurred_at > :t90 AND occurred_at <= :now THEN 1 ELSE 0 END) AS esc
  FROM events WHERE type IN ('usage.login', 'meeting.held', 'support.escalated') GROUP BY account_id),
nps AS (
  SELECT account_id, data FROM (
    SELECT account_id, data, ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY occurred_at DESC, id DESC) AS rn
    FROM events WHERE type = 'survey.nps' AND occurred_at <= :now) AS ranked WHERE rn = 1),
fu AS (
  SELECT account_id, COUNT(DISTINCT name) AS n FROM first_uses
  WHERE kind = 'feature' AND name IN ('reports', 'dashboards', 'integrations', 'automations') AND first_at <= :now
  GROUP BY account_id)
SELECT a.id, a.segment, a.lifecycle_stage,
  COALESCE(ev.logins, 0) AS logins_30d,
  {num_active} / NULLIF({num_licensed}, 0) AS seat_utilisation,
  COALESCE(fu.n, 0) / 4.0 AS key_features,
  1.0 * ev.logins / NULLIF(ev.before, 0) AS usage_trend,
  {days_since} AS days_since_meeting,
  {champion} AS champion,
  {nps} AS nps,
  {arr} AS arr_change,
  {overdue} AS overdue_invoices,
  COALESCE(ev.esc, 0) AS escalations_90d
FROM accounts a LEFT JOIN ev ON ev.account_id = a.id LEFT JOIN nps ON nps.account_id = a.id
LEFT JOIN fu ON fu.account_id = a.id
"""


def baseline_sql(dialect: str) -> str:
    if dialect == "sqlite":
        def field(name: str) -> str:
            return f"CAST(json_extract(a.fields, '$.{name}') AS REAL)"
        return BASELINE.format(num_active=field("active_seats"), num_licensed=field("licensed_seats"),
                               days_since="(CAST(strftime('%s', :now) AS INTEGER) - CAST(strftime('%s', ev.met) "
                                          "AS INTEGER)) / 86400", champion=field("champion_present"),
                               nps="CAST(json_extract(nps.data, '$.score') AS REAL)", arr=field("arr_change_pct"),
                               overdue=field("overdue_invoices"))

    def pg(name: str) -> str:
        return f"CAST((CAST(a.fields AS json) ->> '{name}') AS float)"
    champion = "CASE (CAST(a.fields AS json) ->> 'champion_present') WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 END"
    return BASELINE.format(num_active=pg("active_seats"), num_licensed=pg("licensed_seats"),
                           days_since="FLOOR(EXTRACT(EPOCH FROM (CAST(:now AS timestamptz) - ev.met)) / 86400.0)",
                           champion=champion, nps="CAST((CAST(nps.data AS json) ->> 'score') AS float)",
                           arr=pg("arr_change_pct"), overdue=pg("overdue_invoices"))


def run_baseline(store: Store) -> dict[str, tuple[Any, ...]]:
    dialect = store.db.engine.dialect.name

    def stamp(moment: datetime) -> Any:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else moment
    params = {"now": stamp(NOW), "t30": stamp(NOW - timedelta(days=30)), "t60": stamp(NOW - timedelta(days=60)),
              "t90": stamp(NOW - timedelta(days=90))}
    with store.db.engine.connect() as conn:
        return {row[0]: tuple(row[3:]) for row in conn.execute(text(baseline_sql(dialect)), params)}


async def full(crm: SQLCRM, store: Store, model: HealthModel) -> list[Any]:
    """As the daily scan: every account recomputed, the changed ones (with their breakdown) handed back."""
    return await recompute_crm(crm, store, model, NOW, changed_only=True)


def agree(engine: list[Any], baseline: dict[str, tuple[Any, ...]], model: HealthModel) -> bool:
    names = [m.name for m in model.measures]
    for done in engine:
        row = baseline[done.account_id]
        for name, want in zip(names, row, strict=True):
            got = done.values[name]
            if (got is None) != (want is None) or (got is not None and not math.isclose(got, float(want),
                                                                                        abs_tol=0.02)):
                print(f"disagree: {done.account_id} {name}: engine {got}, baseline {want}")
                return False
    return True


@contextlib.contextmanager
def _database(tmp: str) -> Iterator[str]:
    """A SQLite file, or with BENCH_DATABASE_URL a fresh schema of that PostgreSQL database (dropped after)."""
    given = os.environ.get("BENCH_DATABASE_URL")
    if not given:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    server = create_engine(given, isolation_level="AUTOCOMMIT")
    schema = f"health_bench_{os.getpid()}"
    with server.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield server.url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        server.dispose()


async def main() -> None:
    model, problems = load_health(ROOT / "playbooks" / "health.yaml")
    assert model is not None, problems
    with tempfile.TemporaryDirectory() as tmp, _database(tmp) as url:
        store, crm = Store(url), SQLCRM(url)
        t0 = time.perf_counter()
        events = generate(crm, store, random.Random(13))
        # Yesterday's scores, as the daily scan recorded them: most of today's are the same (not timed).
        yesterday = [parse_event({"id": f"bench-{ident}", "type": "health.updated", "account_id": ident,
                                  "occurred_at": (NOW - timedelta(days=1)).isoformat(),
                                  "data": {"score": round(total, 1), "band": model.bands.band(round(total, 1))}})
                     for ident, total, _, _ in await scores(store, model, NOW) if total is not None]
        for at in range(0, len(yesterday), 5000):
            await store.add_events(yesterday[at:at + 5000])
        print(f"generated {COUNT} accounts, {events} events, {len(yesterday)} scores in "
              f"{time.perf_counter() - t0:.1f} s ({store!r})")
        rounds = []
        for _ in range(2):  # alternate, keep the best of each (the first round warms the page cache)
            t0 = time.perf_counter()
            baseline = run_baseline(store)
            t1 = time.perf_counter()
            engine = await full(crm, store, model)
            t2 = time.perf_counter()
            rounds.append((t1 - t0, t2 - t1))
        base_s, engine_s = min(r[0] for r in rounds), min(r[1] for r in rounds)
        # The Python path (any CRM): timed once, and checked against both (values and scores).
        t0 = time.perf_counter()
        python = await recompute_all(store, await list_all(crm), model, NOW)
        python_s = time.perf_counter() - t0
        sql = {ident: None if total is None else round(min(max(total, 0.0), 100.0), 1)
               for ident, total, _, _ in await scores(store, model, NOW)}
        ok = (agree(python, baseline, model) and len(python) == len(baseline) == len(sql) == COUNT
              and {d.account_id: d.result.score for d in python} == sql)
        ids = random.Random(7).sample([d.account_id for d in python], min(200, COUNT))
        t0 = time.perf_counter()
        for ident in ids:
            await recompute_account(store, crm, model, ident, NOW)
        one = (time.perf_counter() - t0) / len(ids)
        scored = sum(1 for d in python if d.result.score is not None)
        red = sum(1 for d in python if d.result.band == "red")
        store.close()
        crm.close()
    database = "postgresql" if "postgresql" in url else "sqlite"
    figures = {"accounts": COUNT, "events": events, "database": database, "seconds": round(engine_s, 3),
               "accounts_per_s": round(COUNT / engine_s), "baseline_seconds": round(base_s, 3),
               "ratio": round(base_s / engine_s, 3), "incremental_seconds": round(one, 5),
               "incremental_share": round(one / engine_s, 6), "python_path_seconds": round(python_s, 3),
               "changed": len(engine), "scored": scored, "red": red, "agree": ok}
    print(f"full recompute {engine_s:.2f} s ({COUNT / engine_s:,.0f} accounts/s); one SQL query {base_s:.2f} s; "
          f"ratio {base_s / engine_s:.2f}; one account {one * 1000:.1f} ms ({one / engine_s:.5f} of the full); "
          f"the Python path (other CRMs) {python_s:.2f} s; values and scores agree: {ok}")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
