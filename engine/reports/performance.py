"""Playbook performance: runs, goal conversion, step execution rate, tasks and emails.

Every figure is one aggregate over the store's views (engine/store/store_views.py), defined in
docs/reporting.md with the same SQL; ``playbook_report`` only groups the rows into plain data
(dicts and lists of JSON values) that the CLI, the API and the console share.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, bindparam, text
from sqlalchemy.orm import Session

from engine.store.store import Store
from engine.store.store_models import UtcDateTime

__all__ = ["FINAL_STATUSES", "QUERIES", "TOLERANCE", "playbook_report"]

TOLERANCE = timedelta(minutes=15)
"""How late a step may finish after its planned time and still count as on schedule (``--tolerance``)."""
FINAL_STATUSES = ("done", "skipped", "failed", "received", "timed_out")
"""A step's final audit statuses (``chose``, the choice a branch or a timed-out wait made, is not one)."""

_FILTER = "r.started_at >= :since AND (:playbook = '' OR r.playbook = :playbook)"
QUERIES: Mapping[str, str] = {
    "runs": f"""
SELECT r.playbook, r.version, COUNT(*) AS started,
       SUM(CASE WHEN r.status = 'running' THEN 1 ELSE 0 END) AS running,
       SUM(CASE WHEN r.status = 'completed' THEN 1 ELSE 0 END) AS completed,
       SUM(CASE WHEN r.status = 'exited' THEN 1 ELSE 0 END) AS exited,
       SUM(r.goal) AS goal,
       SUM(CASE WHEN r.status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
       SUM(CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END) AS failed
FROM csops_runs r WHERE {_FILTER} GROUP BY r.playbook, r.version""",
    "time_to_goal": f"""
SELECT r.playbook, r.version, r.duration_s FROM csops_runs r WHERE {_FILTER} AND r.goal = 1""",
    "suppressed": """
SELECT d.playbook, d.reason, COUNT(*) AS n FROM csops_decisions d
WHERE d.outcome = 'suppressed' AND d.at >= :since AND (:playbook = '' OR d.playbook = :playbook)
GROUP BY d.playbook, d.reason""",
    "steps": """
SELECT r.playbook, r.version, r.step, MIN(r.kind) AS kind, COUNT(*) AS reached,
       SUM(CASE WHEN r.status = 'skipped' THEN 1 ELSE 0 END) AS skipped,
       SUM(CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END) AS failed,
       SUM(CASE WHEN r.status IN ('done', 'received', 'timed_out') THEN 1 ELSE 0 END) AS done,
       SUM(CASE WHEN r.status IN ('done', 'received', 'timed_out') AND r.delay_s <= :tolerance
           THEN 1 ELSE 0 END) AS on_schedule,
       SUM(CASE WHEN r.status IN ('done', 'received', 'timed_out') AND r.delay_s > :tolerance
           THEN 1 ELSE 0 END) AS late,
       SUM(r.sent) AS sent, SUM(r.suppressed) AS suppressed, SUM(r.capped) AS capped
FROM csops_steps r
WHERE r.run_started_at >= :since AND (:playbook = '' OR r.playbook = :playbook)
  AND r.status IN ('done', 'skipped', 'failed', 'received', 'timed_out')
GROUP BY r.playbook, r.version, r.step""",
    "tasks": """
SELECT t.playbook, t.version, COUNT(*) AS created,
       SUM(CASE WHEN t.status = 'completed' THEN 1 ELSE 0 END) AS completed,
       SUM(t.on_time) AS completed_on_time,
       SUM(CASE WHEN t.status = 'open' AND t.due < :today THEN 1 ELSE 0 END) AS overdue,
       SUM(CASE WHEN t.status = 'cancelled' THEN 1 ELSE 0 END) AS closed_by_exit,
       SUM(CASE WHEN t.status = 'open' THEN 1 ELSE 0 END) AS open
FROM csops_tasks t WHERE t.created_at >= :since AND (:playbook = '' OR t.playbook = :playbook)
GROUP BY t.playbook, t.version""",
    "replies": f"""
SELECT r.playbook, r.version, e.type, COUNT(DISTINCT e.id) AS n
FROM csops_runs r JOIN events e ON e.account_id = r.account_id AND e.occurred_at >= r.started_at
     AND (r.ended_at IS NULL OR e.occurred_at <= r.ended_at)
WHERE {_FILTER} AND e.type IN ('email.bounced', 'email.replied')
  AND EXISTS (SELECT 1 FROM step_audit a WHERE a.run_id = r.run_id AND a.kind = 'email' AND a.sent > 0)
GROUP BY r.playbook, r.version, e.type""",
}
"""The report's SQL, by part; docs/reporting.md shows each."""


