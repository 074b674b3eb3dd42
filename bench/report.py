"""The playbook performance report over 1,000,000 recorded steps on PostgreSQL, against one hand-written aggregate.

Generation (not timed), server-side with ``generate_series`` in a schema of its own (dropped at the
end) of the PostgreSQL at BENCH_PG (default ``postgresql+psycopg://127.0.0.1:5432/test``): 100,000
runs of 10 playbooks in 2 versions each, 10 audit rows per run (1,000,000 steps: tasks, emails,
alerts, waits, skipped and failed steps, escalations, a spread of delays), a task per run, 50,000
suppressed decisions and 20,000 email replies and bounces. The store's views are created by
opening the store, as in production; then ``ANALYZE``.

Timed, five rounds each, alternating: ``engine.reports.playbook_report`` (every figure of the
report: its queries over the views and the grouping in Python) and, as the baseline, one
hand-written SQL aggregate over the same tables: the per-step figures (reached, skipped, failed,
on schedule) straight from ``step_audit`` joined to ``runs``, the heaviest single part of the
report. ``ratio`` = baseline_seconds / report_seconds (best rounds; target: at least 0.5).

JSON on the last line: ``steps``, ``runs``, ``report_seconds``, ``baseline_seconds``, ``ratio``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.reports import playbook_report  # noqa: E402
from engine.store.store import Store  # noqa: E402

PG = os.environ.get("BENCH_PG", "postgresql+psycopg://127.0.0.1:5432/test")
RUNS = int(os.environ.get("BENCH_RUNS", "100000"))
STEPS_PER_RUN = 10
ROUNDS = 5
NOW = datetime.now(UTC).replace(microsecond=0)

GENERATE = [
    """INSERT INTO runs (run_id, temporal_run_id, playbook, version, account_id, occurrence, status, reason, trigger,
                         started_at, ended_at)
       SELECT 'pb\\:pb' || (i % 10) || '\\:acc' || i || '\\:once', 't' || i, 'pb' || (i % 10), 'v' || (i % 2),
              'acc' || i, '',
              (ARRAY['completed', 'exited', 'exited', 'running', 'failed', 'cancelled'])[1 + i % 6],
              CASE WHEN i % 6 = 1 THEN 'exited: exit criteria met: account.renewal_status == ''renewed'''
                   WHEN i % 6 = 2 THEN 'exited: event account.churned arrived' ELSE '' END,
              '{}', :now - make_interval(days => 1 + i % 80),
              CASE WHEN i % 6 = 3 THEN NULL ELSE :now - make_interval(days => 1 + i % 80)
                   + make_interval(hours => 24 + i % 500) END
       FROM generate_series(1, :runs) AS i""",
    """INSERT INTO step_audit (run_id, step, status, at, detail, kind, planned_at, sent, suppressed, capped)
       SELECT r.run_id, s.step, s.status,
              r.started_at + make_interval(mins => CAST(10 * n + (r.id % 7) * (n % 3) * 5 AS INTEGER)),
              '', s.kind, r.started_at + make_interval(mins => 10 * n), s.sent, s.suppressed, 0
       FROM runs r
       CROSS JOIN LATERAL (SELECT n,
              (ARRAY['call', 'pause', 'mail', 'tell', 'branch', 'smb-only', 'follow-up', 'call/escalate/0',
                     'call/escalate/1', 'wrap'])[n] AS step,
              (ARRAY['task', 'wait', 'email', 'alert', 'branch', 'note', 'task', 'escalate', 'escalate', 'note'])[n]
                  AS kind,
              CASE WHEN n = 6 THEN 'skipped' WHEN n = 7 AND r.id % 50 = 0 THEN 'failed' ELSE 'done' END AS status,
              CASE WHEN n IN (3, 4) THEN 1 ELSE 0 END AS sent,
              CASE WHEN n = 3 AND r.id % 20 = 0 THEN 1 ELSE 0 END AS suppressed
              FROM generate_series(1, :per_run) AS n) s""",
    """INSERT INTO run_tasks (task_id, run_id, step, playbook, version, account_id, assignee, title, due, created_at,
                              status, closed_at, escalations)
       SELECT 'task' || r.id, r.run_id, 'call', r.playbook, r.version, r.account_id, 'csm' || (r.id % 40) ||
              '@example.com', 'Call', CAST(r.started_at AS DATE) + 3, r.started_at,
              (ARRAY['open', 'completed', 'cancelled'])[1 + r.id % 3],
              CASE WHEN r.id % 3 = 0 THEN NULL
                   ELSE r.started_at + make_interval(days => CAST(r.id % 5 AS INTEGER)) END, r.id % 3
       FROM runs r""",
    """INSERT INTO trigger_decisions (at, playbook, account_id, signal, outcome, reason, message, occurrence, run_id,
                                      seen)
       SELECT :now - make_interval(days => i % 80), 'pb' || (i % 10), 'acc' || i, '{"kind"\\: "event"}', 'suppressed',
              (ARRAY['cooldown', 'already_active', 'audience'])[1 + i % 3], '', '', '', '{}'
       FROM generate_series(1, :runs / 2) AS i""",
    """INSERT INTO events (id, type, account_id, occurred_at, received_at, data, attempts, last_error)
       SELECT 'ev' || i, CASE WHEN i % 2 = 0 THEN 'email.replied' ELSE 'email.bounced' END, 'acc' || (i * 5),
              :now - make_interval(days => (i * 5) % 80) + make_interval(hours => 30), :now, '{}', 0, ''
       FROM generate_series(1, :runs / 5) AS i""",
]

BASELINE = """
SELECT r.playbook, r.version, a.step, COUNT(*) AS reached,
       SUM(CASE WHEN a.status = 'skipped' THEN 1 ELSE 0 END) AS skipped,
       SUM(CASE WHEN a.status = 'failed' THEN 1 ELSE 0 END) AS failed,
       SUM(CASE WHEN a.status IN ('done', 'received', 'timed_out')
                 AND EXTRACT(EPOCH FROM (a.at - a.planned_at)) <= 900 THEN 1 ELSE 0 END) AS on_schedule
