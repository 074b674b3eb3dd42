"""SQL views on the store for BI tools and the performance report (docs/reporting.md).

``csops_runs``, ``csops_steps``, ``csops_tasks``, ``csops_health_history`` and ``csops_decisions``
are created when the store opens, on SQLite and PostgreSQL alike: the same columns with the same
meaning, only the date arithmetic differs by dialect. The report (engine/reports) reads the same
views, so a figure in ``csops report`` and the example queries of docs/reporting.md are one
definition. A view is (re)created only when it is missing or made by another version of these
definitions (``VERSION``), so opening a store costs one catalogue read.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

__all__ = ["GOAL_REASON", "VERSION", "VIEWS", "create_views", "view_sql"]

VERSION = "csops-views-4"
"""Changes whenever a definition below changes: stores with an older one get the new views."""
VIEWS = ("csops_runs", "csops_steps", "csops_tasks", "csops_health_history", "csops_decisions")
GOAL_REASON = "exited: exit criteria met%"
"""The store's reason of a run that ended because its exit criteria (its goal) held."""

_SECONDS = {"sqlite": "((julianday({a}) - julianday({b})) * 86400.0)",
            # date_part gives double precision; EXTRACT gives numeric, several times slower to compute.
            "postgresql": "date_part('epoch', {a} - {b})"}
_UTC_DATE = {"sqlite": "date({a})", "postgresql": "CAST(({a} AT TIME ZONE 'UTC') AS DATE)"}
_JSON_TEXT = {"sqlite": "json_extract({a}, '$.{k}')", "postgresql": "(CAST({a} AS JSON) ->> '{k}')"}


def view_sql(dialect: str) -> dict[str, str]:
    """The SELECT of each view for ``dialect`` (sqlite or postgresql), by view name."""
    def seconds(a: str, b: str) -> str:
        return _SECONDS[dialect].format(a=a, b=b)

    def utc_date(a: str) -> str:
        return _UTC_DATE[dialect].format(a=a)

    def json_text(a: str, k: str) -> str:
        return _JSON_TEXT[dialect].format(a=a, k=k)

    return {
        "csops_runs": f"""
SELECT r.id, r.run_id, r.playbook, r.version, r.account_id, r.occurrence, r.status, r.reason,
       r.started_at, r.ended_at,
       CASE WHEN r.status = 'exited' AND r.reason LIKE '{GOAL_REASON}' THEN 1 ELSE 0 END AS goal,
       CASE WHEN r.ended_at IS NULL THEN NULL ELSE {seconds('r.ended_at', 'r.started_at')} END AS duration_s
FROM runs r""",
        # An audit row belongs to the execution of its run id that was going at its time (a run
        # id runs again after a cooldown).
        "csops_steps": f"""
SELECT a.id, a.run_id, r.playbook, r.version, r.account_id, r.started_at AS run_started_at,
       a.step, a.kind, a.status, a.at, a.planned_at,
       CASE WHEN a.planned_at IS NULL THEN NULL ELSE {seconds('a.at', 'a.planned_at')} END AS delay_s,
       a.sent, a.suppressed, a.capped, a.detail
FROM step_audit a
JOIN runs r ON r.run_id = a.run_id AND a.at >= r.started_at AND (r.ended_at IS NULL OR a.at <= r.ended_at)""",
        "csops_tasks": f"""
SELECT t.task_id, t.run_id, t.step, t.playbook, t.version, t.account_id, t.assignee, t.title, t.due,
       t.created_at, t.status, t.closed_at, t.escalations,
       CASE WHEN t.status = 'completed' AND (t.due IS NULL OR {utc_date('t.closed_at')} <= t.due)
            THEN 1 ELSE 0 END AS on_time,
       CASE WHEN t.status = 'open' AND t.due < CURRENT_DATE THEN 1 ELSE 0 END AS overdue
FROM run_tasks t""",
        "csops_health_history": """
SELECT h.id, h.account_id, h.at, h.score, h.band
FROM health_history h""",
        "csops_decisions": f"""
SELECT d.id, d.at, d.playbook, d.account_id, d.outcome, d.reason, d.message, d.occurrence, d.run_id,
       {json_text('d.signal', 'kind')} AS signal_kind, {json_text('d.signal', 'type')} AS event_type
FROM trigger_decisions d""",
    }


def create_views(engine: Engine) -> None:
    """Create the views (or replace those of another ``VERSION``); another process doing the same
    at the same moment is no error."""
    dialect = engine.dialect.name
    if dialect not in _SECONDS or _current(engine):
        return
    try:
        with engine.begin() as conn:
            for name, select in view_sql(dialect).items():
                conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
                conn.execute(text(f"CREATE VIEW {name} AS /* {VERSION} */ {select.strip()}"))
                if dialect == "postgresql":
                    conn.exec_driver_sql(f"COMMENT ON VIEW {name} IS '{VERSION}'")
    except DBAPIError:
        if not _current(engine):
            raise


def _current(engine: Engine) -> bool:
    """Whether every view exists in this ``VERSION``."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'view'")).all()
            found = {r[0] for r in rows if VERSION in (r[1] or "")}
        else:
            rows = conn.execute(text(
                "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
                "WHERE c.relkind = 'v' AND c.relnamespace = CAST(current_schema() AS regnamespace)")).all()
            found = {r[0] for r in rows if r[1] == VERSION}
    return found >= set(VIEWS)