def _rows(session: Session, *, name: str, params: Mapping[str, Any]) -> Sequence[Any]:
    stmt = text(QUERIES[name])
    types: dict[str, Any] = {"since": UtcDateTime(), "today": Date()}
    stmt = stmt.bindparams(*(bindparam(k, type_=t) for k, t in types.items() if f":{k}" in QUERIES[name]))
    return session.execute(stmt, {k: v for k, v in params.items() if f":{k}" in QUERIES[name]}).all()


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def playbook_report(store: Store, *, since: datetime, playbook: str = "",
                          tolerance: timedelta = TOLERANCE, today: date | None = None) -> dict[str, Any]:
    """Per playbook and version, the performance of runs started at or after ``since`` (JSON-able).

    Shape: ``{"since", "tolerance_s", "playbooks": [{"playbook", "suppressed": {reason: n},
    "versions": [{"version", "runs": {...}, "goal_conversion", "median_time_to_goal_s",
    "steps": [...], "tasks": {...}, "emails": {...}}]}]}`` (docs/reporting.md names every field).
    A task is overdue when it is open and its due date is before ``today`` (default: today in UTC).
    """
    params = {"since": since, "playbook": playbook, "tolerance": tolerance.total_seconds(),
              "today": today or datetime.now(UTC).date()}
    # The parts are independent: each on its own connection at once, so the small ones cost no wall
    # time beside the step aggregate (SQLite readers run beside each other under WAL too).
    names = list(QUERIES)
    answers = await asyncio.gather(*(store.db.read(functools.partial(_rows, name=name, params=params))
                                     for name in names))
    parts = dict(zip(names, answers, strict=True))
    versions: dict[tuple[str, str], dict[str, Any]] = {}

    def version(pb: str, v: str) -> dict[str, Any]:
        return versions.setdefault((pb, v), {
            "version": v, "runs": dict.fromkeys(("started", "running", "completed", "exited", "goal", "cancelled",
                                                 "failed"), 0),
            "goal_conversion": None, "median_time_to_goal_s": None, "steps": [],
            "tasks": {**dict.fromkeys(("created", "completed", "completed_on_time", "overdue", "closed_by_exit",
                                       "open"), 0), "escalated": {}},
            "emails": dict.fromkeys(("sent", "suppressed", "capped", "bounced", "replied"), 0),
            "alerts": {"sent": 0}})

    for r in parts["runs"]:
        out = version(r.playbook, r.version)
        out["runs"] = {k: int(getattr(r, k) or 0) for k in out["runs"]}
        out["goal_conversion"] = _ratio(out["runs"]["goal"], out["runs"]["started"])
    goals: dict[tuple[str, str], list[float]] = {}
    for r in parts["time_to_goal"]:
        goals.setdefault((r.playbook, r.version), []).append(float(r.duration_s))
    for key, durations in goals.items():
        version(*key)["median_time_to_goal_s"] = round(statistics.median(durations), 3)
    for r in parts["steps"]:
        out = version(r.playbook, r.version)
        if "/" in r.step:  # a task's escalation (step/escalate/N), completion or closing: task figures
            if "/escalate/" in r.step:
                level = str(int(r.step.rsplit("/", 1)[1]) + 1)
                escalated = out["tasks"]["escalated"]
                escalated[level] = escalated.get(level, 0) + int(r.done)
            continue
        executed = int(r.reached) - int(r.skipped)
        out["steps"].append({"step": r.step, "kind": r.kind, "reached": int(r.reached),
                             "on_schedule": int(r.on_schedule), "late": int(r.late), "skipped": int(r.skipped),
                             "failed": int(r.failed), "execution_rate": _ratio(int(r.on_schedule), executed)})
        box = out["emails"] if r.kind == "email" else out["alerts"] if r.kind == "alert" else None
        if box is not None:
            box["sent"] += int(r.sent or 0)
            if r.kind == "email":
                box["suppressed"] += int(r.suppressed or 0)
                box["capped"] += int(r.capped or 0)
    for r in parts["tasks"]:
        tasks = version(r.playbook, r.version)["tasks"]
        tasks.update({k: int(getattr(r, k) or 0) for k in tasks if k != "escalated"})
    for r in parts["replies"]:
        version(r.playbook, r.version)["emails"]["bounced" if r.type == "email.bounced" else "replied"] += int(r.n)
    suppressed: dict[str, dict[str, int]] = {}
    for r in parts["suppressed"]:
        suppressed.setdefault(r.playbook, {})[r.reason or "unknown"] = int(r.n)
    books = sorted({pb for pb, _ in versions} | set(suppressed))
    return {"since": since.isoformat(), "tolerance_s": tolerance.total_seconds(), "playbooks": [
        {"playbook": pb, "suppressed": dict(sorted(suppressed.get(pb, {}).items())),
         "versions": [_sorted(versions[k]) for k in sorted(versions) if k[0] == pb]} for pb in books]}


def _sorted(out: dict[str, Any]) -> dict[str, Any]:
    """Steps in the order runs reached them first (by name when as many), escalation levels in order."""
    out["steps"].sort(key=lambda s: (-s["reached"], s["step"]))
    out["tasks"]["escalated"] = dict(sorted(out["tasks"]["escalated"].items(), key=lambda kv: int(kv[0])))
    return out