FROM step_audit a JOIN runs r ON r.run_id = a.run_id
WHERE r.started_at >= :since
GROUP BY r.playbook, r.version, a.step"""


def main() -> None:
    schema = f"bench_report_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    store = Store(f"{PG}?options=-csearch_path%3D{schema}")
    try:
        began = time.monotonic()
        with store.db.engine.begin() as conn:
            for sql in GENERATE:
                conn.execute(text(sql), {"now": NOW, "runs": RUNS, "per_run": STEPS_PER_RUN})
            conn.exec_driver_sql("ANALYZE")
        with store.db.engine.connect() as conn:
            steps = conn.execute(text("SELECT COUNT(*) FROM step_audit")).scalar_one()
        print(f"generated {RUNS} runs and {steps} steps in {time.monotonic() - began:.1f} s", file=sys.stderr)
        since = NOW - timedelta(days=90)
        report_times, baseline_times = [], []
        for _ in range(ROUNDS):
            t = time.perf_counter()
            report = asyncio.run(playbook_report(store, since=since))
            report_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            with store.db.engine.connect() as conn:
                rows = conn.execute(text(BASELINE), {"since": since}).all()
            baseline_times.append(time.perf_counter() - t)
        reached = sum(s["reached"] for p in report["playbooks"] for v in p["versions"] for s in v["steps"])
        print(f"report: {len(report['playbooks'])} playbooks, {reached} steps reached; baseline rows: {len(rows)}",
              file=sys.stderr)
        best_report, best_baseline = min(report_times), min(baseline_times)
        print(json.dumps({"steps": steps, "runs": RUNS, "report_seconds": round(best_report, 3),
                          "baseline_seconds": round(best_baseline, 3),
                          "ratio": round(best_baseline / best_report, 3),
                          "report_rounds": [round(x, 3) for x in report_times],
                          "baseline_rounds": [round(x, 3) for x in baseline_times]}))
    finally:
        store.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


if __name__ == "__main__":
    main()
